from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def fresh_knowledge_indexes():
    """Each test starts with no in-process index (test databases are rolled back between tests)."""
    from phm.assistant import retrieval

    retrieval.reset_indexes()
    yield
    retrieval.reset_indexes()


@pytest.fixture
def tiny_model(monkeypatch):
    """Install the tiny real model as the process's assistant model (no 30 s SmolLM2 load per test)."""
    from models import answering
    from tests.phm.assistant.helpers import tiny_language_model

    model = tiny_language_model()
    monkeypatch.setattr(answering, "_model", model)
    monkeypatch.setattr(answering, "DEFAULT_MAX_NEW_TOKENS", 8)
    return model
