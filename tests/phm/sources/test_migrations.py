"""Data migrations of the sources app work on the database they are run for, not the default one
(``migrate --database postgres`` read the default database and failed when it was not migrated)."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps as global_apps
from django.db import connections

from phm.sources.models import ConnectorDefinition

drop_drain = importlib.import_module("phm.sources.migrations.0003_log_miner_state")


@pytest.mark.django_db(databases=["default", "postgres"])
def test_drain_settings_are_dropped_on_the_database_being_migrated():
    if "postgres" not in connections.databases:
        pytest.skip("PostgreSQL unreachable")
    config = {"path": "/var/log/x.log", "miner": {"sim_th": 0.4, "depth": 4, "max_templates": 500}}
    row = ConnectorDefinition.objects.using("postgres").create(name="drive-log", kind="logfile", config=config)
    ConnectorDefinition.objects.using("default").create(name="drive-log", kind="logfile", config=config)

    drop_drain.drop_drain_settings(global_apps, SimpleNamespace(connection=connections["postgres"]))

    assert ConnectorDefinition.objects.using("postgres").get(pk=row.pk).config["miner"] == {"max_templates": 500}
    assert ConnectorDefinition.objects.using("default").get().config["miner"]["sim_th"] == 0.4  # not the database migrated
