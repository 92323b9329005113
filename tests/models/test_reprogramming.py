"""Reprogramming trunk and forecast head on a tiny random Llama (fast, same code path as the real one)."""

from __future__ import annotations

import pytest
import torch

from models.backbone import tiny_random_backbone
from models.reprogramming import ForecastModel, ReprogrammingTrunk, trainable_share, window_statistics_text

torch.set_num_threads(1)  # small models: one thread avoids OpenMP spin-waits on a shared CPU


@pytest.fixture(scope="module")
def backbone():
    return tiny_random_backbone(hidden_size=32, num_layers=2)


def make_trunk(backbone, **overrides):
    params = dict(n_channels=3, seq_len=24, patch_len=8, stride=4, n_prototypes=10, d_model=16, d_output=8)
    params.update(overrides)
    return ReprogrammingTrunk(backbone, **params)


@pytest.mark.parametrize("mode,streams", [("mixed", 1), ("independent", 3)])
def test_trunk_returns_one_feature_vector_per_patch_and_stream(backbone, mode, streams):
    trunk = make_trunk(backbone, channel_mode=mode)
    out = trunk(torch.randn(5, 3, 24), prompts="pump")
    assert out.hidden.shape == (5, streams, trunk.n_patches, 8)
    assert trunk.n_patches == (24 - 8) // 4 + 2


def test_forecast_head_returns_horizon_per_channel_in_input_scale(backbone):
    model = ForecastModel(make_trunk(backbone), horizon=6).eval()
    x = torch.randn(4, 3, 24) * 100 + 1000
    y = model(x)
    assert y.shape == (4, 3, 6)
    assert (y.mean() - 1000).abs() < 300  # RevIN maps the head's output back to the input level


def test_gradients_reach_trunk_but_not_backbone(backbone):
    model = ForecastModel(make_trunk(backbone), horizon=4)
    model(torch.randn(2, 3, 24)).pow(2).mean().backward()
    assert model.trunk.prototype_map.weight.grad is not None
    assert all(p.grad is None for p in backbone.decoder.parameters())


def test_state_dict_never_contains_the_backbone(backbone):
    trunk = make_trunk(backbone)
    assert not any(k.startswith("backbone") for k in trunk.trainable_state_dict())
    assert trainable_share(trunk, backbone)["trainable"] == trunk.trainable_parameter_count()


def test_no_llm_ablation_skips_backbone_and_prototypes():
    trunk = ReprogrammingTrunk(None, n_channels=3, seq_len=24, patch_len=8, stride=4, d_output=8)
    assert trunk.config.llm == "none" and not hasattr(trunk, "prototype_map")
    assert trunk(torch.randn(2, 3, 24)).hidden.shape == (2, 1, trunk.n_patches, 8)


def test_prompt_carries_domain_task_and_window_statistics(backbone):
    trunk = make_trunk(backbone)
    ramp = torch.linspace(-1, 1, 24).repeat(1, 3, 1)
    text = trunk.prompt_texts(ramp, "Water pump")[0]
    assert text.startswith("Water pump Task: forecast.") and "trend up" in text and "min -1.0 max 1.0" in text


def test_statistics_find_the_period_of_a_sine_as_top_lag():
    t = torch.arange(96, dtype=torch.float32)
    text = window_statistics_text(torch.sin(2 * torch.pi * t / 12).view(1, 1, -1), n_lags=1)[0]
    assert text.endswith("lags 12")


def test_eval_mode_caches_prototypes_and_train_mode_rebuilds_them(backbone):
    trunk = make_trunk(backbone).eval()
    first = trunk.prototypes()
    assert trunk.prototypes() is first
    trunk.train()
    assert trunk._cached_prototypes is None


def test_wrong_input_shape_is_explained(backbone):
    with pytest.raises(ValueError, match=r"\[batch, 3, 24\]"):
        make_trunk(backbone)(torch.randn(2, 4, 24))


def test_invalid_configuration_lists_the_problem(backbone):
    with pytest.raises(ValueError, match="shorter than patch_len"):
        make_trunk(backbone, seq_len=4)


def test_prompt_count_must_match_batch(backbone):
    with pytest.raises(ValueError, match="2 prompts for a batch of 3"):
        make_trunk(backbone)(torch.randn(3, 3, 24), prompts=["a", "b"])


def test_cached_prompt_prefix_gives_the_same_features_as_running_the_full_prompt(backbone):
    trunk = make_trunk(backbone).eval()
    x = torch.randn(3, 3, 24)
    with torch.no_grad():
        cached = trunk(x, prompts="pump").hidden
        trunk._prefix_for = lambda text: None  # force the full prompt through the backbone
        full = trunk(x, prompts="pump").hidden
    assert torch.allclose(cached, full, atol=1e-3)


def test_skip_trunk_starts_as_its_patch_path_and_then_trains_the_language_model_branch(backbone):
    trunk = make_trunk(backbone, skip=True, dropout=0.0).eval()
    x = torch.randn(4, 3, 24)
    patches = trunk.patch_embedding(trunk.patchify(trunk.revin.normalize(x)[0]))
    start = trunk(x, prompts="pump").hidden
    assert torch.allclose(start.reshape(4, trunk.n_patches, -1), trunk.skip_projection(patches), atol=1e-6)

    model = ForecastModel(trunk, horizon=6).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):  # step 1 moves the zero-initialised projection, step 2 reaches the layers before it
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x, "pump"), torch.randn(4, 3, 6)).backward()
        optimizer.step()
    assert trunk.output_projection.weight.abs().sum() > 0
    assert trunk.reprogramming.query.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in backbone.decoder.parameters())
