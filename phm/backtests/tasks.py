"""Celery task of backtests (queue ``cpu`` by the ``phm.*`` route); a thin wrapper."""

from __future__ import annotations

from celery import shared_task

from phm.backtests import services


@shared_task(name="phm.backtests.tasks.run_backtest", ignore_result=True)
def run_backtest(run_id: int) -> dict:
    run = services.run_backtest(run_id=run_id)
    return {"run": run.pk, "status": run.status}
