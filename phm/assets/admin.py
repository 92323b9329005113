from django.contrib import admin

from phm.assets.models import Area, Equipment, Line, Sensor, Site


class AreaInline(admin.TabularInline):
    model = Area
    extra = 0


class LineInline(admin.TabularInline):
    model = Line
    extra = 0


class SensorInline(admin.TabularInline):
    model = Sensor
    extra = 0
    fields = ["tag", "name", "measurement", "unit", "range_low", "range_high", "sampling_period_s", "enabled"]


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "time_zone"]
    search_fields = ["code", "name"]
    inlines = [AreaInline]


@admin.register(Area)
class AreaAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "site"]
    list_filter = ["site"]
    search_fields = ["code", "name"]
    inlines = [LineInline]


@admin.register(Line)
class LineAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "area"]
    list_filter = ["area__site", "area"]
    search_fields = ["code", "name"]


@admin.register(Equipment)
class EquipmentAdmin(admin.ModelAdmin):
    list_display = ["tag", "name", "equipment_type", "criticality", "line"]
    list_filter = ["equipment_type", "criticality", "line__area__site"]
    search_fields = ["tag", "name"]
    inlines = [SensorInline]


@admin.register(Sensor)
class SensorAdmin(admin.ModelAdmin):
    list_display = ["tag", "name", "equipment", "measurement", "unit", "range_low", "range_high", "sampling_period_s", "enabled"]
    list_filter = ["equipment__equipment_type", "measurement", "enabled"]
    search_fields = ["tag", "name", "equipment__tag"]
