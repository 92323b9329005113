"""Celery tasks of the alarms app (queue ``cpu`` by the ``phm.*`` route); thin wrappers."""

from __future__ import annotations

from celery import shared_task

from phm.alarms import delivery, services


@shared_task(name="phm.alarms.tasks.deliver_webhooks", ignore_result=True)
def deliver_webhooks(max_seconds: float = 30.0) -> dict:
    """Deliver every due webhook (kicked on commit of each alarm event, and by beat for retries
    and for claims left behind by a crashed worker)."""
    result = delivery.deliver_due(max_seconds=max_seconds)
    return {"attempted": result.attempted, "delivered": result.delivered, "retrying": result.retrying, "dead": result.dead}


@shared_task(name="phm.alarms.tasks.expire_shelves", ignore_result=True)
def expire_shelves() -> int:
    return services.expire_shelves()
