"""ISA-95 equipment hierarchy: Site > Area > Line > Equipment > Sensor."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models


class Site(models.Model):
    code = models.SlugField(max_length=64, unique=True, help_text="Short identifier used in paths, e.g. 'plant-north'.")
    name = models.CharField(max_length=200)
    time_zone = models.CharField(max_length=64, default="UTC", help_text="IANA zone of the plant, for display.")
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name

    @property
    def path(self) -> str:
        return self.code


class Area(models.Model):
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="areas")
    code = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["site__code", "code"]
        constraints = [models.UniqueConstraint(fields=["site", "code"], name="area_code_unique_per_site")]

    def __str__(self) -> str:
        return self.name

    @property
    def path(self) -> str:
        return f"{self.site.code}/{self.code}"


class Line(models.Model):
    area = models.ForeignKey(Area, on_delete=models.CASCADE, related_name="lines")
    code = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["area__site__code", "area__code", "code"]
        constraints = [models.UniqueConstraint(fields=["area", "code"], name="line_code_unique_per_area")]

    def __str__(self) -> str:
        return self.name

    @property
    def path(self) -> str:
        return f"{self.area.path}/{self.code}"


class EquipmentType(models.TextChoices):
    PUMP = "pump", "Pump"
    MOTOR = "motor", "Motor"
    FAN = "fan", "Fan"
    COMPRESSOR = "compressor", "Compressor"
    BEARING = "bearing", "Bearing"
    CHILLER = "chiller", "Chiller"
    GEARBOX = "gearbox", "Gearbox"
    TURBINE = "turbine", "Turbine"
    VALVE = "valve", "Valve"
    HEAT_EXCHANGER = "heat_exchanger", "Heat exchanger"
    CONVEYOR = "conveyor", "Conveyor"
    OTHER = "other", "Other"


class Criticality(models.TextChoices):
    """ABC criticality as used in reliability-centred maintenance."""

    A = "A", "A - production stops or safety/environment risk"
    B = "B", "B - reduced capacity or quality"
    C = "C", "C - little or no impact"


class Equipment(models.Model):
    line = models.ForeignKey(Line, on_delete=models.CASCADE, related_name="equipment")
    tag = models.SlugField(max_length=64, unique=True, help_text="Plant tag, e.g. 'P-101'.", allow_unicode=False)
    name = models.CharField(max_length=200)
    equipment_type = models.CharField(max_length=32, choices=EquipmentType.choices, default=EquipmentType.OTHER)
    criticality = models.CharField(max_length=1, choices=Criticality.choices, default=Criticality.B)
    manufacturer = models.CharField(max_length=200, blank=True)
    model_number = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    attributes = models.JSONField(default=dict, blank=True, help_text="Nameplate data: rated power, speed, ...")

    class Meta:
        ordering = ["tag"]
        verbose_name_plural = "equipment"

    def __str__(self) -> str:
        return f"{self.tag} {self.name}"

    @property
    def path(self) -> str:
        return f"{self.line.path}/{self.tag}"


class Sensor(models.Model):
    equipment = models.ForeignKey(Equipment, on_delete=models.CASCADE, related_name="sensors")
    tag = models.CharField(max_length=128, unique=True, help_text="Historian tag, e.g. 'P-101.VIB_DE'.")
    name = models.CharField(max_length=200)
    measurement = models.CharField(max_length=64, blank=True, help_text="What it measures: vibration_rms, bearing_temperature, ...")
    unit = models.CharField(max_length=32, blank=True)
    range_low = models.FloatField(null=True, blank=True, help_text="Lowest plausible value (instrument range).")
    range_high = models.FloatField(null=True, blank=True, help_text="Highest plausible value (instrument range).")
    sampling_period_s = models.FloatField(default=1.0, help_text="Nominal seconds between readings.")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["tag"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(range_low__isnull=True) | models.Q(range_high__isnull=True) | models.Q(range_low__lt=models.F("range_high")),
                name="sensor_range_low_below_high",
            ),
            models.CheckConstraint(condition=models.Q(sampling_period_s__gt=0), name="sensor_sampling_period_positive"),
        ]

    def __str__(self) -> str:
        return self.tag

    def clean(self) -> None:
        if self.range_low is not None and self.range_high is not None and self.range_low >= self.range_high:
            raise ValidationError({"range_high": "must be greater than range_low"})
