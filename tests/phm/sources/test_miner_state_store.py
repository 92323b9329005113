"""A log connector's miner state round-trips through the database on every backend (the
skeleton wildcard must be a character PostgreSQL's JSON accepts)."""

from __future__ import annotations

import pytest

from connectors.logtemplates import TemplateMiner
from phm.sources.models import LogMinerState
from tests.conftest import ALL_DATABASES

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)


@pytest.mark.parametrize("alias", ALL_DATABASES)
def test_miner_state_round_trips_and_ids_continue(alias):
    miner = TemplateMiner()
    lines = ["pump P1 started after 3 s", "valve V1 opened by alice", "valve V2 opened by bob", "valve V3 opened by carol", "rhost=scada.local user=ops"]
    ids = [miner.add(line).template_id for line in lines]
    LogMinerState.objects.using(alias).update_or_create(key="logfile:t", defaults={"state": miner.state()})
    stored = LogMinerState.objects.using(alias).get(key="logfile:t").state
    restored = TemplateMiner.from_state(stored)
    assert [str(restored.resolve(restored.add(line).template_id)) for line in lines] == [str(miner.resolve(i)) for i in ids]
    assert restored.template(ids[1]) == "valve <*> opened by <*>"
