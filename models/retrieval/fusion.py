"""Reciprocal-rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009): score(d) = Σ w_i / (k + rank_i(d)).

Ranks rather than scores are fused because BM25 scores and cosine similarities live on scales
that cannot be compared; k = 60 is the value from the paper. The per-ranking weights ``w_i``
(1 each in the paper) let one ranking lead: maintenance questions name codes, tags and months
that BM25 matches exactly and MiniLM does not see, so the hybrid index gives the dense ranking a
weight below 1 (:data:`DENSE_WEIGHT`, chosen on the tune half of the evaluation questions, see
``models.evaluate.assistant``)."""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence

RRF_K = 60
#: Weight of the dense (MiniLM) ranking against BM25's 1.0 in the hybrid index. Chosen on the tune
#: half of the evaluation questions (``python -m models.evaluate assistant``): the largest weight
#: whose recall@5 there is within 0.01 of the best; reported on the held-out half.
DENSE_WEIGHT = float(os.environ.get("PHM_ASSISTANT_DENSE_WEIGHT", "0.2"))


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Hashable]], *, k: int = RRF_K, weights: Sequence[float] | None = None
) -> list[tuple[Hashable, float]]:
    """Fuse best-first rankings into one best-first list of ``(item, fused score)``; ties keep the
    order in which items were first seen so the result is deterministic."""
    if k < 0:
        raise ValueError("k must be >= 0")
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings) or any(w < 0 for w in weights):
        raise ValueError("one non-negative weight per ranking")
    scores: dict[Hashable, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    order = {item: i for i, item in enumerate(scores)}
    return sorted(scores.items(), key=lambda pair: (-pair[1], order[pair[0]]))
