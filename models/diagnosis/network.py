"""The fusion network: one token sequence through the frozen backbone, pooled per modality.

Sequence per incident::

    [ prompt text (equipment type, task, log changes) | image tokens | sensor patch tokens ]

* The text is embedded by the backbone's own table. Nothing upstream of it trains, so its keys and
  values are computed once per incident (:func:`text_prefix`) and reused every epoch; training
  runs the backbone only over the handful of image and sensor tokens, which is what makes a fit
  on a 2-core CPU take minutes instead of an hour.
* Image tokens: :class:`models.vision.VisionEncoder` tokens (frozen after its own pre-fit stage)
  through a LLaVA-style :class:`models.vision.VisionProjector` into the backbone width.
* Sensor tokens: the Time-LLM trunk (:class:`models.reprogramming.ReprogrammingTrunk`, mixed
  channels): patch embedding, then cross-attention to text prototypes of the frozen vocabulary.
* A missing modality contributes no tokens: its positions are masked out of attention (and
  later tokens take their positions), so a batch with some modalities dropped computes exactly
  what single incidents without them compute at inference.

Pooled features: the mean final hidden state over the text tokens, over the image tokens and over
the sensor tokens, each layer-normalised (zeros when missing), concatenated, then a small fusion
layer (its output is the incident embedding) and one linear layer to the logits of every class of
every equipment type (the caller masks the other types' classes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from models.backbone import Backbone
from models.reprogramming import ReprogrammingTrunk
from models.vision import VisionEncoder, VisionProjector

MASKED_LOGIT = -1e4


@dataclass
class TextPrefix:
    """Keys/values (one pair per layer, ``[1, kv_heads, T, head_dim]``) and pooled state of a prompt."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]
    length: int
    pooled: torch.Tensor  # [hidden]


@torch.no_grad()
def text_prefix(backbone: Backbone, text: str, *, use_llm: bool = True) -> TextPrefix:
    embeds, _ = backbone.embed_text([text])
    embeds = embeds.to(backbone.dtype)
    if not use_llm:  # ablation: token embeddings only, no transformer layer
        return TextPrefix(layers=[], length=int(embeds.shape[1]), pooled=_pool_text(embeds[0]).float())
    outputs = backbone.decoder(inputs_embeds=embeds, use_cache=True)
    layers = [(layer.keys.detach(), layer.values.detach()) for layer in outputs.past_key_values.layers]
    return TextPrefix(layers=layers, length=int(embeds.shape[1]), pooled=_pool_text(outputs.last_hidden_state[0]).float())


def _pool_text(states: torch.Tensor) -> torch.Tensor:
    # The first position of a causal LM is an attention sink with outsized activations; leave it out.
    return states[1:].mean(0) if states.shape[0] > 1 else states.mean(0)


@dataclass
class FusionBatch:
    prefixes: Sequence[TextPrefix]
    sensors: torch.Tensor  # [B, C, L] (zeros where absent)
    sensor_present: torch.Tensor  # [B] bool
    image_tokens: torch.Tensor  # [B, I, vision_dim] (zeros where absent)
    image_present: torch.Tensor  # [B] bool
    sensor_summary: torch.Tensor  # [B, n_summary] window statistics per channel (zeros where absent)
    class_mask: torch.Tensor  # [B, n_classes] bool: the classes of each incident's equipment type


class FusionNetwork(nn.Module):
    def __init__(
        self,
        backbone: Backbone,
        *,
        n_channels: int,
        seq_len: int,
        patch_len: int,
        n_classes: int,
        vision_dim: int,
        n_summary: int,
        fusion_dim: int = 128,
        n_prototypes: int = 64,
        d_model: int = 64,
        dropout: float = 0.1,
        use_llm: bool = True,
    ) -> None:
        super().__init__()
        hidden = backbone.hidden_size
        self.use_llm = use_llm
        self.trunk = ReprogrammingTrunk(
            backbone, n_channels=n_channels, seq_len=seq_len, patch_len=patch_len, stride=patch_len,
            n_prototypes=n_prototypes, d_model=d_model, d_output=8, channel_mode="mixed", prompt_statistics=False,
            dropout=dropout, task="diagnose the root cause", revin=False,  # inputs are standardised already
        )
        self.projector = VisionProjector(vision_dim, hidden)
        self.norms = nn.ModuleList([nn.LayerNorm(hidden) for _ in range(3)])  # text, image, sensors
        # Time-LLM states the window's statistics in the prompt text; here they skip the backbone
        # as numbers, because the patch tokens reach the LM only through attention over text
        # prototypes, which blurs which channel moved (sensor-only accuracy was 0.51 without it).
        self.summary = nn.Sequential(nn.Linear(n_summary, d_model), nn.GELU())
        self.fusion = nn.Sequential(nn.Dropout(dropout), nn.Linear(3 * hidden + d_model, fusion_dim), nn.GELU())
        self.head = nn.Linear(fusion_dim, n_classes)

    @property
    def backbone(self) -> Backbone:
        return self.trunk.backbone

    def sensor_tokens(self, sensors: torch.Tensor) -> torch.Tensor:
        trunk = self.trunk
        patches = trunk.dropout(trunk.patch_embedding(trunk.patchify(sensors)))  # [B, P, d_model]
        return trunk.reprogramming(patches, trunk.prototypes())  # [B, P, hidden]

    def pooled_blocks(self, batch: FusionBatch) -> torch.Tensor:
        """``[B, 3, hidden]``: normalised text, image and sensor states (zeros for a missing modality)."""
        image = self.projector(batch.image_tokens)
        sensors = self.sensor_tokens(batch.sensors)
        n_image, n_sensor = image.shape[1], sensors.shape[1]
        new = torch.cat([image, sensors], dim=1)
        new_mask = torch.cat(
            [batch.image_present[:, None].expand(-1, n_image), batch.sensor_present[:, None].expand(-1, n_sensor)], dim=1
        )
        states = self._through_backbone(new, new_mask, batch.prefixes) if self.use_llm else new
        text = torch.stack([p.pooled for p in batch.prefixes])
        image_state = _masked_mean(states[:, :n_image], new_mask[:, :n_image])
        sensor_state = _masked_mean(states[:, n_image:], new_mask[:, n_image:])
        blocks = [self.norms[0](text), self.norms[1](image_state), self.norms[2](sensor_state)]
        present = [torch.ones_like(batch.image_present), batch.image_present, batch.sensor_present]
        return torch.stack([b * p[:, None].to(b.dtype) for b, p in zip(blocks, present, strict=True)], dim=1)

    def features(self, blocks: torch.Tensor, summary: torch.Tensor) -> torch.Tensor:
        return self.fusion(torch.cat([blocks.flatten(start_dim=1), self.summary(summary)], dim=1))

    def logits(self, features: torch.Tensor, class_mask: torch.Tensor) -> torch.Tensor:
        return self.head(features).masked_fill(~class_mask, MASKED_LOGIT)

    def forward(self, batch: FusionBatch) -> torch.Tensor:
        return self.logits(self.features(self.pooled_blocks(batch), batch.sensor_summary), batch.class_mask)

    def _through_backbone(self, new: torch.Tensor, new_mask: torch.Tensor, prefixes: Sequence[TextPrefix]) -> torch.Tensor:
        """Run the image + sensor tokens after each incident's cached text (left-padded to one length)."""
        from transformers import DynamicCache

        backbone = self.backbone
        batch = new.shape[0]
        longest = max(p.length for p in prefixes)
        lengths = torch.tensor([p.length for p in prefixes])
        text_mask = (torch.arange(longest)[None, :] >= (longest - lengths)[:, None]).long()
        layers = []
        for index in range(len(prefixes[0].layers)):
            keys = torch.cat([_left_pad(p.layers[index][0], longest) for p in prefixes])
            values = torch.cat([_left_pad(p.layers[index][1], longest) for p in prefixes])
            layers.append((keys, values))
        cache = DynamicCache(ddp_cache_data=layers, config=backbone.config)
        kept = new_mask.long()
        # Each new token sits right after its own text and after the kept tokens before it; a
        # dropped token is masked out, so its position only has to be valid.
        positions = lengths[:, None] + torch.cumsum(kept, dim=1) - kept
        attention = torch.cat([text_mask, kept], dim=1)
        outputs = backbone.decoder(
            inputs_embeds=new.to(backbone.dtype), attention_mask=attention, position_ids=positions,
            past_key_values=cache, use_cache=True,
        )
        assert outputs.last_hidden_state.shape[0] == batch
        return outputs.last_hidden_state.float()


def _left_pad(tensor: torch.Tensor, length: int) -> torch.Tensor:
    missing = length - tensor.shape[2]
    if missing == 0:
        return tensor
    pad = torch.zeros(*tensor.shape[:2], missing, tensor.shape[3], dtype=tensor.dtype)
    return torch.cat([pad, tensor], dim=2)


def _masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.to(states.dtype)[..., None]
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class ImagePath(nn.Module):
    """The vision encoder and its own head over visible findings (pre-fit stage and image evidence)."""

    def __init__(self, n_findings: int, *, widths: Sequence[int] = (16, 32, 64), token_grid: int = 2) -> None:
        super().__init__()
        self.encoder = VisionEncoder(in_channels=1, widths=widths, token_grid=token_grid)
        self.head = nn.Linear(2 * self.encoder.feature_dim, n_findings)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.pooled(pixels))
