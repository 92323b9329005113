"""Test helpers for the assistant: a hand-built PDF, a tiny real language model, a deterministic embedder."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

import numpy as np


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with a Helvetica text layer, one string per page (lines split on \\n)."""

    def escape(line: str) -> str:
        return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects = {
        1: "<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {len(pages)} >>",
        3: "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    for page_id, text in zip(page_ids, pages):
        stream = "BT /F1 11 Tf 72 740 Td 14 TL " + " ".join(f"({escape(line)}) '" for line in text.split("\n")) + " ET"
        objects[page_id] = f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {page_id + 1} 0 R >>"
        objects[page_id + 1] = f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream"
    out = b"%PDF-1.4\n"
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n{objects[number]}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offsets[n]:010d} 00000 n \n".encode() for n in sorted(objects))
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def hashed_bag_of_words(texts: list[str], dimension: int = 256) -> np.ndarray:
    """A deterministic stand-in embedder for index mechanics tests (shared words -> similar vectors)."""
    vectors = np.zeros((len(texts), dimension), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            vectors[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % dimension] += 1.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


@lru_cache(maxsize=1)
def tiny_language_model():
    """A real (randomly initialised, 2-layer) Llama-architecture model with SmolLM2's tokenizer and
    chat template: exercises generation, streaming and decoding in well under a second."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from models.answering import LanguageModel
    from models.backbone import default_gguf_path, ensure_hf_folder

    tokenizer = AutoTokenizer.from_pretrained(str(ensure_hf_folder(default_gguf_path())))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, max_position_embeddings=4096, eos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config).eval()
    return LanguageModel(model, tokenizer, name="tiny-random-llama")
