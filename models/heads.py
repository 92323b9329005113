"""Classification and regression heads on the Time-LLM reprogramming trunk (``models.reprogramming``).

A head reads the trunk's per-patch features ``TrunkOutput.hidden`` ``[B, S, P, d_output]``,
flattens streams x patches x features (patch *position* matters: on a spectrum input a patch is a
frequency band) and applies dropout + one linear layer: to class logits (``ClassificationHead``)
or to one number (``RegressionHead``). ``ReprogramNetwork`` wraps trunk + head with a fixed
domain prompt so the estimators can train it as a plain ``x -> output`` module.

Options (the ``params`` of ``FaultClassifier(method="reprogram")`` / ``RULEstimator(method="reprogram")``):

``backbone_mode``  ``"pretrained"`` (SmolLM2-135M GGUF or ``backbone_source``), ``"random"`` (same shape,
                   random weights: ablation), ``"none"`` (no language model, patches straight to
                   the head: ablation), ``"tiny"`` (a few-thousand-parameter random Llama, for tests).
``num_layers``     decoder layers kept (default 4 of 30: training back-propagates through every kept
                   layer, and on the shared 2-core CPU each layer costs about a tenth of the step).
``patch_len``, ``patch_stride``, ``n_prototypes``, ``d_model``, ``d_output``, ``channel_mode``,
``prompt``, ``prompt_statistics`` (default False: the per-window statistics text adds ~25 tokens
to every window, more than the ~10 patch tokens themselves), ``quantization``, ``lora_r``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

_BACKBONE_MODES = ("pretrained", "random", "none", "tiny")
_BACKBONES: dict[tuple[Any, ...], Any] = {}


class ClassificationHead(nn.Module):
    """Flattened patch features -> class logits."""

    def __init__(self, *, n_streams: int, n_patches: int, d_output: int, n_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}")
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(n_streams * n_patches * d_output, n_classes)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(hidden.flatten(start_dim=1)))


class RegressionHead(nn.Module):
    """Flattened patch features -> one value per window (e.g. RUL / cap)."""

    def __init__(self, *, n_streams: int, n_patches: int, d_output: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(n_streams * n_patches * d_output, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(hidden.flatten(start_dim=1)))


class ReprogramNetwork(nn.Module):
    """Trunk + head with a fixed prompt: ``[B, C, L] -> head output``."""

    def __init__(self, trunk: nn.Module, head: nn.Module, prompt: str) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = head
        self.prompt = prompt

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x, self.prompt).hidden)

    def persisted_state(self) -> dict[str, torch.Tensor]:
        """What training changed: trunk layers (+ LoRA) and head -- never the frozen backbone."""
        state = {f"trunk.{k}": v for k, v in self.trunk.trainable_state_dict().items()}
        state.update({f"head.{k}": v.detach().cpu() for k, v in self.head.state_dict().items()})
        return state

    def load_persisted_state(self, state: Mapping[str, torch.Tensor]) -> None:
        self.trunk.load_trainable_state_dict({k.removeprefix("trunk."): v for k, v in state.items() if k.startswith("trunk.")})
        self.head.load_state_dict({k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")})


def load_shared_backbone(params: Mapping[str, Any]) -> Any | None:
    """The frozen backbone the params ask for, loaded once per process (it is never trained
    unless LoRA is on, so estimators in one process can share it)."""
    from models.backbone import LoraSpec, load_backbone, tiny_random_backbone

    mode = params.get("backbone_mode", "pretrained")
    if mode not in _BACKBONE_MODES:
        raise ValueError(f"backbone_mode must be one of {_BACKBONE_MODES}, got {mode!r}")
    if mode == "none":
        return None
    lora_r = params.get("lora_r")
    seed = int(params.get("seed", 0))
    if mode == "tiny":
        return tiny_random_backbone(seed=seed)
    key = (mode, params.get("backbone_source"), params.get("num_layers", 4), params.get("quantization", "none"), seed)
    if lora_r is None and key in _BACKBONES:
        return _BACKBONES[key]
    backbone = load_backbone(
        params.get("backbone_source"),
        device="cpu",
        quantization=params.get("quantization", "none"),
        num_layers=params.get("num_layers", 4),
        random_init=mode == "random",
        seed=seed,
        lora=LoraSpec(r=int(lora_r)) if lora_r is not None else None,
    )
    if lora_r is None:  # a LoRA backbone is trained, so it must not be shared
        _BACKBONES[key] = backbone
    return backbone


def build_trunk(*, n_channels: int, seq_len: int, task: str, params: Mapping[str, Any]) -> nn.Module:
    from models.reprogramming import ReprogrammingTrunk

    torch.manual_seed(int(params.get("seed", 0)))
    patch_len = int(params.get("patch_len", 16))
    return ReprogrammingTrunk(
        load_shared_backbone(params),
        n_channels=n_channels,
        seq_len=seq_len,
        patch_len=patch_len,
        stride=int(params.get("patch_stride", patch_len)),
        n_prototypes=int(params.get("n_prototypes", 100)),
        d_model=int(params.get("d_model", 32)),
        d_output=int(params.get("d_output", 32)),
        channel_mode=params.get("channel_mode", "mixed"),
        llm="none" if params.get("backbone_mode", "pretrained") == "none" else "backbone",
        prompt_statistics=bool(params.get("prompt_statistics", False)),
        dropout=float(params.get("dropout", 0.1)),
        task=task,
        # Inputs are standardised with training statistics by the estimators; per-window
        # normalisation would erase the level differences that separate fault sizes / wear.
        revin=False,
    )


def build_reprogram_classifier(*, n_channels: int, seq_len: int, n_classes: int, params: Mapping[str, Any]) -> ReprogramNetwork:
    trunk = build_trunk(n_channels=n_channels, seq_len=seq_len, task="classify the fault", params=params)
    head = ClassificationHead(n_streams=trunk.n_streams, n_patches=trunk.n_patches, d_output=trunk.d_output,
                              n_classes=n_classes, dropout=float(params.get("dropout", 0.1)))
    prompt = params.get("prompt", "Rolling bearing vibration: log power spectrum and envelope spectrum.")
    return ReprogramNetwork(trunk, head, prompt)


def build_reprogram_regressor(*, n_channels: int, seq_len: int, params: Mapping[str, Any]) -> ReprogramNetwork:
    trunk = build_trunk(n_channels=n_channels, seq_len=seq_len, task="estimate remaining useful life", params=params)
    head = RegressionHead(n_streams=trunk.n_streams, n_patches=trunk.n_patches, d_output=trunk.d_output,
                          dropout=float(params.get("dropout", 0.1)))
    prompt = params.get("prompt", "Turbofan engine sensors, one row per flight cycle.")
    return ReprogramNetwork(trunk, head, prompt)
