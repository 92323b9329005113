"""pgvector detection against the real database servers: the extension is used when the server
offers it, otherwise dense search falls back to the in-process index (the case on the development
machine, whose PostgreSQL 15 has no ``postgresql-15-pgvector`` package)."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connections

from phm.assistant import retrieval, services, vectorstore
from phm.assistant.models import Chunk
from tests.conftest import ALL_DATABASES

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)

NOTE = b"# Chiller\n\n## Condenser\nClean the condenser tubes every 12 months.\n\n## Oil\nOil analysis every quarter.\n"


def server_offers_pgvector(alias: str) -> bool:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        return cursor.fetchone() is not None


def test_sqlite_never_uses_pgvector():
    assert vectorstore.pgvector_available("default") is False
    assert retrieval.KnowledgeIndex("default").use_pgvector is False


def test_postgresql_detection_matches_what_the_server_offers(db_alias):
    if db_alias != "postgres":
        pytest.skip("PostgreSQL only")
    vectorstore._cached_available.cache_clear()  # ask the server, not an earlier answer
    assert vectorstore.pgvector_available(db_alias) is server_offers_pgvector(db_alias)


def test_postgresql_dense_search_runs_where_the_detection_says(db_alias):
    """Without the extension: vectors are held in-process and hybrid search still ranks by meaning.
    With it: vectors are mirrored into the pgvector table and searched there."""
    if db_alias != "postgres":
        pytest.skip("PostgreSQL only")
    vectorstore._cached_available.cache_clear()
    services.ingest_document(name="chiller.md", content=NOTE, using=db_alias)
    index = retrieval.KnowledgeIndex(db_alias)
    hits = index.search("how often are the condenser tubes cleaned", k=2, mode="dense")
    assert Chunk.objects.using(db_alias).get(pk=hits[0].key).location.endswith("Condenser")
    if server_offers_pgvector(db_alias):
        assert index.use_pgvector and len(index.index) == 2
        with connections[db_alias].cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {vectorstore.VECTOR_TABLE}")
            assert cursor.fetchone()[0] == 2
    else:
        assert not index.use_pgvector
        assert index.index.store_vectors and index.index._vectors[: len(index.index)].shape == (2, 384)
        assert np.isclose(np.linalg.norm(index.index._vectors[0]), 1.0, atol=1e-4)
