"""Fixtures of the diagnosis tests: a real FaultDiagnoser on a tiny random backbone (trained once per
session on simulated pump incidents, a few seconds), the demo plant, and alarms raised on faults
played through storage (``phm.analytics.diagnosis_demo``). Import the fixtures into a test module.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

import pytest

pytest.importorskip("models.diagnosis.model")

#: Small and fast: 2 backbone layers of a tiny random Llama, 2 epochs; enough to exercise every path.
TINY_MODEL = {"num_layers": 2, "epochs": 2, "image_epochs": 2, "seed": 0}
TINY_ARTIFACT = "tiny-session"
#: A shorter window than the default 30 min keeps each played fault to a few thousand readings.
SHORT_WINDOWS = {"PHM_DIAGNOSIS_WINDOW_S": "600", "PHM_DIAGNOSIS_BASELINE_S": "900", "PHM_DIAGNOSIS_WARM_UP": "0"}


@lru_cache(maxsize=1)
def tiny_backbone():
    from models.backbone import tiny_random_backbone

    return tiny_random_backbone()


def training_incidents(*, per_class: int = 3, seed: int = 0):
    from models.diagnosis import simulate_incidents

    return simulate_incidents(equipment_types=["pump"], per_class=per_class, seed=seed)


@pytest.fixture(scope="session")
def tiny_diagnoser_folder():
    """A trained tiny diagnoser saved where DiagnoserVersion artifacts live (once per session)."""
    import torch

    from models.diagnosis import FaultDiagnoser
    from phm.analytics.diagnosis import artifacts_root

    torch.set_num_threads(1)
    folder = artifacts_root() / TINY_ARTIFACT
    if not (folder / "config.json").exists():
        FaultDiagnoser(backbone=tiny_backbone(), **TINY_MODEL).fit(training_incidents()).save(folder)
    return folder


@pytest.fixture
def tiny_models(monkeypatch):
    """Every diagnoser this process builds or loads gets the tiny backbone, and explanations come
    from the tiny real language model of the assistant tests (no 30 s SmolLM2 load)."""
    from models import answering
    from phm.analytics import diagnosis
    from tests.phm.assistant.helpers import tiny_language_model

    monkeypatch.setattr(diagnosis, "MODEL_OVERRIDES", {"backbone": tiny_backbone()})
    monkeypatch.setattr(answering, "_model", tiny_language_model())
    for name, value in SHORT_WINDOWS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PHM_DIAGNOSIS_MODEL", "")
    diagnosis.forget_loaded()
    yield
    diagnosis.forget_loaded()


def make_active_version(using: str = "default"):
    from phm.analytics.diagnoser_training import taxonomy_of
    from phm.analytics.diagnosis import loaded_diagnoser
    from phm.analytics.models import DiagnoserVersion

    version = DiagnoserVersion.objects.using(using).create(version=1, artifact=TINY_ARTIFACT, is_active=True, taxonomy={})
    version.taxonomy = taxonomy_of(loaded_diagnoser(version))
    version.save(using=using, update_fields=["taxonomy"])
    return version


@pytest.fixture
def diagnoser_version(db, tiny_diagnoser_folder, tiny_models):
    return make_active_version()


def demo_equipment_on(using: str, tag: str = "P-201"):
    """One demo-plant unit with its sensors on the ``using`` database (``create_plant`` writes to default only)."""
    from connectors.simulator import DEMO_PLANT
    from phm.assets.models import Area, Equipment, Line, Sensor, Site

    definition = DEMO_PLANT.get(tag)
    site = Site.objects.using(using).create(code=DEMO_PLANT.site_code, name=DEMO_PLANT.site_name)
    area = Area.objects.using(using).create(site=site, code=definition.area, name=DEMO_PLANT.areas[definition.area])
    line = Line.objects.using(using).create(area=area, code=definition.line, name=DEMO_PLANT.lines[definition.line][1])
    equipment = Equipment.objects.using(using).create(line=line, tag=tag, name=definition.name, equipment_type=definition.equipment_type)
    Sensor.objects.using(using).bulk_create(
        Sensor(equipment=equipment, tag=definition.sensor_tag(s.measure), name=s.name, measurement=s.measurement, unit=s.unit,
               range_low=s.range_low, range_high=s.range_high, sampling_period_s=s.sampling_period_s)
        for s in definition.sensors
    )
    return equipment


@pytest.fixture
def demo_plant(db):
    from connectors.simulator import DEMO_PLANT
    from phm.assets.services import create_plant

    return create_plant(plant=DEMO_PLANT)


@pytest.fixture(autouse=True)
def fresh_knowledge_indexes():
    from phm.assistant import retrieval

    retrieval.reset_indexes()
    yield
    retrieval.reset_indexes()


#: Played faults end at fixed times (the simulated demand follows the time of day), so the tiny
#: model sees the same incident, and answers the same, on every run.
REFERENCE_END = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def alarm_end(hours_ago: float = 6.0) -> datetime:
    return REFERENCE_END - timedelta(hours=hours_ago)


def played_alarm(*, tag: str = "P-101", fault: str = "bearing_wear", end: datetime | None = None, image: bool = True, using: str = "default"):
    """A fault played into storage (25 min of history, the last 15 of them faulty) and its alarm."""
    from phm.analytics import diagnosis_demo

    injection = diagnosis_demo.play_fault(equipment_tag=tag, fault=fault, end=end or alarm_end(), fault_minutes=15, history_minutes=25,
                                          image=image, using=using)
    return diagnosis_demo.raise_alarm(injection=injection, using=using)


def load_procedures(using: str = "default") -> None:
    """Procedures and work orders of the demo knowledge base (real embeddings)."""
    from phm.assistant.services import DEMO_KB_DIR, ingest_document

    for name in ("procedure_bearing_wear.md", "procedure_cavitation.md", "procedure_sensor_faults.md", "procedure_shaft_alignment.md",
                 "riverside_work_orders.csv"):
        ingest_document(name=name, content=(DEMO_KB_DIR / name).read_bytes(), using=using)
