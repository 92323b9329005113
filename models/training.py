"""Seeded, reproducible mini-batch training with a per-epoch progress callback.

Generic over tasks: give it a model, tensors of inputs and targets, and a loss function.
The app stores progress by passing ``on_epoch`` (it receives an :class:`EpochProgress` per epoch:
epoch, epochs, loss, validation loss, elapsed seconds, estimated seconds left)::

    history = train_model(model, inputs, targets, loss_fn=nn.MSELoss(), config=TrainConfig(epochs=5),
                          on_epoch=lambda p: job.update(progress=p.as_dict()))

``forward`` maps a batch of inputs to predictions (default ``model(batch)``) so heads that need
extra arguments (prompts, masks) can be trained with the same loop.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    max_steps_per_epoch: int | None = None  # caps CPU time on large sets (batches drawn at random)
    validation_fraction: float = 0.0  # last part of the (unshuffled) data held out for early stopping
    patience: int | None = None  # stop after this many epochs without validation improvement
    grad_clip: float = 1.0
    seed: int = 0


@dataclass
class EpochProgress:
    epoch: int
    epochs: int
    loss: float
    val_loss: float | None
    elapsed_s: float
    eta_s: float

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


@dataclass
class TrainHistory:
    epochs: list[EpochProgress] = field(default_factory=list)
    best_epoch: int | None = None
    seconds: float = 0.0

    @property
    def final_loss(self) -> float:
        return self.epochs[-1].loss if self.epochs else math.nan


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_model(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    config: TrainConfig = TrainConfig(),
    forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    on_epoch: Callable[[EpochProgress], None] | None = None,
) -> TrainHistory:
    """Train the parameters of ``model`` that require grad; restore the best weights if validating."""
    if len(inputs) != len(targets):
        raise ValueError(f"inputs ({len(inputs)}) and targets ({len(targets)}) differ in length")
    if len(inputs) == 0:
        raise ValueError("no training examples")
    seed_everything(config.seed)
    forward = forward or (lambda m, batch: m(batch))
    n_val = int(len(inputs) * config.validation_fraction)
    train_x, train_y = inputs[: len(inputs) - n_val], targets[: len(inputs) - n_val]
    val_x, val_y = inputs[len(inputs) - n_val :], targets[len(inputs) - n_val :]
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("model has no trainable parameters")
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = math.ceil(len(train_x) / config.batch_size)
    if config.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=max(steps_per_epoch * config.epochs, 1)
    )
    history = TrainHistory()
    best_val, best_state, stale = math.inf, None, 0
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(train_x), generator=generator)
        losses = []
        for step in range(steps_per_epoch):
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            if len(index) == 0:
                break
            loss = loss_fn(forward(model, train_x[index]), train_y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(parameters, config.grad_clip)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
        val_loss = evaluate_loss(model, val_x, val_y, loss_fn, forward, config.batch_size) if n_val else None
        elapsed = time.perf_counter() - started
        progress = EpochProgress(
            epoch=epoch, epochs=config.epochs, loss=float(np.mean(losses)), val_loss=val_loss,
            elapsed_s=elapsed, eta_s=elapsed / epoch * (config.epochs - epoch),
        )
        history.epochs.append(progress)
        if on_epoch is not None:
            on_epoch(progress)
        if val_loss is not None:
            if val_loss < best_val:
                best_val, stale, history.best_epoch = val_loss, 0, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                if config.patience is not None and stale >= config.patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    history.seconds = time.perf_counter() - started
    return history


@torch.no_grad()
def evaluate_loss(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 64,
) -> float:
    forward = forward or (lambda m, batch: m(batch))
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(inputs), batch_size):
        batch_x, batch_y = inputs[start : start + batch_size], targets[start : start + batch_size]
        total += float(loss_fn(forward(model, batch_x), batch_y)) * len(batch_x)
        count += len(batch_x)
    return total / max(count, 1)
