"""Scoring throughput of the anomaly detectors: windows per second and FLOPs per window.

One window = one forecast horizon of 8 channels (the unit ``reprogram`` scores at a time). Runs the
forecasters' forward passes on batches of windows (weights untrained: speed does not depend on them)
and PCA's T²+Q on the same number of rows, all in one process, and reports each as a ratio to PCA.

    python bench/detect.py [--layers 6] [--windows 256] [--batch 64] [--threads 2]

Prints a table and writes ``bench/results/detect.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from models.detectors import AnomalyDetector, DetectorParams, PcaModel  # noqa: E402

DOMAIN = "Water pump test rig, 8 sensors at 1 Hz."


def flops_per_window(model: torch.nn.Module, forward, windows: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad():
        forward(model, windows[:1])  # one-time work (text prototypes, prompt-prefix cache) is not per window
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        forward(model, windows[:1])
    return float(counter.get_total_flops())


def time_forward(model: torch.nn.Module, forward, windows: torch.Tensor, batch: int) -> float:
    """Windows per second over all ``windows`` after one warm-up batch."""
    with torch.no_grad():
        forward(model, windows[:batch])
        started = time.perf_counter()
        for begin in range(0, len(windows), batch):
            forward(model, windows[begin : begin + batch])
    return len(windows) / (time.perf_counter() - started)


def build(method: str, **params: object) -> AnomalyDetector:
    detector = AnomalyDetector(method, **params)
    detector.columns = [f"s{i}" for i in range(8)]
    detector.model = detector._build_forecaster(8).eval()
    return detector


def gpu_rows(args: argparse.Namespace) -> list[dict[str, object]]:
    """bf16 and quantized backbones on CUDA: windows/s and peak memory (default and a ~1.5B shape)."""
    rows = []
    defaults = DetectorParams()
    windows = torch.randn(args.gpu_windows, 8, defaults.seq_len)
    for layers in args.layers:
        for quantization in args.gpu_quantizations:
            name = f"cuda reprogram {layers} layers {'bf16' if quantization == 'none' else quantization}"
            try:
                torch.cuda.reset_peak_memory_stats()
                detector = build("reprogram", domain=DOMAIN, num_layers=layers, device="cuda", quantization=quantization)
                wps = time_forward(detector.model, detector._forward, windows, args.gpu_batch)
                torch.cuda.synchronize()
                rows.append({"name": name, "windows_per_s": wps, "flops_per_window": float("nan"),
                             "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30})
            except Exception as error:  # a missing GPU library is a result to report, not a crash
                rows.append({"name": name, "windows_per_s": float("nan"), "flops_per_window": float("nan"),
                             "error": f"{type(error).__name__}: {error}"})
            print(f"  {name}: {rows[-1].get('windows_per_s')}", file=sys.stderr, flush=True)
            detector = None
            torch.cuda.empty_cache()
    rows.append(big_shape_row(args, windows))
    return rows


def big_shape_row(args: argparse.Namespace, windows: torch.Tensor) -> dict[str, object]:
    """A ~1.7B Llama shape (SmolLM2-1.7B: 2048 wide, 24 layers) with random weights, bf16."""
    from transformers import LlamaConfig

    from models.backbone import backbone_from_config, load_backbone

    tokenizer = load_backbone(num_layers=1, device="cpu").tokenizer
    config = LlamaConfig(
        vocab_size=49152, hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
        num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=2048, tie_word_embeddings=True,
    )
    name = "cuda reprogram random 1.7B shape (24 layers) bf16"
    try:
        torch.cuda.reset_peak_memory_stats()
        backbone = backbone_from_config(config, tokenizer, device="cuda", dtype=torch.bfloat16)
        detector = AnomalyDetector("reprogram", backbone=backbone, domain=DOMAIN, device="cuda")
        detector.columns = [f"s{i}" for i in range(8)]
        detector.model = detector._build_forecaster(8).eval()
        wps = time_forward(detector.model, detector._forward, windows[: args.gpu_windows // 4], args.gpu_batch)
        return {"name": name, "windows_per_s": wps, "flops_per_window": float("nan"),
                "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
                "backbone_parameters": backbone.num_parameters()}
    except Exception as error:
        return {"name": name, "windows_per_s": float("nan"), "flops_per_window": float("nan"),
                "error": f"{type(error).__name__}: {error}"}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, nargs="*", default=[2, 6, 30], help="backbone layer counts to bench (the detector default is 2)")
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (GPU rows: bf16 and the --gpu-quantizations)")
    parser.add_argument("--gpu-quantizations", nargs="*", default=["none", "bnb-int8", "bnb-4bit", "torchao-int8"])
    parser.add_argument("--gpu-windows", type=int, default=8192)
    parser.add_argument("--gpu-batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch threads; 1 is fastest on a loaded shared CPU (OpenMP spin-waits)")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "bench" / "results" / "detect.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    defaults = DetectorParams()
    seq_len, horizon = defaults.seq_len, defaults.horizon
    generator = torch.Generator().manual_seed(0)
    windows = torch.randn(args.windows, 8, seq_len, generator=generator)
    load_start = os.getloadavg()[0]
    rows = []

    # PCA baseline: one window = `horizon` rows scored.
    rng = np.random.default_rng(0)
    pca = PcaModel.fit(rng.standard_normal((400, 8)), 0.9)
    data = rng.standard_normal((args.windows * horizon, 8))
    started = time.perf_counter()
    for _ in range(20):
        pca.raw_score(data)
    pca_wps = 20 * args.windows / (time.perf_counter() - started)
    k = pca.components.shape[0]
    rows.append({"name": "pca T²+Q", "windows_per_s": pca_wps, "flops_per_window": float(horizon * (2 * 8 * k * 2 + 4 * 8))})

    candidates = [("patchtst (tsai)", "patchtst", {}, None)]
    candidates.append(("reprogram no-LLM ablation", "reprogram", {"llm": "none"}, None))
    for layers in args.layers:
        candidates.append((f"reprogram {layers} layers fp32", "reprogram", {"num_layers": layers}, None))
        candidates.append((f"reprogram {layers} layers dynamic-int8", "reprogram", {"num_layers": layers}, "dynamic-int8"))
    candidates.append((
        f"reprogram {args.layers[0]} layers channel-independent fp32", "reprogram",
        {"num_layers": args.layers[0], "channel_mode": "independent"}, None,
    ))
    for name, method, params, quantization in candidates:
        detector = build(method, domain=DOMAIN, **params)
        model = detector.model
        if quantization == "dynamic-int8":
            # Quantize the frozen decoder in place; the trunk's small layers stay float.
            decoder = detector.backbone.decoder
            detector.backbone.decoder = torch.ao.quantization.quantize_dynamic(decoder, {torch.nn.Linear}, dtype=torch.qint8)
        forward = detector._forward
        sample = windows if "independent" not in name else windows[:16]
        flops = flops_per_window(model, forward, sample) if quantization is None else float("nan")
        wps = time_forward(model, forward, sample, min(args.batch, len(sample)))
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        backbone = detector.backbone.num_parameters() if detector.backbone is not None and method == "reprogram" and params.get("llm") != "none" else None
        rows.append({
            "name": name, "windows_per_s": wps, "flops_per_window": flops, "trainable_parameters": trainable,
            "backbone_parameters": backbone,
        })
        print(f"  {name}: {wps:.1f} windows/s", file=sys.stderr, flush=True)
        detector.backbone = None

    if args.device == "cuda":
        rows.extend(gpu_rows(args))
    load_end = os.getloadavg()[0]
    print(f"{'model':<48} {'windows/s':>10} {'x PCA':>8} {'GFLOP/window':>13}")
    for row in rows:
        row["ratio_to_pca"] = row["windows_per_s"] / pca_wps
        gflop = row["flops_per_window"] / 1e9
        print(f"{row['name']:<48} {row['windows_per_s']:>10.1f} {row['ratio_to_pca']:>8.4f} {gflop:>13.3f}")
    print(f"window = {horizon} steps x 8 channels, context {seq_len}; batch {args.batch}; {args.threads} threads; "
          f"load average {load_start:.1f} -> {load_end:.1f} on {os.cpu_count()} cores (shared machine)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "window": {"channels": 8, "horizon": horizon, "seq_len": seq_len}, "batch": args.batch,
        "threads": args.threads, "load_average": [load_start, load_end], "rows": rows,
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
