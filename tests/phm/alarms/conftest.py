"""The alarm tests deliver to a real receiver on 127.0.0.1 (phm.alarms.receiver). Loopback is not a
webhook destination by default (phm.alarms.egress), so these tests allow it explicitly, the way a
plant allows its SCADA network with PHM_WEBHOOK_ALLOWED_NETWORKS."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def allow_loopback_receiver(settings):
    settings.PHM_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
