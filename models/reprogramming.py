"""Time-LLM style reprogramming trunk: time-series patches in, language-model hidden states out.

Written from the Time-LLM paper's description (Jin et al., ICLR 2024):

1. **RevIN** -- each window is normalised per channel (mean/std over time); the statistics are kept
   so a head can map its output back to the input scale. ``revin=False`` keeps absolute levels (the
   caller standardises with training statistics) -- what anomaly detection wants, since a sustained
   level shift is exactly what per-window normalisation would erase.
2. **Patching** -- the window is cut into patches of ``patch_len`` steps every ``stride`` steps (the
   end is padded by replication, as in the paper, so the last step always lands in a patch).
   ``channel_mode="independent"`` makes one token sequence per channel (the paper's choice);
   ``channel_mode="mixed"`` makes one sequence per window whose patch tokens hold all channels
   (``n_channels`` times fewer sequences -- the choice that makes CPU scoring fast enough).
3. **Patch embedding** -- a linear map of each patch to ``d_model``.
4. **Text prototypes** -- ``n_prototypes`` vectors learned as a linear map of the frozen vocabulary
   embeddings (the first ``prototype_vocab`` rows of the table; BPE ids are ordered by merge
   frequency, so these are the common tokens).
5. **Reprogramming layer** -- multi-head cross-attention from patches (queries) to prototypes (keys,
   values), projected to the backbone width.
6. **Prompt-as-Prefix** -- a short text (domain/equipment description, the task and statistics of the
   input window: min, max, median, trend, top autocorrelation lags) embedded by the backbone's own
   embedding table and put before the patch tokens. The fixed part (domain + task) is run through
   the backbone once and its keys/values are reused (:meth:`Backbone.prefix_cache`), so each window
   pays only for its statistics and patch tokens (about 29 + 8 tokens for 8 channels, 48 steps).
7. **Frozen backbone** run on ``inputs_embeds``; the hidden states of the patch positions are kept.
8. **Output projection** -- a linear map from the backbone width to ``d_output`` per patch token.

API::

    trunk = ReprogrammingTrunk(backbone, n_channels=8, seq_len=64, patch_len=16, stride=8,
                               n_prototypes=100, channel_mode="mixed")
    out = trunk(x, prompts="Water pump test bed, 8 sensors at 1 Hz.")  # x: float32 [B, C, L]
    out.hidden   # float32 [B, S, P, d_output]; S = n_streams (C if independent, 1 if mixed),
                 # P = n_patches
    out.mean, out.std  # RevIN statistics, float32 [B, C, 1]
    head = ForecastHead(trunk, horizon=8);  y = head(out)   # float32 [B, C, horizon], input scale

Ablations (both use the same trunk class):

* ``ReprogrammingTrunk(None, ...)`` or ``llm="none"``: no language model at all -- patch embeddings
  go through the output projection straight to the head (no prototypes, no prompt).
* ``load_backbone(random_init=True)``: the same trunk on a randomly initialised backbone of the
  same shape.

Putting a new head on the trunk: write a small ``nn.Module`` whose ``__init__`` reads the trunk's
``n_streams``, ``n_patches``, ``d_output`` and ``n_channels`` (all plain ints) and whose ``forward``
takes a :class:`TrunkOutput` and returns what the task needs; e.g. for classification flatten
``out.hidden`` to ``[B, S * P * d_output]`` (or mean-pool over P) and apply a ``nn.Linear`` to the
number of classes. Wrap ``trunk`` and head in one ``nn.Module`` (see :class:`ForecastModel`) and train
with :func:`models.training.train_model`; only the trunk's own layers, the head and LoRA weights (if
any) have ``requires_grad``. The backbone is held as a plain attribute, so ``trunk.state_dict()``
never contains the frozen language model (saving a model stores only what was trained).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.backbone import Backbone, PrefixCache

ChannelMode = Literal["mixed", "independent"]
DEFAULT_DOMAIN = "Industrial equipment sensors."


@dataclass(frozen=True)
class TrunkConfig:
    """Everything needed to rebuild a trunk (saved next to its weights as JSON)."""

    n_channels: int
    seq_len: int
    patch_len: int = 16
    stride: int = 8
    n_prototypes: int = 100
    prototype_vocab: int = 8192
    n_heads: int = 4
    d_model: int = 32
    d_output: int = 32
    channel_mode: ChannelMode = "mixed"
    llm: Literal["backbone", "none"] = "backbone"
    prompt_statistics: bool = True
    n_lags: int = 3
    dropout: float = 0.1
    task: str = "forecast"
    revin: bool = True
    skip: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class TrunkOutput:
    hidden: torch.Tensor  # [B, S, P, d_output]
    mean: torch.Tensor  # [B, C, 1]
    std: torch.Tensor  # [B, C, 1]


class RevIN(nn.Module):
    """Reversible instance normalisation per channel with a learnable affine map (Kim et al. 2022)."""

    def __init__(self, n_channels: int, eps: float = 1e-5, enabled: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.enabled = enabled
        self.weight = nn.Parameter(torch.ones(n_channels, 1))
        self.bias = nn.Parameter(torch.zeros(n_channels, 1))

    def normalize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not self.enabled:  # caller normalised already (e.g. with training statistics): keep levels
            ones = torch.ones_like(x[..., :1])
            return x, torch.zeros_like(ones), ones
        mean = x.mean(dim=-1, keepdim=True).detach()
        std = torch.sqrt(x.var(dim=-1, keepdim=True, unbiased=False) + self.eps).detach()
        return (x - mean) / std * self.weight + self.bias, mean, std

    def denormalize(self, y: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return y
        return (y - self.bias) / (self.weight + self.eps * self.weight.sign()) * std + mean


class ReprogrammingLayer(nn.Module):
    """Multi-head cross-attention from patch embeddings to text prototypes (Time-LLM eq. 1)."""

    def __init__(self, d_model: int, d_llm: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        d_keys = max(d_model // n_heads, 8)
        self.n_heads = n_heads
        self.query = nn.Linear(d_model, d_keys * n_heads)
        self.key = nn.Linear(d_llm, d_keys * n_heads)
        self.value = nn.Linear(d_llm, d_keys * n_heads)
        self.out = nn.Linear(d_keys * n_heads, d_llm)
        self.dropout = dropout

    def forward(self, patches: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
        batch, n_patches, _ = patches.shape
        heads = self.n_heads
        q = self.query(patches).view(batch, n_patches, heads, -1).transpose(1, 2)  # [B, H, P, dk]
        k = self.key(prototypes).view(1, -1, heads, q.shape[-1]).transpose(1, 2)  # [1, H, N, dk]
        v = self.value(prototypes).view(1, -1, heads, q.shape[-1]).transpose(1, 2)
        attended = F.scaled_dot_product_attention(
            q, k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1),
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(attended.transpose(1, 2).reshape(batch, n_patches, -1))


def window_statistics_text(windows: torch.Tensor, n_lags: int) -> list[str]:
    """Prompt statistics for each window ``[N, C, L]`` (values already normalised per channel).

    With several channels the numbers summarise all of them: min/max/median over every value, the
    trend is the sign of the mean change between the first and last quarter, and the lags are the
    top peaks of the channel-averaged autocorrelation (FFT).
    """
    n, _, length = windows.shape
    flat = windows.reshape(n, -1)
    minimum, maximum = flat.min(dim=1).values, flat.max(dim=1).values
    median = flat.median(dim=1).values
    quarter = max(length // 4, 1)
    change = (windows[..., -quarter:].mean(-1) - windows[..., :quarter].mean(-1)).mean(-1)
    centred = windows - windows.mean(-1, keepdim=True)
    spectrum = torch.fft.rfft(centred, n=2 * length, dim=-1)
    autocorr = torch.fft.irfft(spectrum * spectrum.conj(), dim=-1)[..., 1:length].mean(1)  # lags 1..L-1
    lags = torch.topk(autocorr, k=min(n_lags, max(length - 1, 1)), dim=-1).indices + 1
    texts = []
    for i in range(n):
        trend = "up" if change[i] > 0 else "down"
        lag_text = " ".join(str(int(v)) for v in lags[i])
        # One decimal and terse labels: every character here is a token the backbone must run on.
        texts.append(
            f" min {minimum[i]:.1f} max {maximum[i]:.1f} median {median[i]:.1f} trend {trend} lags {lag_text}"
        )
    return texts


class ReprogrammingTrunk(nn.Module):
    """Patches -> reprogramming -> frozen language model -> per-patch features (see module docstring)."""

    def __init__(
        self,
        backbone: Backbone | None,
        *,
        n_channels: int,
        seq_len: int,
        patch_len: int = 16,
        stride: int = 8,
        n_prototypes: int = 100,
        prototype_vocab: int = 8192,
        n_heads: int = 4,
        d_model: int = 32,
        d_output: int = 32,
        channel_mode: ChannelMode = "mixed",
        llm: Literal["backbone", "none"] = "backbone",
        prompt_statistics: bool = True,
        n_lags: int = 3,
        dropout: float = 0.1,
        task: str = "forecast",
        revin: bool = True,
        skip: bool = False,
    ) -> None:
        super().__init__()
        if backbone is None:
            llm = "none"
        self.config = TrunkConfig(
            n_channels=n_channels, seq_len=seq_len, patch_len=patch_len, stride=stride,
            n_prototypes=n_prototypes, prototype_vocab=prototype_vocab, n_heads=n_heads, d_model=d_model,
            d_output=d_output, channel_mode=channel_mode, llm=llm, prompt_statistics=prompt_statistics,
            n_lags=n_lags, dropout=dropout, task=task, revin=revin, skip=skip,
        )
        _validate(self.config)
        self.backbone = backbone if llm == "backbone" else None  # plain attribute: not in state_dict
        self.n_channels = n_channels
        self.n_streams = n_channels if channel_mode == "independent" else 1
        self.n_patches = (seq_len - patch_len) // stride + 2  # +1 for the replication-padded tail
        self.d_output = d_output
        self.revin = RevIN(n_channels, enabled=revin)
        patch_width = patch_len if channel_mode == "independent" else patch_len * n_channels
        self.patch_embedding = nn.Linear(patch_width, d_model)
        self.dropout = nn.Dropout(dropout)
        if self.backbone is not None:
            d_llm = self.backbone.hidden_size
            vocab_rows = min(prototype_vocab, self.backbone.vocab_size)
            self.prototype_map = nn.Linear(vocab_rows, n_prototypes)
            self.reprogramming = ReprogrammingLayer(d_model, d_llm, n_heads, dropout)
            self.output_projection = nn.Linear(d_llm, d_output)
            if skip:
                # The language model refines a linear patch path instead of replacing it: its
                # projection starts at zero (as LoRA's B matrix does), so training begins from the
                # patch path and the backbone adds only what lowers the loss.
                self.skip_projection = nn.Linear(d_model, d_output)
                nn.init.zeros_(self.output_projection.weight)
                nn.init.zeros_(self.output_projection.bias)
            self._cached_prototypes: torch.Tensor | None = None
            self._prefix_caches: dict[str, PrefixCache] = {}
        else:
            self.output_projection = nn.Linear(d_model, d_output)
        if self.backbone is not None:
            self.to(self.backbone.device)

    # -- parts -------------------------------------------------------------------------------
    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, L]`` -> ``[B * S, P, width]`` patch vectors."""
        cfg = self.config
        padded = F.pad(x, (0, cfg.stride), mode="replicate")
        patches = padded.unfold(-1, cfg.patch_len, cfg.stride)  # [B, C, P, patch_len]
        if cfg.channel_mode == "independent":
            return patches.reshape(-1, patches.shape[2], cfg.patch_len)
        return patches.permute(0, 2, 1, 3).reshape(x.shape[0], patches.shape[2], -1)

    def prototypes(self) -> torch.Tensor:
        """Text prototypes ``[n_prototypes, d_llm]``; cached while the trunk is in eval mode."""
        if not self.training and self._cached_prototypes is not None:
            return self._cached_prototypes
        table = self.backbone.embedding_table[: self.prototype_map.in_features].detach().float()
        if self.training:
            return self.prototype_map(table.T).T
        with torch.no_grad():  # [n_prototypes, vocab] @ [vocab, d_llm] once, not per batch
            self._cached_prototypes = self.prototype_map(table.T).T
        return self._cached_prototypes

    def train(self, mode: bool = True) -> "ReprogrammingTrunk":
        if self.backbone is not None:
            self._cached_prototypes = None  # weights may change: rebuild prototypes on next eval
        return super().train(mode)

    def prompt_parts(self, normalized: torch.Tensor, prompts: str | Sequence[str] | None) -> tuple[list[str], list[str]]:
        """(fixed part, per-window part) of each stream's prompt: domain + task, then statistics."""
        batch = normalized.shape[0]
        cfg = self.config
        if prompts is None or isinstance(prompts, str):
            domains = [prompts or DEFAULT_DOMAIN] * batch
        else:
            domains = list(prompts)
            if len(domains) != batch:
                raise ValueError(f"got {len(domains)} prompts for a batch of {batch} windows")
        streams = normalized if cfg.channel_mode == "mixed" else normalized.reshape(-1, 1, cfg.seq_len)
        per_stream = domains if cfg.channel_mode == "mixed" else [d for d in domains for _ in range(cfg.n_channels)]
        stats = (
            window_statistics_text(streams.detach().float(), cfg.n_lags)
            if cfg.prompt_statistics else [""] * len(per_stream)
        )
        return [f"{d} Task: {cfg.task}." for d in per_stream], [f"{s}:" for s in stats]

    def prompt_texts(self, normalized: torch.Tensor, prompts: str | Sequence[str] | None) -> list[str]:
        fixed, varying = self.prompt_parts(normalized, prompts)
        return [f + v for f, v in zip(fixed, varying)]

    def _prefix_for(self, text: str) -> PrefixCache | None:
        """Keys/values of the fixed prompt part, computed once per text (never with LoRA)."""
        if self.backbone.lora:
            return None
        cached = self._prefix_caches.get(text)
        if cached is None:
            cached = self.backbone.prefix_cache(text)
            self._prefix_caches = {**self._prefix_caches, text: cached} if len(self._prefix_caches) < 16 else {text: cached}
        return cached

    # -- forward -----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, prompts: str | Sequence[str] | None = None) -> TrunkOutput:
        _check_input(x, self.config)
        normalized, mean, std = self.revin.normalize(x)
        patches = self.dropout(self.patch_embedding(self.patchify(normalized)))  # [B*S, P, d_model]
        if self.backbone is None:
            hidden = self.output_projection(patches)
        else:
            hidden = self._through_backbone(patches, normalized, prompts)
            if self.config.skip:
                hidden = hidden + self.skip_projection(patches)
        hidden = hidden.reshape(x.shape[0], self.n_streams, self.n_patches, self.d_output)
        return TrunkOutput(hidden=hidden, mean=mean, std=std)

    def _through_backbone(self, patches: torch.Tensor, normalized: torch.Tensor, prompts: str | Sequence[str] | None) -> torch.Tensor:
        backbone = self.backbone
        reprogrammed = self.reprogramming(patches, self.prototypes())  # [B*S, P, d_llm]
        fixed, varying = self.prompt_parts(normalized, prompts)
        prefix = self._prefix_for(fixed[0]) if len(set(fixed)) == 1 else None
        texts = varying if prefix is not None else [f + v for f, v in zip(fixed, varying)]
        prompt_embeds, prompt_mask = backbone.embed_text(texts)
        patch_mask = torch.ones(reprogrammed.shape[:2], dtype=prompt_mask.dtype, device=prompt_mask.device)
        if backbone.lora:  # the adapter changes the prompt's keys/values too: one pass with autograd
            inputs = torch.cat([prompt_embeds.to(reprogrammed.dtype), reprogrammed], dim=1).to(backbone.dtype)
            attention_mask = torch.cat([prompt_mask, patch_mask], dim=1)
            states = backbone(inputs, attention_mask=attention_mask, prefix=prefix)[:, -self.n_patches :]
        else:  # the prompt precedes the patches: its keys/values need no gradient (see extend_prefix)
            context = backbone.extend_prefix(prefix, prompt_embeds.to(backbone.dtype), prompt_mask)
            states = backbone(reprogrammed.to(backbone.dtype), attention_mask=patch_mask, prefix=context)
        return self.output_projection(states.float())

    # -- bookkeeping -------------------------------------------------------------------------
    def trainable_parameter_count(self) -> int:
        own = sum(p.numel() for p in self.parameters() if p.requires_grad)
        lora = sum(p.numel() for p in self.backbone.trainable_parameters()) if self.backbone is not None else 0
        return own + lora

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The trunk's weights plus LoRA weights (if any) -- never the frozen backbone."""
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        if self.backbone is not None and self.backbone.lora:
            for name, param in self.backbone.decoder.named_parameters():
                if param.requires_grad:
                    state[f"backbone.{name}"] = param.detach().cpu()
        return state

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        own = {k: v for k, v in state.items() if not k.startswith("backbone.")}
        self.load_state_dict(own)
        lora = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
        if lora:
            params = dict(self.backbone.decoder.named_parameters())
            with torch.no_grad():
                for name, value in lora.items():
                    params[name].copy_(value)


class ForecastHead(nn.Module):
    """Flattened patch features -> the next ``horizon`` steps of every channel, in input scale."""

    def __init__(self, trunk: ReprogrammingTrunk, horizon: int, dropout: float = 0.1) -> None:
        super().__init__()
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.horizon = horizon
        self.n_channels = trunk.n_channels
        self.n_streams = trunk.n_streams
        outputs_per_stream = horizon * (trunk.n_channels // trunk.n_streams)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(trunk.n_patches * trunk.d_output, outputs_per_stream)
        self.denormalize = trunk.revin.denormalize

    def forward(self, out: TrunkOutput) -> torch.Tensor:
        batch = out.hidden.shape[0]
        flat = self.dropout(out.hidden.flatten(start_dim=2))  # [B, S, P*d]
        y = self.linear(flat).reshape(batch, self.n_channels, self.horizon)
        return self.denormalize(y, out.mean, out.std)


class ForecastModel(nn.Module):
    """Trunk + forecast head: ``[B, C, seq_len]`` -> ``[B, C, horizon]``."""

    def __init__(self, trunk: ReprogrammingTrunk, horizon: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = ForecastHead(trunk, horizon, dropout=trunk.config.dropout)

    def forward(self, x: torch.Tensor, prompts: str | Sequence[str] | None = None) -> torch.Tensor:
        return self.head(self.trunk(x, prompts))


def trainable_share(model: nn.Module, backbone: Backbone | None) -> dict[str, float]:
    """Trainable parameters of ``model`` (plus LoRA) against the backbone's size."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if backbone is not None and backbone.lora:
        trainable += sum(p.numel() for p in backbone.trainable_parameters())
    total_backbone = backbone.num_parameters() if backbone is not None else 0
    return {
        "trainable": trainable,
        "backbone": total_backbone,
        "share_of_backbone": trainable / total_backbone if total_backbone else math.nan,
    }


def _validate(cfg: TrunkConfig) -> None:
    problems = []
    if cfg.n_channels < 1:
        problems.append(f"n_channels must be >= 1 (got {cfg.n_channels})")
    if cfg.patch_len < 1 or cfg.stride < 1:
        problems.append(f"patch_len and stride must be >= 1 (got {cfg.patch_len}, {cfg.stride})")
    if cfg.seq_len < cfg.patch_len:
        problems.append(f"seq_len {cfg.seq_len} is shorter than patch_len {cfg.patch_len}")
    if cfg.channel_mode not in ("mixed", "independent"):
        problems.append(f"channel_mode must be 'mixed' or 'independent' (got {cfg.channel_mode!r})")
    if cfg.llm not in ("backbone", "none"):
        problems.append(f"llm must be 'backbone' or 'none' (got {cfg.llm!r})")
    if problems:
        raise ValueError("invalid trunk configuration: " + "; ".join(problems))


def _check_input(x: torch.Tensor, cfg: TrunkConfig) -> None:
    if x.ndim != 3 or x.shape[1] != cfg.n_channels or x.shape[2] != cfg.seq_len:
        raise ValueError(
            f"expected x of shape [batch, {cfg.n_channels}, {cfg.seq_len}] (batch, channels, length); got {tuple(x.shape)}"
        )
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or infinite values: fill or drop them before the trunk")
