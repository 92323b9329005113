"""A small demo plant with sister pumps run to failure, for the health / RUL tests."""

from __future__ import annotations

from datetime import UTC, datetime

from phm.condition.demo_rul import DemoFleet

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
SMALL_FLEET = DemoFleet(sister_pumps=6, life_days=(40, 70), current_age_days=(("P-101", 50, 60), ("P-201", 10, 80)), seed=3)
#: Gradient boosting kept small: the tests check the wiring, the harness measures accuracy.
FAST_PARAMS = {"n_estimators": 150, "window": 10, "rul_cap": 60}


def demo_plant_with_histories(fleet: DemoFleet = SMALL_FLEET) -> None:
    from connectors.simulator import DEMO_PLANT
    from phm.assets.services import create_plant
    from phm.condition.demo_rul import create_demo_histories

    create_plant(plant=DEMO_PLANT)
    create_demo_histories(now=NOW, fleet=fleet)
