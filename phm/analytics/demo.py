"""Detectors for the demo plant: one PCA (Hotelling T² + Q) detector per equipment over all its
sensors, trained on the backfilled history (the trainer leaves injected-fault periods out) and
activated, so the live demo scores and alarms from the first minute."""

from __future__ import annotations

from datetime import datetime, timedelta

from phm.analytics.models import DetectorConfig, ThresholdKind
from phm.analytics.training import run_training, start_training
from phm.assets.models import Equipment

# Threshold at twice the 99.9th percentile of training scores, with on/off delays and a deadband,
# so normal variation (daily demand cycle) does not chatter; measured on the demo plant. The stuck
# check flags a transmitter frozen for 2 minutes (a plausible frozen value is invisible to PCA; the
# plant trial missed every stuck sensor without it). The drift check averages each sensor's
# residual from what the others (and the time of day) predict over 15 minutes: a transmitter
# walking away at a few units an hour stays inside the training spread (the trial caught 47 % of
# drifts without it). The time of day stands for the ambient temperature under the bearing
# thermometers, which no sensor of a pump measures (without it their drift limit was ±14 °C). Its
# limits come from the training day. The scoring context must reach back the whole drift window
# (16 minutes), or the first steps of each chunk would score 0 on it.
DEMO_DETECTOR = {
    "name": "pca-main",
    "method": "pca",
    "params": {"smooth": 3, "stuck_s": 120.0, "drift_s": 900.0, "drift_daily": True},
    "stride_s": 1.0,
    "window_s": 960.0,
    "on_delay_s": 3.0,
    "off_delay_s": 30.0,
    "deadband": 0.3,
    "threshold_kind": ThresholdKind.QUANTILE,
    "threshold_quantile": 0.999,
    "threshold_margin": 2.0,
}

#: The drift limits are learnt from the training history, and a sensor's residual from the others
#: follows the time of day (ambient temperature, demand); a history shorter than one daily cycle
#: (``phm_demo``'s default 6 h) would set limits another time of day exceeds, so it trains without it.
DRIFT_MIN_HISTORY = timedelta(hours=24)


def demo_detector_fields(*, history: timedelta) -> dict:
    """The demo detector's fields for a training history of this length (the drift check only
    when the history is long enough to learn its limits)."""
    fields = {k: v for k, v in DEMO_DETECTOR.items() if k != "name"}
    if history < DRIFT_MIN_HISTORY:
        fields["params"] = {k: v for k, v in fields["params"].items() if not k.startswith("drift_")}
        fields["window_s"] = 300.0  # the stuck check's 2 minutes, with room
    return fields


def create_demo_detectors(*, train_start: datetime, train_end: datetime, equipment_tags: list[str] | None = None) -> list[str]:
    """Create (or reuse) and train the demo detector of each equipment; returns one line per detector."""
    lines = []
    equipment = Equipment.objects.all() if equipment_tags is None else Equipment.objects.filter(tag__in=equipment_tags)
    for item in equipment.order_by("tag"):
        sensors = list(item.sensors.filter(enabled=True))
        if not sensors:
            continue
        fields = demo_detector_fields(history=train_end - train_start)
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
