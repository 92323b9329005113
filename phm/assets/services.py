"""Asset services: building a plant hierarchy from a definition (used by the demo setup)."""

from __future__ import annotations

from django.db import transaction

from connectors.simulator import PlantDef
from phm.assets.models import Area, Equipment, Line, Sensor, Site


@transaction.atomic
def create_plant(*, plant: PlantDef) -> Site:
    """Create or update the site, areas, lines, equipment and sensors of ``plant`` (idempotent)."""
    site, _ = Site.objects.update_or_create(code=plant.site_code, defaults={"name": plant.site_name})
    areas = {
        code: Area.objects.update_or_create(site=site, code=code, defaults={"name": name})[0] for code, name in plant.areas.items()
    }
    lines = {
        code: Line.objects.update_or_create(area=areas[area_code], code=code, defaults={"name": name})[0]
        for code, (area_code, name) in plant.lines.items()
    }
    for item in plant.equipment:
        equipment, _ = Equipment.objects.update_or_create(
            tag=item.tag,
            defaults={
                "line": lines[item.line],
                "name": item.name,
                "equipment_type": item.equipment_type,
                "criticality": item.criticality,
                "attributes": {
                    "rated_speed_rpm": item.rated_speed_rpm,
                    "rated_power_kw": item.rated_power_kw,
                    **({"rated_flow_m3h": item.rated_flow, "rated_head_bar": item.rated_head_bar} if item.rated_flow else {}),
                },
            },
        )
        for sensor in item.sensors:
            Sensor.objects.update_or_create(
                tag=item.sensor_tag(sensor.measure),
                defaults={
                    "equipment": equipment,
                    "name": sensor.name,
                    "measurement": sensor.measurement,
                    "unit": sensor.unit,
                    "range_low": sensor.range_low,
                    "range_high": sensor.range_high,
                    "sampling_period_s": sensor.sampling_period_s,
                },
            )
    return site
