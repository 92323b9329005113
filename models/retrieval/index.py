"""In-process hybrid index: BM25 (bm25s) + dense MiniLM vectors, fused by reciprocal rank.

Adds and removals are incremental for the dense part (rows appended, removed rows masked); the
BM25 statistics depend on the whole corpus, so BM25 is rebuilt lazily on the first search after
a change (bm25s indexes ~100k short chunks in a few seconds). Filters by equipment / equipment
type are applied as masks over the scores, before the top-k cut, so a filter never empties a
result that had matching chunks further down.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from models.retrieval.fusion import DENSE_WEIGHT, RRF_K, reciprocal_rank_fusion
from models.retrieval.text import tokenize

SearchMode = Literal["hybrid", "bm25", "dense"]
SEARCH_MODES: tuple[str, ...] = ("hybrid", "bm25", "dense")


@dataclass(frozen=True)
class IndexEntry:
    key: int
    text: str
    equipment: str = ""
    equipment_type: str = ""


@dataclass(frozen=True)
class ChunkFilter:
    """Which chunks a search may return. A chunk about one equipment matches when that equipment
    is asked for; a chunk about an equipment type (no single equipment) when the type is; a chunk
    about neither (plant-wide procedures) when ``include_general``. Values compare case-insensitively."""

    equipment: frozenset[str] = frozenset()
    equipment_types: frozenset[str] = frozenset()
    include_general: bool = True

    @classmethod
    def of(cls, *, equipment: Iterable[str] = (), equipment_types: Iterable[str] = (), include_general: bool = True) -> ChunkFilter:
        return cls(frozenset(e.lower() for e in equipment if e), frozenset(t.lower() for t in equipment_types if t), include_general)

    def mask(self, equipment: np.ndarray, equipment_type: np.ndarray) -> np.ndarray:
        no_equipment = equipment == ""
        keep = np.isin(equipment, list(self.equipment)) if self.equipment else np.zeros(len(equipment), dtype=bool)
        if self.equipment_types:
            keep |= no_equipment & np.isin(equipment_type, list(self.equipment_types))
        if self.include_general:
            keep |= no_equipment & (equipment_type == "")
        return keep


@dataclass(frozen=True)
class Hit:
    key: int
    score: float  # the ranking score of the mode used (RRF for hybrid)
    bm25: float  # BM25 score of the chunk for the query (0 when no query term occurs in it)
    dense: float  # cosine similarity of chunk and query embeddings


@dataclass
class _Rows:
    keys: list[int] = field(default_factory=list)
    tokens: list[list[str]] = field(default_factory=list)  # BM25 tokens, kept so a rebuild does not re-tokenize
    equipment: list[str] = field(default_factory=list)
    equipment_type: list[str] = field(default_factory=list)


class HybridIndex:
    def __init__(self, *, embed: Callable[[list[str]], np.ndarray] | None = None, dimension: int | None = None, store_vectors: bool = True,
                 dense_weight: float | None = None) -> None:
        """``store_vectors=False`` keeps only the BM25 side (dense search runs elsewhere, e.g. pgvector).
        ``dense_weight``: weight of the dense ranking in the hybrid fusion (BM25 has 1; default
        :data:`models.retrieval.fusion.DENSE_WEIGHT`)."""
        self.store_vectors = store_vectors
        self.dense_weight = DENSE_WEIGHT if dense_weight is None else dense_weight
        if embed is None and store_vectors:
            from models.retrieval.embedding import embed_texts as embed
        self._embed = embed
        self._lock = threading.RLock()
        self._rows = _Rows()
        self._row_of: dict[int, int] = {}
        self._alive = np.zeros(0, dtype=bool)
        self._vectors = np.zeros((0, dimension or 0), dtype=np.float32)
        self._size = 0  # rows used in _vectors (capacity grows by doubling)
        self._bm25 = None
        self._bm25_rows = np.zeros(0, dtype=np.int64)  # BM25 document i -> our row
        self._bm25_dirty = True
        self._meta_cache: tuple[np.ndarray, np.ndarray] | None = None
        self._vocabulary: set[str] = set()
        self._mask_cache: dict[ChunkFilter, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._row_of)

    def __contains__(self, key: int) -> bool:
        return key in self._row_of

    def keys(self) -> list[int]:
        return list(self._row_of)

    # --- changes ---------------------------------------------------------------------------------

    def add(self, entries: Sequence[IndexEntry], embeddings: np.ndarray | None = None) -> None:
        """Add entries (an existing key is replaced). ``embeddings`` (normalised, one row per entry)
        skips the embedder, e.g. when they come from the database."""
        if not entries:
            return
        if not self.store_vectors:
            embeddings = np.zeros((len(entries), 0), dtype=np.float32)
        elif embeddings is None:
            embeddings = self._embed([e.text for e in entries])
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.shape[0] != len(entries):
            raise ValueError(f"{len(entries)} entries but {embeddings.shape[0]} embeddings")
        with self._lock:
            self.remove([e.key for e in entries if e.key in self._row_of])
            self._reserve(len(entries), embeddings.shape[1])
            start = self._size
            self._vectors[start : start + len(entries)] = embeddings
            for offset, entry in enumerate(entries):
                self._row_of[entry.key] = start + offset
                self._rows.keys.append(entry.key)
                self._rows.tokens.append(tokenize(entry.text))
                self._rows.equipment.append(entry.equipment.lower())
                self._rows.equipment_type.append(entry.equipment_type.lower())
            self._size += len(entries)
            self._alive = np.concatenate([self._alive, np.ones(len(entries), dtype=bool)])
            self._bm25_dirty = True
            self._meta_cache = None

    def remove(self, keys: Iterable[int]) -> int:
        removed = 0
        with self._lock:
            for key in keys:
                row = self._row_of.pop(key, None)
                if row is not None:
                    self._alive[row] = False
                    removed += 1
            if removed:
                self._bm25_dirty = True
                if self._size > 1000 and len(self._row_of) < self._size // 2:
                    self._compact()
        return removed

    def _reserve(self, extra: int, dimension: int) -> None:
        if self._vectors.shape[1] not in (0, dimension) and self._size:
            raise ValueError(f"embedding dimension {dimension} differs from the index's {self._vectors.shape[1]}")
        needed = self._size + extra
        if needed > self._vectors.shape[0] or self._vectors.shape[1] != dimension:
            grown = np.zeros((max(needed, 2 * self._vectors.shape[0], 256), dimension), dtype=np.float32)
            if self._size:
                grown[: self._size] = self._vectors[: self._size]
            self._vectors = grown

    def _compact(self) -> None:
        rows = np.flatnonzero(self._alive)
        old = self._rows
        self._rows = _Rows([old.keys[r] for r in rows], [old.tokens[r] for r in rows], [old.equipment[r] for r in rows], [old.equipment_type[r] for r in rows])
        self._vectors = self._vectors[rows].copy()
        self._size = len(rows)
        self._alive = np.ones(len(rows), dtype=bool)
        self._row_of = {key: i for i, key in enumerate(self._rows.keys)}
        self._meta_cache = None

    # --- search ----------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        mode: SearchMode = "hybrid",
        chunk_filter: ChunkFilter | None = None,
        depth: int = 50,
        query_embedding: np.ndarray | None = None,
        dense_weight: float | None = None,
    ) -> list[Hit]:
        """Best ``k`` chunks for ``query``. Hybrid fuses the top ``depth`` of BM25 and of dense."""
        if mode not in SEARCH_MODES:
            raise ValueError(f"mode must be one of {SEARCH_MODES}, got {mode!r}")
        if k < 1:
            raise ValueError("k must be >= 1")
        with self._lock:
            if not self._row_of:
                return []
            allowed = self._alive[: self._size].copy()
            if chunk_filter is not None:
                allowed &= self._filter_mask(chunk_filter)
            if not allowed.any():
                return []
            bm25 = self._bm25_scores(query)
            if not self.store_vectors:
                if mode != "bm25":
                    raise ValueError("this index holds no vectors: only mode='bm25' is possible")
                dense = np.zeros(self._size, dtype=np.float32)
            else:
                if query_embedding is None:
                    query_embedding = self._embed([query])[0]
                dense = self._vectors[: self._size] @ np.asarray(query_embedding, dtype=np.float32)
            keys = self._rows.keys
        bm25_ranked = _top_rows(np.where(allowed & (bm25 > 0), bm25, -np.inf), depth if mode == "hybrid" else k)
        dense_ranked = _top_rows(np.where(allowed, dense, -np.inf), depth if mode == "hybrid" else k)
        if mode == "bm25":
            ranked = [(row, float(bm25[row])) for row in bm25_ranked]
        elif mode == "dense":
            ranked = [(row, float(dense[row])) for row in dense_ranked]
        else:
            weight = self.dense_weight if dense_weight is None else dense_weight
            ranked = reciprocal_rank_fusion([bm25_ranked, dense_ranked], k=RRF_K, weights=[1.0, weight])[:k]
        return [Hit(key=keys[row], score=score, bm25=float(bm25[row]), dense=float(dense[row])) for row, score in ranked[:k]]

    def keys_matching(self, chunk_filter: ChunkFilter) -> list[int]:
        with self._lock:
            mask = self._alive[: self._size] & chunk_filter.mask(*self._metadata())
            return [self._rows.keys[r] for r in np.flatnonzero(mask)]

    def _filter_mask(self, chunk_filter: ChunkFilter) -> np.ndarray:
        """Masks are cached per filter until the next add: string comparisons over 100k rows cost
        more than the search itself, and a plant asks about the same few equipment again and again."""
        self._metadata()  # rebuilds the metadata arrays after a change, dropping stale masks
        cache = self._mask_cache
        if chunk_filter not in cache:
            if len(cache) > 64:
                cache.clear()
            cache[chunk_filter] = chunk_filter.mask(*self._metadata())
        return cache[chunk_filter]

    def _metadata(self) -> tuple[np.ndarray, np.ndarray]:
        if self._meta_cache is None:
            self._mask_cache = {}
            self._meta_cache = (np.array(self._rows.equipment, dtype=object), np.array(self._rows.equipment_type, dtype=object))
        return self._meta_cache

    def _bm25_scores(self, query: str) -> np.ndarray:
        """BM25 score of every row (0 for removed rows and rows without a query term)."""
        if self._bm25_dirty:
            self._rebuild_bm25()
        scores = np.zeros(self._size, dtype=np.float32)
        tokens = [t for t in tokenize(query) if t in self._vocabulary]
        if tokens and self._bm25 is not None:
            scores[self._bm25_rows] = self._bm25.get_scores(tokens)
        return scores

    def _rebuild_bm25(self) -> None:
        import bm25s

        rows = np.flatnonzero(self._alive[: self._size])
        corpus = [self._rows.tokens[r] for r in rows]
        self._bm25_rows = rows
        self._vocabulary = {token for doc in corpus for token in doc}
        if corpus:
            retriever = bm25s.BM25()
            retriever.index(corpus, show_progress=False)
            self._bm25 = retriever
        else:
            self._bm25 = None
        self._bm25_dirty = False


def _top_rows(scores: np.ndarray, k: int) -> list[int]:
    """Rows of the ``k`` highest finite scores, best first."""
    finite = np.flatnonzero(np.isfinite(scores))
    if finite.size == 0:
        return []
    if finite.size > k:
        part = np.argpartition(-scores[finite], k - 1)[:k]
        finite = finite[part]
    return [int(r) for r in finite[np.argsort(-scores[finite], kind="stable")]]
