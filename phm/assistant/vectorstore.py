"""pgvector mirror of the chunk embeddings, used on PostgreSQL when the ``vector`` extension is
installed (or installable): dense search then runs in the database with an HNSW index instead of
over vectors held in every process.

The table is created at run time, not by a migration, because the migration must also apply on
servers without the extension (and on SQLite); ``ensure_vector_table`` is idempotent.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np
from django.db import DatabaseError, connections, transaction

logger = logging.getLogger(__name__)
VECTOR_TABLE = "assistant_chunk_vector"


def _vendor(using: str) -> str:
    return connections[using].vendor


@lru_cache(maxsize=8)
def _cached_available(using: str, settings_key: str) -> bool:
    connection = connections[using]
    try:
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
            if cursor.fetchone() is None:
                return False
            cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return True
    except DatabaseError as exc:  # extension present but we may not create it: fall back to in-process
        logger.info("pgvector not usable on %s: %s", using, exc)
        return False


def pgvector_available(using: str = "default") -> bool:
    if _vendor(using) != "postgresql":
        return False
    settings_dict = connections[using].settings_dict
    return _cached_available(using, f"{settings_dict.get('HOST')}:{settings_dict.get('PORT')}/{settings_dict.get('NAME')}")


def ensure_vector_table(dimension: int, *, using: str = "default") -> None:
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {VECTOR_TABLE} ("
            "chunk_id bigint PRIMARY KEY REFERENCES assistant_chunk(id) ON DELETE CASCADE, "
            f"embedding vector({int(dimension)}) NOT NULL)"
        )
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {VECTOR_TABLE}_hnsw ON {VECTOR_TABLE} USING hnsw (embedding vector_cosine_ops)")


def _literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(vector, dtype=np.float32)) + "]"


def store_vectors(chunk_ids: list[int], vectors: np.ndarray, *, using: str = "default") -> None:
    """Insert the vectors of new chunks (deleted chunks go with ON DELETE CASCADE)."""
    if not chunk_ids:
        return
    ensure_vector_table(vectors.shape[1], using=using)
    with connections[using].cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {VECTOR_TABLE} (chunk_id, embedding) VALUES (%s, %s::vector) ON CONFLICT (chunk_id) DO UPDATE SET embedding = EXCLUDED.embedding",
            [(chunk_id, _literal(vector)) for chunk_id, vector in zip(chunk_ids, vectors)],
        )


def dense_search(query_vector: np.ndarray, *, k: int, chunk_ids: list[int] | None = None, using: str = "default") -> list[tuple[int, float]]:
    """(chunk id, cosine similarity) best first; ``chunk_ids`` restricts the search (a filter)."""
    sql = f"SELECT chunk_id, 1 - (embedding <=> %s::vector) FROM {VECTOR_TABLE}"
    params: list = [_literal(query_vector)]
    if chunk_ids is not None:
        if not chunk_ids:
            return []
        sql += " WHERE chunk_id = ANY(%s)"
        params.append(list(chunk_ids))
    sql += " ORDER BY embedding <=> %s::vector LIMIT %s"
    params += [_literal(query_vector), int(k)]
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        return [(int(chunk_id), float(similarity)) for chunk_id, similarity in cursor.fetchall()]
