"""Retrieval for the maintenance assistant, without Django: chunking of documents
(:mod:`.chunking`), BM25 tokenization (:mod:`.text`), MiniLM embeddings (:mod:`.embedding`),
reciprocal-rank fusion (:mod:`.fusion`) and the in-process hybrid index (:mod:`.index`)."""

from models.retrieval.chunking import Chunk, DocumentError, ParsedDocument, UnsupportedFileType, parse_document
from models.retrieval.fusion import reciprocal_rank_fusion
from models.retrieval.index import ChunkFilter, Hit, HybridIndex, IndexEntry

__all__ = [
    "Chunk",
    "ChunkFilter",
    "DocumentError",
    "Hit",
    "HybridIndex",
    "IndexEntry",
    "ParsedDocument",
    "UnsupportedFileType",
    "parse_document",
    "reciprocal_rank_fusion",
]
