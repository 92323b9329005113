"""Fleet detectors: the detectors of scope ``fleet`` that train together (same group, or same name
on equipment of the same type), one pooled model (``models.fleet.fit_fleet``) with one calibrated
version per member. Each member then scores live through the ordinary per-detector path: its own
sensors, its own version, its own threshold and alarms.

Channels are matched across members by role: a sensor's ``measurement`` (its ``name`` when empty),
in the members' tag order, which must give every member the same list.
"""

from __future__ import annotations

import time
from datetime import datetime

import numpy as np
import pandas as pd
from django.utils.dateparse import parse_datetime

from phm.analytics.models import DetectorConfig, DetectorScope, ModelVersion, TrainingJob
from phm.analytics.training import (
    MIN_TRAINING_STEPS, TrainingError, grid_frame, healthy_frames, save_version, threshold_for, training_metrics,
)


def fleet_members(config: DetectorConfig) -> list[DetectorConfig]:
    """The enabled fleet detectors that train with ``config`` (itself included), by equipment tag."""
    if config.scope != DetectorScope.FLEET:
        return [config]
    members = DetectorConfig.objects.filter(scope=DetectorScope.FLEET, method=config.method).select_related("equipment")
    if config.fleet_group:
        members = members.filter(fleet_group=config.fleet_group)
    else:
        members = members.filter(fleet_group="", name=config.name, equipment__equipment_type=config.equipment.equipment_type)
    found = [m for m in members.filter(enabled=True).order_by("equipment__tag") if m.params == config.params]
    if config.pk not in {m.pk for m in found}:
        found.append(config)  # a disabled detector may still be trained explicitly
    return sorted(found, key=lambda m: m.equipment.tag)


def sensor_role(sensor) -> str:
    return sensor.measurement or sensor.name


def member_roles(members: list[DetectorConfig]) -> tuple[list[str], dict[int, list]]:
    """The fleet's channel roles and each member's sensors in tag order; a clear error when the
    members do not measure the same things in the same order."""
    sensors = {m.pk: list(m.sensors.order_by("tag")) for m in members}
    reference = members[0]
    roles = [sensor_role(s) for s in sensors[reference.pk]]
    if len(set(roles)) != len(roles):
        raise TrainingError(f"fleet detector {reference}: sensors share a measurement ({roles}); give each a distinct measurement")
    for member in members[1:]:
        own = [sensor_role(s) for s in sensors[member.pk]]
        if own != roles:
            raise TrainingError(
                f"fleet member {member} measures {own} (sensors in tag order), {reference} measures {roles}: "
                "a fleet needs the same measurements on every member"
            )
    return roles, sensors


def member_range(job: TrainingJob, member: DetectorConfig) -> tuple[datetime, datetime]:
    """The member's training range: its entry in ``job.member_ranges`` or the job's range."""
    entry = (job.member_ranges or {}).get(member.equipment.tag)
    if entry is None:
        return job.train_start, job.train_end
    start, end = (parse_datetime(v) if isinstance(v, str) else v for v in entry)
    if start is None or end is None or end <= start:
        raise TrainingError(f"member_ranges[{member.equipment.tag!r}] = {entry!r} is not a [start, end] pair of ISO times with end > start")
    return start, end


def train_fleet(*, job: TrainingJob, progress) -> ModelVersion:
    """Fit the fleet of ``job.config`` on every member's healthy training frames, recalibrate and
    version it per member (activated when the job says so); return the job's config's version."""
    from models.fleet import fit_fleet

    members = fleet_members(job.config)
    roles, sensors = member_roles(members)
    progress.report(stage=f"loading data of {len(members)} units", percent=5)
    frames: dict[str, list[pd.DataFrame]] = {}
    ranges: dict[int, tuple[datetime, datetime, int]] = {}
    for member in members:
        start, end = member_range(job, member)
        frame = grid_frame(config=member, start=start, end=end, sensors=sensors[member.pk])
        if len(frame) < MIN_TRAINING_STEPS:
            raise TrainingError(f"fleet member {member}: only {len(frame)} steps between {start.isoformat()} and {end.isoformat()}; need {MIN_TRAINING_STEPS}")
        parts, excluded = healthy_frames(member, frame, start, end)
        if not parts:
            raise TrainingError(f"fleet member {member}: no fault-free stretch of training data is long enough")
        frames[member.equipment.tag] = parts
        ranges[member.pk] = (start, end, excluded)
    progress.report(stage="fitting", percent=20)
    clock = time.perf_counter()
    fit = fit_fleet(
        job.config.method, job.config.params, frames, roles=roles,
        columns={m.equipment.tag: [s.tag for s in sensors[m.pk]] for m in members}, on_epoch=progress.on_epoch,
    )
    fit_seconds = time.perf_counter() - clock
    progress.report(stage="evaluating", percent=85)
    own = None
    for member in members:
        detector = fit.units[member.equipment.tag]
        # The member's own frames (its tags): its threshold comes from its own training scores.
        parts = frames[member.equipment.tag]
        train_scores = np.concatenate([detector.score(p).to_numpy() for p in parts])
        threshold = threshold_for(member, train_scores)
        metrics = training_metrics(config=member, detector=detector, frames=parts, train_scores=train_scores, threshold=threshold,
                                   fit_seconds=fit_seconds)
        metrics["fleet_members"] = [m.equipment.tag for m in members]
        metrics["fleet_train_steps"] = int(sum(len(p) for ps in frames.values() for p in ps))
        start, end, excluded = ranges[member.pk]
        version = save_version(config=member, detector=detector, metrics=metrics, threshold=threshold, train_start=start, train_end=end,
                               excluded=excluded, activate=job.activate)
        if member.pk == job.config.pk:
            own = version
    progress.report(stage="done", percent=100)
    return own
