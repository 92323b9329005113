"""Detectors for the demo plant: one PCA (Hotelling T² + Q) detector per equipment over all its
sensors, trained on the backfilled history (the trainer leaves injected-fault periods out) and
activated, so the live demo scores and alarms from the first minute."""

from __future__ import annotations

from datetime import datetime

from phm.analytics.models import DetectorConfig, ThresholdKind
from phm.analytics.training import run_training, start_training
from phm.assets.models import Equipment

# Threshold at twice the 99.9th percentile of training scores, with on/off delays and a deadband,
# so normal variation (daily demand cycle) does not chatter; measured on the demo plant. The stuck
# check flags a transmitter frozen for 2 minutes (a plausible frozen value is invisible to PCA; the
# plant trial missed every stuck sensor without it), so the scoring context covers 5 minutes.
DEMO_DETECTOR = {
    "name": "pca-main",
    "method": "pca",
    "params": {"smooth": 3, "stuck_s": 120.0},
    "stride_s": 1.0,
    "window_s": 300.0,
    "on_delay_s": 3.0,
    "off_delay_s": 30.0,
    "deadband": 0.3,
    "threshold_kind": ThresholdKind.QUANTILE,
    "threshold_quantile": 0.999,
    "threshold_margin": 2.0,
}


def create_demo_detectors(*, train_start: datetime, train_end: datetime, equipment_tags: list[str] | None = None) -> list[str]:
    """Create (or reuse) and train the demo detector of each equipment; returns one line per detector."""
    lines = []
    equipment = Equipment.objects.all() if equipment_tags is None else Equipment.objects.filter(tag__in=equipment_tags)
    for item in equipment.order_by("tag"):
        sensors = list(item.sensors.filter(enabled=True))
        if not sensors:
            continue
        fields = {k: v for k, v in DEMO_DETECTOR.items() if k != "name"}
        config, created = DetectorConfig.objects.get_or_create(equipment=item, name=DEMO_DETECTOR["name"], defaults=fields)
        if created:
            config.sensors.set(sensors)
        if config.versions.filter(is_active=True).exists():
            lines.append(f"{item.tag}: detector {config.name} already active")
            continue
        # The job is queued for a worker too; running it here claims it first (conditional
        # update), so the worker finds it done and skips it.
        job = run_training(job_id=start_training(config=config, train_start=train_start, train_end=train_end).pk)
        if job.result is None:
            lines.append(f"{item.tag}: training failed: {job.error}")
        else:
            lines.append(f"{item.tag}: {config.method} detector v{job.result.version} active, threshold {job.result.threshold:.2f}")
    return lines
