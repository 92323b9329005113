"""LLaVA-style projector from image tokens into a language model's embedding space."""

from __future__ import annotations

import torch
from torch import nn


class VisionProjector(nn.Module):
    """Two-layer MLP with GELU (LLaVA-1.5's ``mlp2x_gelu``): ``[b, n, vision_dim] → [b, n, lm_hidden_size]``.

    How the fusion model uses it:

    1. ``tokens = encoder.tokens(pixels)`` (or ``ImageClassifier.image_tokens(images)``) gives
       ``[batch, token_grid², vision_dim]`` image tokens, row-major over the grid.
    2. ``image_embeds = projector(tokens)`` maps them to ``[batch, token_grid², lm_hidden_size]``,
       the width of the language model's input embeddings (``config.hidden_size``, 576 for
       SmolLM2-135M).
    3. The prompt is embedded with the LM's own embedding table (``lm.get_input_embeddings()``),
       the image embeddings are spliced in where the prompt has its image placeholder (or
       prepended), and the concatenation goes to the frozen LM as ``inputs_embeds=...`` with an
       attention mask of ones over the image positions. A missing image simply contributes no
       tokens.
    4. Training follows LLaVA: first only the projector learns (the encoder and LM stay frozen) so
       image tokens land where the LM's embeddings live; then the diagnosis head / LoRA adapter
       learn with the projector.

    The output of the last layer starts small (scaled initialisation) so that freshly spliced
    image tokens do not swamp the text embeddings before the projector is trained.
    """

    def __init__(
        self, vision_dim: int, lm_hidden_size: int, *, hidden_size: int | None = None, output_scale: float = 0.02
    ) -> None:
        super().__init__()
        if vision_dim <= 0 or lm_hidden_size <= 0:
            raise ValueError(f"vision_dim and lm_hidden_size must be positive, got {vision_dim}, {lm_hidden_size}")
        self.vision_dim = vision_dim
        self.lm_hidden_size = lm_hidden_size
        self.hidden_size = hidden_size or lm_hidden_size
        self.layers = nn.Sequential(
            nn.Linear(vision_dim, self.hidden_size), nn.GELU(), nn.Linear(self.hidden_size, lm_hidden_size)
        )
        nn.init.normal_(self.layers[2].weight, std=output_scale / self.hidden_size**0.5)
        nn.init.zeros_(self.layers[2].bias)

    def forward(self, image_tokens: torch.Tensor) -> torch.Tensor:
        if image_tokens.ndim != 3 or image_tokens.shape[-1] != self.vision_dim:
            raise ValueError(
                f"expected image tokens [batch, tokens, {self.vision_dim}], got {tuple(image_tokens.shape)}"
            )
        return self.layers(image_tokens)
