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


class MachineGroup(models.TextChoices):
    """ISO 10816-3 / 20816-3 machine groups (the zone limits depend on group and foundation)."""

    GROUP_1 = "group1", "Group 1 - large machines, 300 kW to 50 MW"
    GROUP_2 = "group2", "Group 2 - medium machines, 15 kW to 300 kW"


class Foundation(models.TextChoices):
    RIGID = "rigid", "Rigid"
    FLEXIBLE = "flexible", "Flexible"


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
    running_speed_rpm = models.FloatField(null=True, blank=True, help_text="Nominal shaft speed, when a capture carries none.")
    machine_group = models.CharField(max_length=8, choices=MachineGroup.choices, default=MachineGroup.GROUP_2)
    foundation = models.CharField(max_length=8, choices=Foundation.choices, default=Foundation.RIGID)
    planning_lead_time_days = models.FloatField(default=14.0, help_text="Days a repair needs to be planned; RUL alerts below it.")

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


class Axis(models.TextChoices):
    HORIZONTAL = "horizontal", "Radial, horizontal"
    VERTICAL = "vertical", "Radial, vertical"
    AXIAL = "axial", "Axial"
    UNKNOWN = "", "Not stated"


class MeasurementPoint(models.Model):
    """A place on a machine where vibration is captured (e.g. drive-end bearing, horizontal), with the
    geometry of the rolling bearing under it, from which the bearing defect frequencies follow."""

    equipment = models.ForeignKey(Equipment, on_delete=models.CASCADE, related_name="measurement_points")
    name = models.SlugField(max_length=64, help_text="Short name on this machine, e.g. 'DE' or 'NDE-H'.")
    description = models.CharField(max_length=200, blank=True)
    axis = models.CharField(max_length=16, choices=Axis.choices, default=Axis.UNKNOWN, blank=True)
    bearing_designation = models.CharField(max_length=64, blank=True, help_text="e.g. '6205-2RS JEM SKF'.")
    pitch_diameter_mm = models.FloatField(null=True, blank=True)
    ball_diameter_mm = models.FloatField(null=True, blank=True)
    rolling_elements = models.PositiveSmallIntegerField(null=True, blank=True)
    contact_angle_deg = models.FloatField(default=0.0)

    class Meta:
        ordering = ["equipment__tag", "name"]
        constraints = [
            models.UniqueConstraint(fields=["equipment", "name"], name="measurement_point_unique_per_equipment"),
            models.CheckConstraint(
                condition=models.Q(pitch_diameter_mm__isnull=True) | models.Q(ball_diameter_mm__isnull=True)
                | models.Q(ball_diameter_mm__lt=models.F("pitch_diameter_mm")),
                name="measurement_point_ball_below_pitch",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.equipment.tag}/{self.name}"

    @property
    def has_bearing_geometry(self) -> bool:
        return bool(self.pitch_diameter_mm and self.ball_diameter_mm and self.rolling_elements)

    def clean(self) -> None:
        if self.pitch_diameter_mm and self.ball_diameter_mm and self.ball_diameter_mm >= self.pitch_diameter_mm:
            raise ValidationError({"ball_diameter_mm": "must be smaller than pitch_diameter_mm"})


class WorkOrderKind(models.TextChoices):
    CORRECTIVE = "corrective", "Corrective (after a failure or a found fault)"
    PREVENTIVE = "preventive", "Preventive"
    PREDICTIVE = "predictive", "Predictive (condition based)"
    INSPECTION = "inspection", "Inspection"


class WorkOrder(models.Model):
    """Maintenance history: what was found and done on a machine. Corrective work orders with a fault
    and a fault start are ground truth for backtests; a work order that ends a run to failure
    (`ends_run`) closes one run-to-failure history for remaining-useful-life models."""

    equipment = models.ForeignKey(Equipment, on_delete=models.CASCADE, related_name="work_orders")
    number = models.CharField(max_length=64, unique=True, help_text="The CMMS number, e.g. 'WO-2026-0113'.")
    kind = models.CharField(max_length=16, choices=WorkOrderKind.choices, default=WorkOrderKind.CORRECTIVE)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    fault = models.CharField(max_length=64, blank=True, help_text="Fault found, in the diagnoser's vocabulary (bearing_wear, ...).")
    fault_start = models.DateTimeField(null=True, blank=True, help_text="When the fault began, where known (inspection, trend review).")
    failed_at = models.DateTimeField(null=True, blank=True, help_text="When the machine failed (functional failure), for run-to-failure histories.")
    ends_run = models.BooleanField(default=False, help_text="The part was replaced or repaired to as-new: the run to failure ends here.")
    description = models.TextField(blank=True)
    source = models.CharField(max_length=32, default="manual", help_text="manual, import, simulator, ...")

    class Meta:
        ordering = ["-opened_at"]
        indexes = [models.Index(fields=["equipment", "opened_at"], name="work_order_equipment_opened")]

    def __str__(self) -> str:
        return f"{self.number} {self.equipment.tag}"
