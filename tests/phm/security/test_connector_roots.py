"""Finding 1 of issue 19: a connector definition may only name files inside PHM_CONNECTOR_ROOTS.
Refused on save (API, admin/model validation) with the field and the roots, and again when
``phm_connectors`` builds it."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError

from phm.sources.models import ConnectorDefinition, ConnectorStatus
from phm.sources.services import build_supervisor

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(tmp_path, settings):
    folder = tmp_path / "connectors"
    folder.mkdir()
    settings.PHM_CONNECTOR_ROOTS = [folder]
    return folder


def post(client, kind: str, config: dict, name: str = "c1"):
    return client.post("/api/v1/connectors/", {"name": name, "kind": kind, "config": config}, format="json")


def refused_reason(response) -> str:
    assert response.status_code == 400, response.content
    return response.json()["detail"]["config"][0]


def test_default_root_is_a_folder_under_the_data_root():
    assert [str(p) for p in django_settings.PHM_CONNECTOR_ROOTS] == [str(django_settings.DATA_ROOT / "connectors")]


@pytest.mark.parametrize(
    "kind,config",
    [
        ("logfile", {"path": "/etc/passwd"}),
        ("image_folder", {"directory": "/etc"}),
        ("file_folder", {"directory": "/"}),
    ],
)
def test_system_paths_are_refused_naming_the_field_and_roots(engineer_client, root, kind, config):
    reason = refused_reason(post(engineer_client, kind, config))
    field = next(iter(config))
    assert f"{field}: " in reason and str(root) in reason and "PHM_CONNECTOR_ROOTS" in reason
    assert not ConnectorDefinition.objects.exists()


def test_the_servers_secret_key_is_refused(engineer_client, root):
    reason = refused_reason(post(engineer_client, "logfile", {"path": str(django_settings.DATA_ROOT / "secret_key")}))
    assert "outside the allowed connector roots" in reason


def test_dot_dot_traversal_out_of_the_root_is_refused(engineer_client, root):
    reason = refused_reason(post(engineer_client, "logfile", {"path": f"{root}/plc/../../secret_key"}))
    assert "resolves to" in reason


def test_a_symlink_pointing_out_of_the_root_is_refused(engineer_client, root, tmp_path):
    (tmp_path / "secret").write_text("x")
    (root / "plc.log").symlink_to(tmp_path / "secret")
    reason = refused_reason(post(engineer_client, "logfile", {"path": str(root / "plc.log")}))
    assert str(tmp_path / "secret") in reason


def test_paths_inside_the_root_are_accepted(engineer_client, root):
    assert post(engineer_client, "logfile", {"path": str(root / "plc" / "plc.log")}).status_code == 201
    assert post(engineer_client, "image_folder", {"directory": str(root / "inbox")}, name="c2").status_code == 201
    assert post(engineer_client, "file_folder", {"directory": str(root / "historian")}, name="c3").status_code == 201


def test_an_update_to_a_path_outside_is_refused(engineer_client, root):
    post(engineer_client, "logfile", {"path": str(root / "plc.log")})
    response = engineer_client.patch("/api/v1/connectors/c1/", {"config": {"path": "/etc/shadow"}}, format="json")
    assert "outside the allowed connector roots" in refused_reason(response)
    assert ConnectorDefinition.objects.get(name="c1").config["path"] == str(root / "plc.log")


def test_model_validation_used_by_the_admin_refuses_it(root):
    definition = ConnectorDefinition(name="c1", kind="image_folder", config={"directory": "/etc"})
    with pytest.raises(ValidationError, match="directory: /etc is outside"):
        definition.full_clean()


def test_the_supervisor_refuses_a_definition_that_bypassed_validation(root):
    """Written to the database directly (or saved before the roots shrank): not run, status says why."""
    bad = ConnectorDefinition.objects.create(name="sneaky", kind="logfile", config={"path": "/etc/passwd"})
    good = ConnectorDefinition.objects.create(name="plc", kind="logfile", config={"path": str(root / "plc.log")})
    supervisor, _spools = build_supervisor([bad, good])
    assert [c.name for c in supervisor.connectors] == ["plc"]
    status = ConnectorStatus.objects.get(connector=bad)
    assert status.state == "refused" and "path: /etc/passwd is outside" in status.last_error
