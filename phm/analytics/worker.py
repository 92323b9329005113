"""``python -m phm.analytics.worker worker|beat [celery args]``: the Celery CLI with the analytics
and alarms beat schedule (phm/analytics/schedule.py) installed, whether or not the settings'
``CELERY_BEAT_SCHEDULE`` includes it yet. Used by the end-to-end tests and the bench."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "phm.settings")
    from phm.analytics.schedule import BEAT_SCHEDULE
    from phm.celery import app

    app.conf.beat_schedule = {**BEAT_SCHEDULE, **(app.conf.beat_schedule or {})}
    app.start(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
