"""The PHM platform's Django project. The Celery app loads with Django so that
``shared_task`` decorators bind to it."""

from phm.celery import app as celery_app

__all__ = ["celery_app"]
