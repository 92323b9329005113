"""Generic seeded training loop with progress callback."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.training import TrainConfig, train_model

torch.set_num_threads(1)  # small models: one thread avoids OpenMP spin-waits on a shared CPU


def regression_data(n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=generator)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]]) + 0.01 * torch.randn(n, 1, generator=generator)


def run(config: TrainConfig, callback=None):
    torch.manual_seed(123)  # model init differs from training seed on purpose: the loop reseeds batches
    model = nn.Linear(4, 1)
    x, y = regression_data()
    history = train_model(model, x, y, loss_fn=nn.functional.mse_loss, config=config, on_epoch=callback)
    return model, history


def test_loss_goes_down():
    _, history = run(TrainConfig(epochs=10, learning_rate=0.1))
    assert history.epochs[-1].loss < 0.1 * history.epochs[0].loss


def test_same_seed_gives_identical_losses():
    _, first = run(TrainConfig(epochs=3, seed=7))
    _, second = run(TrainConfig(epochs=3, seed=7))
    assert [e.loss for e in first.epochs] == [e.loss for e in second.epochs]


def test_callback_gets_epoch_loss_elapsed_and_eta():
    seen = []
    run(TrainConfig(epochs=3), seen.append)
    assert [p.epoch for p in seen] == [1, 2, 3]
    assert seen[-1].eta_s == 0 and seen[0].elapsed_s <= seen[-1].elapsed_s
    assert set(seen[0].as_dict()) == {"epoch", "epochs", "loss", "val_loss", "elapsed_s", "eta_s"}


def test_validation_restores_the_best_epoch_and_stops_early():
    # lr far too high: validation loss diverges after the first epochs, patience ends the run
    _, history = run(TrainConfig(epochs=30, learning_rate=5.0, validation_fraction=0.25, patience=2, grad_clip=0))
    assert len(history.epochs) < 30
    assert history.best_epoch is not None


def test_max_steps_per_epoch_caps_work():
    seen = []
    run(TrainConfig(epochs=1, batch_size=8, max_steps_per_epoch=2), seen.append)
    assert len(seen) == 1


def test_mismatched_inputs_and_targets_are_rejected():
    with pytest.raises(ValueError, match="differ in length"):
        train_model(nn.Linear(4, 1), torch.randn(5, 4), torch.randn(4, 1), loss_fn=nn.functional.mse_loss)


def test_model_without_trainable_parameters_is_rejected():
    model = nn.Linear(4, 1).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train_model(model, torch.randn(5, 4), torch.randn(5, 1), loss_fn=nn.functional.mse_loss)
