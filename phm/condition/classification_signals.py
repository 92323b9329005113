"""New captures go to fault classification: a ``post_save`` hook (connected in
``ConditionConfig.ready``) sends each newly stored, unlabelled capture to the
``classify_new_capture`` task once its transaction commits, whichever path stored it (API, upload,
connector, watched folder, simulator). Labelled captures are training data and are not classified.
A path that stores captures with ``bulk_create`` (no signal) calls
``phm.condition.classification.enqueue_classification`` itself; a capture sent twice is classified
once (one row per capture and version)."""

from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from phm.condition.models import WaveformCapture


@receiver(post_save, sender=WaveformCapture, dispatch_uid="phm.condition.classify_new_capture")
def classify_new_capture_on_commit(sender, instance: WaveformCapture, created: bool, raw: bool = False, using: str = "default", **_) -> None:
    if not created or raw or instance.label or using != "default":
        return  # fixtures (raw), training data (labelled), other databases: nothing to classify here
    from phm.condition.classification import enqueue_classification

    enqueue_classification([instance.pk])
