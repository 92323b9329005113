"""Shared set-up for the benchmarks that go through Django: a fresh SQLite file, a fresh
PostgreSQL database on the local server as the ``postgres`` alias, and a block of sensors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG_ADMIN_URL = os.environ.get("PHM_BENCH_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres")


def postgres_url(database: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"


def recreate_postgres_database(database: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {database}")


def configure_django(sqlite_path: Path, postgres_database: str | None) -> None:
    """Point Django at ``sqlite_path`` (alias default) and, if given, the PostgreSQL database (alias postgres)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "phm.settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{sqlite_path}"
    os.environ.setdefault("PHM_DATA_ROOT", str(sqlite_path.parent))
    if postgres_database:
        os.environ["PHM_TEST_POSTGRES_URL"] = postgres_url(postgres_database)
    import django

    django.setup()


def open_databases(workdir: Path, *, postgres_database: str, skip_postgres: bool) -> bool:
    """Configure Django on a fresh SQLite file in ``workdir`` and, unless skipped or unreachable, a
    fresh PostgreSQL database; returns whether PostgreSQL is in the run."""
    with_postgres = not skip_postgres
    if with_postgres:
        try:
            recreate_postgres_database(postgres_database)
        except Exception as exc:  # any failure: measure SQLite alone and say why
            print(f"PostgreSQL unavailable ({exc}); SQLite only")
            with_postgres = False
    configure_django(workdir / "bench.sqlite3", postgres_database if with_postgres else None)
    return with_postgres


def make_sensors(alias: str, *, site_code: str, equipment_tag: str, names: list[str]) -> list[str]:
    """One site/area/line/equipment with a sensor ``<equipment_tag>.<name>`` per name; returns the tags."""
    from phm.assets.models import Area, Equipment, Line, Sensor, Site

    site = Site.objects.using(alias).create(code=site_code, name="Bench")
    area = Area.objects.using(alias).create(site=site, code="a", name="A")
    line = Line.objects.using(alias).create(area=area, code="l", name="L")
    equipment = Equipment.objects.using(alias).create(line=line, tag=equipment_tag, name="Bench equipment")
    tags = [f"{equipment_tag}.{name}" for name in names]
    Sensor.objects.using(alias).bulk_create(Sensor(equipment=equipment, tag=tag, name=tag) for tag in tags)
    return tags
