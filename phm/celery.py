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
# Route by task name: a task lands on its queue whoever sends it.
app.conf.task_routes = {
    "phm.telemetry.*": {"queue": "ingest", "routing_key": "ingest"},
    "phm.sources.*": {"queue": "ingest", "routing_key": "ingest"},
    "phm.analytics.tasks.train_*": {"queue": "cpu", "routing_key": "cpu"},
    "phm.analytics.tasks.diagnose*": {"queue": "gpu", "routing_key": "gpu"},
    "phm.*": {"queue": "cpu", "routing_key": "cpu"},
}
app.autodiscover_tasks()
