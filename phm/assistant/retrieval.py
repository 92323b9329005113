"""The knowledge-base index of this process, kept in step with the database.

Each process (web server, Celery worker) holds one :class:`KnowledgeIndex` per database alias.
Before a search it compares the knowledge base's revision with the one it has; when they differ
it catches up incrementally: chunks that disappeared are dropped and only new chunks are read
(their stored embeddings, no re-embedding). On PostgreSQL with pgvector the dense half runs in the
database and this process keeps only BM25.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from models.retrieval.embedding import embed_texts
from models.retrieval.fusion import reciprocal_rank_fusion
from models.retrieval.index import ChunkFilter, Hit, HybridIndex, IndexEntry, SearchMode
from phm.assistant import vectorstore
from phm.assistant.models import Chunk, KnowledgeBaseState

LOAD_BATCH = 2000


def index_text(text: str, equipment: str) -> str:
    """What BM25 and the embedder see: the chunk, prefixed with its equipment when the text does
    not name it (a CSV row of 'Chiller 13' work orders is found by 'Chiller 13')."""
    return text if not equipment or equipment.lower() in text.lower() else f"{equipment}: {text}"


def current_revision(using: str) -> str:
    return KnowledgeBaseState.objects.using(using).filter(pk=1).values_list("revision", flat=True).first() or ""


@dataclass(frozen=True)
class RetrievedChunk:
    chunk: Chunk
    hit: Hit


class KnowledgeIndex:
    def __init__(self, using: str) -> None:
        self.using = using
        self.revision: str | None = None
        self._batch_of: dict[int, str] = {}  # chunk id -> upload batch held in the index
        self.use_pgvector = vectorstore.pgvector_available(using)
        self.index = HybridIndex(store_vectors=not self.use_pgvector)
        self._lock = threading.Lock()

    def sync(self) -> None:
        revision = current_revision(self.using)
        if revision == self.revision:
            return
        with self._lock:
            if revision == self.revision:
                return
            in_db = dict(Chunk.objects.using(self.using).values_list("id", "batch"))
            stale = [key for key, batch in self._batch_of.items() if in_db.get(key) != batch]
            self.index.remove(stale)
            for key in stale:
                del self._batch_of[key]
            missing = sorted(key for key in in_db if key not in self._batch_of)
            for start in range(0, len(missing), LOAD_BATCH):
                rows = list(
                    Chunk.objects.using(self.using)
                    .filter(id__in=missing[start : start + LOAD_BATCH])
                    .values_list("id", "text", "equipment", "equipment_type", "embedding")
                )
                entries = [IndexEntry(key=cid, text=index_text(text, eq), equipment=eq, equipment_type=etype) for cid, text, eq, etype, _ in rows]
                vectors = None if self.use_pgvector else np.stack([np.frombuffer(bytes(blob), dtype=np.float32) for *_, blob in rows])
                self.index.add(entries, vectors)
                self._batch_of.update({key: in_db[key] for key in (e.key for e in entries)})
            self.revision = revision

    def search(self, query: str, *, k: int = 5, mode: SearchMode = "hybrid", chunk_filter: ChunkFilter | None = None, depth: int = 50) -> list[Hit]:
        self.sync()
        if not self.use_pgvector:
            return self.index.search(query, k=k, mode=mode, chunk_filter=chunk_filter, depth=depth)
        return self._search_with_pgvector(query, k=k, mode=mode, chunk_filter=chunk_filter, depth=depth)

    def _search_with_pgvector(self, query: str, *, k: int, mode: SearchMode, chunk_filter: ChunkFilter | None, depth: int) -> list[Hit]:
        bm25_hits = self.index.search(query, k=depth, mode="bm25", chunk_filter=chunk_filter) if mode != "dense" else []
        if mode == "bm25":
            return bm25_hits[:k]
        allowed = self.index.keys_matching(chunk_filter) if chunk_filter is not None else None
        query_vector = embed_texts([query])[0]
        dense = vectorstore.dense_search(query_vector, k=depth, chunk_ids=allowed, using=self.using)
        cosine = dict(dense)
        bm25 = {h.key: h.bm25 for h in bm25_hits}
        if mode == "dense":
            return [Hit(key=key, score=sim, bm25=bm25.get(key, 0.0), dense=sim) for key, sim in dense[:k]]
        fused = reciprocal_rank_fusion([[h.key for h in bm25_hits], [key for key, _ in dense]], weights=[1.0, self.index.dense_weight])[:k]
        missing = [key for key, _ in fused if key not in cosine]
        if missing:  # BM25-only hits: their cosine still decides relevance downstream
            vectors = {cid: np.frombuffer(bytes(blob), dtype=np.float32) for cid, blob in Chunk.objects.using(self.using).filter(id__in=missing).values_list("id", "embedding")}
            cosine.update({cid: float(vec @ query_vector) for cid, vec in vectors.items()})
        return [Hit(key=key, score=score, bm25=bm25.get(key, 0.0), dense=cosine.get(key, 0.0)) for key, score in fused]


_indexes: dict[str, KnowledgeIndex] = {}
_indexes_lock = threading.Lock()


def knowledge_index(using: str = "default") -> KnowledgeIndex:
    with _indexes_lock:
        if using not in _indexes:
            _indexes[using] = KnowledgeIndex(using)
        return _indexes[using]


def reset_indexes() -> None:
    """Forget the in-process indexes (tests recreate their databases between runs)."""
    with _indexes_lock:
        _indexes.clear()


def retrieve(query: str, *, k: int = 5, mode: SearchMode = "hybrid", chunk_filter: ChunkFilter | None = None, using: str = "default") -> list[RetrievedChunk]:
    hits = knowledge_index(using).search(query, k=k, mode=mode, chunk_filter=chunk_filter)
    chunks = Chunk.objects.using(using).select_related("document").in_bulk([h.key for h in hits])
    return [RetrievedChunk(chunks[h.key], h) for h in hits if h.key in chunks]
