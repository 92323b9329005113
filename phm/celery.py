"""Celery application: queues ``ingest``, ``cpu`` and ``gpu``, routed by task name.

The broker comes from ``PHM_BROKER_URL`` (see settings). The embedded default is kombu's
filesystem transport under ``var/broker`` (with atomic writes, ``phm/broker.py``): a real
cross-process queue that needs no server.
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

from phm import broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "phm.settings")
broker.register()  # filesystem:// -> the multi-process-safe transport in phm/broker.py

app = Celery("phm")
app.config_from_object("django.conf:settings", namespace="CELERY")

QUEUE_NAMES = ("ingest", "cpu", "gpu")
app.conf.task_queues = tuple(Queue(name, routing_key=name) for name in QUEUE_NAMES)
app.conf.task_default_queue = "cpu"
app.conf.task_default_routing_key = "cpu"
DIAGNOSIS_TASKS = (
    "phm.analytics.tasks.diagnose", "phm.analytics.tasks.explain_diagnosis", "phm.analytics.tasks.retrain_diagnoser",
)


def route_diagnosis(name: str, args=None, kwargs=None, options=None, task=None, **extra) -> dict | None:
    """Diagnosis tasks (and the diagnoser's retraining) go where ``DiagnosisConfig`` says (``PHM_DIAGNOSIS_QUEUE``, else ``gpu`` when
    ``PHM_GPU_WORKER`` is set, else ``cpu``): a plant without a GPU worker must not park them on a
    queue nobody consumes."""
    if name not in DIAGNOSIS_TASKS:
        return None
    from phm.analytics.diagnosis import DiagnosisConfig  # at send time: Django is set up by then

    queue = DiagnosisConfig.from_env().queue
    return {"queue": queue, "routing_key": queue}


# Route by task name: a task lands on its queue whoever sends it.
app.conf.task_routes = (
    route_diagnosis,
    {
        "phm.telemetry.*": {"queue": "ingest", "routing_key": "ingest"},
        "phm.sources.*": {"queue": "ingest", "routing_key": "ingest"},
        "phm.analytics.tasks.train_*": {"queue": "cpu", "routing_key": "cpu"},
        "phm.*": {"queue": "cpu", "routing_key": "cpu"},
    },
)
app.autodiscover_tasks()
