"""Shared fixtures: a small plant, API clients, and ``db_alias`` to run a test on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.conf import settings

ALIASES = ["default", "postgres"]
#: Databases a test may touch: mark storage tests with ``pytest.mark.django_db(databases=ALL_DATABASES)``
#: and take the ``db_alias`` fixture to run once per engine.
ALL_DATABASES = [alias for alias in ALIASES if alias in settings.DATABASES]


@pytest.fixture(params=ALIASES)
def db_alias(request) -> str:
    """Run the test once per database engine (SQLite default, PostgreSQL when reachable)."""
    alias = request.param
    if alias not in settings.DATABASES:
        pytest.skip(settings.POSTGRES_UNAVAILABLE_REASON or "no PostgreSQL alias configured")
    return alias


@pytest.fixture
def t0() -> datetime:
    return datetime(2026, 3, 1, tzinfo=UTC)


def make_plant(using: str = "default"):
    """One site/area/line, a pump with three sensors. Returns (equipment, {measurement: sensor})."""
    from phm.assets.models import Area, Equipment, EquipmentType, Line, Sensor, Site

    site = Site.objects.using(using).create(code="north", name="North plant")
    area = Area.objects.using(using).create(site=site, code="water", name="Water")
    line = Line.objects.using(using).create(area=area, code="ps1", name="Pump station 1")
    pump = Equipment.objects.using(using).create(line=line, tag="P-101", name="Feed pump", equipment_type=EquipmentType.PUMP)
    sensors = {
        "vibration": Sensor.objects.using(using).create(equipment=pump, tag="P-101.VIB", name="Vibration", measurement="vibration_rms", unit="mm/s", range_low=0, range_high=50),
        "temperature": Sensor.objects.using(using).create(equipment=pump, tag="P-101.TEMP", name="Bearing temperature", measurement="bearing_temperature", unit="degC", range_low=-20, range_high=150),
        "pressure": Sensor.objects.using(using).create(equipment=pump, tag="P-101.PRESS", name="Discharge pressure", measurement="pressure", unit="bar", range_low=0, range_high=16),
    }
    return pump, sensors


@pytest.fixture
def plant(db):
    return make_plant()


@pytest.fixture
def api_user(db):
    """The API tests' user: an engineer (configures and ingests). Roles fail closed, so a user in
    no role group could only read; the role matrix itself is tested in tests/phm/security."""
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user("operator", password="pw-operator-1")
    user.groups.add(Group.objects.get(name="engineer"))
    return user


@pytest.fixture
def api_client(api_user):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    token, _ = Token.objects.get_or_create(user=api_user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def user_in_role(username: str, role: str | None):
    """A user in the role's group (the groups come from the dashboard's data migration); ``None``:
    in no role group; ``"superuser"``: a superuser."""
    from django.contrib.auth.models import Group, User

    if role == "superuser":
        return User.objects.create_superuser(username, password=f"pw-{username}-1")
    user = User.objects.create_user(username, password=f"pw-{username}-1")
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def token_client(user):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def engineer_client(db):
    return token_client(user_in_role("engineer-api", "engineer"))


@pytest.fixture
def operator_client(db):
    return token_client(user_in_role("operator-api", "operator"))


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory):
    """The one folder of the embedded ClickHouse engine (chdb): it runs one engine per process on
    one directory, so every test module that uses it must share this fixture (defined once, here)."""
    return tmp_path_factory.mktemp("chdb")
