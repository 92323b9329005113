"""Celery beat entries of the analytics and alarms apps; ``phm/settings.py`` loads them into
``CELERY_BEAT_SCHEDULE`` (this module imports nothing from Django, so settings may import it).

Intervals come from the environment so a plant can trade latency for load:
``PHM_SCORING_TICK_S`` (default 1 s; each detector still scores at most every
``scoring_interval_s``), ``PHM_WEBHOOK_TICK_S`` (default 2 s: retries and crashed claims),
``PHM_SHELVE_TICK_S`` (default 30 s), ``PHM_READINGS_MAINTAIN_TICK_S`` (default 3600 s: readings
partitions ahead and retention), ``PHM_REDIAGNOSE_TICK_S`` (default 30 s: follow-up and
escalation re-diagnoses of open alarms), ``PHM_HEALTH_TICK_S`` (default 3600 s: health
indicators and RUL estimates of every equipment).
"""

from __future__ import annotations

import os

BEAT_SCHEDULE = {
    "analytics-score-due-detectors": {
        "task": "phm.analytics.tasks.score_due",
        "schedule": float(os.environ.get("PHM_SCORING_TICK_S", 1.0)),
        "options": {"expires": 10},  # a tick that waited in a backlog is stale: the next one covers it
    },
    "alarms-deliver-webhooks": {
        "task": "phm.alarms.tasks.deliver_webhooks",
        "schedule": float(os.environ.get("PHM_WEBHOOK_TICK_S", 2.0)),
        "options": {"expires": 10},
    },
    "telemetry-maintain-readings": {
        # Partitions ahead and retention of the readings store (phm_readings maintain).
        "task": "phm.telemetry.tasks.maintain_readings",
        "schedule": float(os.environ.get("PHM_READINGS_MAINTAIN_TICK_S", 3600.0)),
        "options": {"expires": 600},
    },
    "analytics-rediagnose-due": {
        "task": "phm.analytics.tasks.rediagnose_due",
        "schedule": float(os.environ.get("PHM_REDIAGNOSE_TICK_S", 30.0)),
        "options": {"expires": 60},
    },
    "condition-health-and-rul": {
        "task": "phm.condition.tasks.update_health_and_rul",
        "schedule": float(os.environ.get("PHM_HEALTH_TICK_S", 3600.0)),
        "options": {"expires": 600},
    },
    "alarms-expire-shelves": {
        "task": "phm.alarms.tasks.expire_shelves",
        "schedule": float(os.environ.get("PHM_SHELVE_TICK_S", 30.0)),
        "options": {"expires": 60},
    },
}
