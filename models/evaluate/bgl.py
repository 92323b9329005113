"""BGL log anomaly harness (the log-only path of diagnosis): ``python -m models.evaluate bgl --data DIR``.

Data: Loghub's ``BGL_2k.log_structured_corrected.csv`` (2,000 BlueGene/L RAS lines, June 2005 to
January 2006, ``Label`` ``-`` = normal, otherwise the alert category). Line-level precision, recall
and F1 of the anomaly lines.

Protocol: the file is in time order; the first ``--fit-fraction`` (50 %) of the lines is the
fitting part, the rest is scored. Nothing is tuned on the scored part: the thresholds are fixed
(level set, change significance) or chosen by cross-validation inside the fitting part, grouped by
template so that every held-out fold holds templates the head has never seen (the scored part's
anomalies all come from templates absent from the fitting part, so that is the situation to select
for). Templates are the connector's miner's (``models.logs.events_from_messages`` on ``Content`` with
the connector's default miner, ``connectors.logtemplates``, all lines mined in time order without labels); rows on Loghub's
hand-corrected ``EventTemplate`` are given for comparison.

Methods:

* ``level``: the trivial baseline, a line is an anomaly when its Level is FATAL, FAILURE or SEVERE.
* ``novelty``: the statistic of ``models.logs.template_changes``: a line is flagged when its
  template's count in the trailing window (``--window-minutes``, ending at the line) rose
  significantly (p < ``models.logs.CHANGE_P``) above the template's smoothed rate in the baseline.
  Baseline = the fitting part (``fit``) or every line before the window (``rolling``). Unsupervised.
* ``llm``: the model's log-only path. The text a line contributes (``"<LEVEL> <template>"``, or the
  line's own evidence item in the prompt form of ``models.logs.log_prompt_text`` for its window and
  rolling baseline) runs through the frozen SmolLM2-135M (``load_backbone``, the first
  ``--layers`` decoder layers), the last layer's hidden states are mean-pooled over the tokens, and
  a logistic regression head (standardised inputs, balanced class weights) is fitted on the fitting
  part's labels; its C and threshold come from the grouped cross-validation. With only a handful
  of anomalous templates in the fitting part that choice is noisy, so every trained row is run
  for several shuffles of the CV folds (``--cv-seeds``) and reports the mean (and the F1 spread).
  AP (average precision of the scores) is given too: it does not depend on the threshold.
  Distinct texts are embedded once. Ablations: a randomly initialised backbone of the same shape,
  and TF-IDF words into the same head (no language model).

Measured (05:40 UTC, 6 layers, 5 CV shuffles): the level rule has F1 0.516 (recall 1.0: every
scored anomaly is FATAL); novelty 0.107 (BGL labels alert categories, not rate changes, and 702
of the 1,000 scored lines have templates the fitting part never saw); the LLM head 0.401 +- 0.044
at AP 0.494, catching the ``ciod: Error reading message prefix`` family by its likeness to the
fitting part's ``ciod: failed to read message prefix``; the random-LLM ablation 0.407 at AP 0.750.
The head ranks far above the 4.7 % base rate, but thresholds chosen inside the fitting part do
not transfer to the scored part's new anomaly templates.

Prints one table and writes JSON to ``bench/results/bgl.json`` (``--json``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from models.diagnosis.types import LogEvent
from models.evaluate import REPO_ROOT, shared_data_dir
from models.logs import CHANGE_P, PRIOR_COUNT, describe_change, events_from_messages, most_severe, template_change
from models.metrics.detection import confusion_counts, detection_scores

STRUCTURED_FILE = "BGL_2k.log_structured_corrected.csv"
ANOMALY_LEVELS = frozenset({"FATAL", "FAILURE", "SEVERE"})
C_GRID = (0.001, 0.01, 0.1, 1.0)  # inverse L2 strength of the head, picked by the grouped CV
Log = Callable[[str], None]


@dataclass(frozen=True)
class BglLines:
    ts: list[datetime]
    level: list[str]  # as written in the file (FATAL, INFO, ...)
    content: list[str]
    event_template: list[str]  # Loghub's hand-corrected template
    anomaly: np.ndarray  # bool per line

    def __len__(self) -> int:
        return len(self.content)


def read_bgl(path: Path) -> BglLines:
    """Read the structured CSV (``path`` is the file or the folder holding it), in time order."""
    csv_path = path / STRUCTURED_FILE if path.is_dir() else path
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path} not found (expected Loghub's {STRUCTURED_FILE})")
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    missing = {"Label", "Timestamp", "Level", "Content", "EventTemplate"} - set(rows[0] if rows else ())
    if missing:
        raise ValueError(f"{csv_path}: missing columns {sorted(missing)}")
    rows.sort(key=lambda row: int(row["Timestamp"]))  # stable: the file order within a second
    return BglLines(
        ts=[datetime.fromtimestamp(int(row["Timestamp"]), tz=timezone.utc) for row in rows],
        level=[row["Level"].strip().upper() for row in rows],
        content=[row["Content"] for row in rows],
        event_template=[row["EventTemplate"] for row in rows],
        anomaly=np.array([row["Label"].strip() != "-" for row in rows], dtype=bool),
    )


def split_point(n_lines: int, fit_fraction: float) -> int:
    if not 0 < fit_fraction < 1:
        raise ValueError(f"fit fraction {fit_fraction} must lie strictly between 0 and 1")
    return max(1, min(n_lines - 1, int(round(n_lines * fit_fraction))))


# ------------------------------------------------------------------------------------------------
# Methods: each returns (predicted bool per scored line, score per scored line or None, details)


def level_method(lines: BglLines, split: int) -> tuple[np.ndarray, None, dict]:
    predicted = np.array([level in ANOMALY_LEVELS for level in lines.level[split:]])
    return predicted, None, {"levels": sorted(ANOMALY_LEVELS)}


@dataclass(frozen=True)
class WindowChange:
    """What the change statistic says about one line's template in that line's trailing window."""

    surprise: float  # 0 unless the template rose above its baseline rate
    text: str  # the line's evidence item in prompt form


def window_changes(
    events: Sequence[LogEvent], *, window: timedelta, baseline: str, fit_end: int, start: int = 0
) -> list[WindowChange]:
    """For lines ``start..``: the change of the line's template in ``(ts - window, ts]`` (lines up to it).

    ``baseline="fit"``: the lines of the fitting part before the window; ``"rolling"``: every line
    before the window. Baseline hours run from the first line to the end of the baseline (at least
    one window, so the first lines of the file are not compared against a few seconds of history).
    Counts are kept incrementally; the statistic is :func:`models.logs.template_change`.
    """
    if baseline not in {"fit", "rolling"}:
        raise ValueError(f"baseline must be 'fit' or 'rolling', not {baseline!r}")
    window_hours = window.total_seconds() / 3600.0
    baseline_limit = len(events) if baseline == "rolling" else fit_end
    baseline_counts: Counter[str] = Counter()
    first_in_window = 0
    results = []
    for index in range(len(events)):
        window_start = events[index].ts - window
        while events[first_in_window].ts <= window_start:
            if first_in_window < baseline_limit:
                baseline_counts[events[first_in_window].template] += 1
            first_in_window += 1
        if index < start:
            continue
        template = events[index].template
        in_window = [event for event in events[first_in_window: index + 1] if event.template == template]
        baseline_end = window_start if baseline == "rolling" or fit_end >= len(events) else min(
            window_start, events[fit_end].ts)
        baseline_hours = max((baseline_end - events[0].ts).total_seconds() / 3600.0, window_hours)
        change = template_change(
            template, count=len(in_window), baseline_count=baseline_counts[template], window_hours=window_hours,
            baseline_hours=baseline_hours, level=most_severe([event.level for event in in_window]),
        )
        rose = change.evidence.count > (baseline_counts[template] + PRIOR_COUNT) / baseline_hours * window_hours
        results.append(WindowChange(surprise=change.surprise if rose else 0.0, text=describe_change(change.evidence)))
    return results


def novelty_method(
    events: Sequence[LogEvent], split: int, *, window: timedelta, baseline: str
) -> tuple[np.ndarray, np.ndarray, dict]:
    changes = window_changes(events, window=window, baseline=baseline, fit_end=split, start=split)
    scores = np.array([change.surprise for change in changes])
    threshold = -np.log(CHANGE_P)
    return scores >= threshold, scores, {"baseline": baseline, "window_minutes": window.total_seconds() / 60,
                                         "surprise_threshold": float(threshold)}


# ------------------------------------------------------------------------------------------------
# Trained head on text features


@dataclass
class HeadFit:
    predicted: np.ndarray
    scores: np.ndarray
    details: dict
    trainable: int


def collapse_rows(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (feature row, label) pairs: (rows, labels, index of each line's pair, lines per pair).

    Lines with the same text have the same features; fitting on the distinct rows weighted by
    their line counts gives the same logistic regression as fitting on every line, much faster.
    """
    keyed = np.concatenate([features, labels[:, None].astype(features.dtype)], axis=1)
    unique, inverse, counts = np.unique(keyed, axis=0, return_inverse=True, return_counts=True)
    return unique[:, :-1], unique[:, -1].astype(bool), inverse.reshape(-1), counts


def balanced_weights(labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-row weights = lines x the class's balanced weight (n / (2 n_class)), counted in lines."""
    total = counts.sum()
    positives = counts[labels].sum()
    per_class = {True: total / (2 * max(positives, 1)), False: total / (2 * max(total - positives, 1))}
    return counts * np.where(labels, per_class[True], per_class[False])


def fit_head(
    features: np.ndarray, labels: np.ndarray, groups: Sequence[str], split: int, *, scale: bool = True, seed: int = 0
) -> HeadFit:
    """Logistic regression on the fitting part; C and threshold by template-grouped CV inside it.

    Balanced class weights (counted in lines). The CV folds (``StratifiedGroupKFold``, ``seed``
    shuffles them) hold out whole templates; C maximises the out-of-fold average precision over
    the fitting lines, the threshold the out-of-fold F1.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.preprocessing import StandardScaler

    def fit(c: float, x: np.ndarray, y: np.ndarray, weight: np.ndarray):
        scaler = StandardScaler().fit(x, sample_weight=weight) if scale else None
        head = LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(x) if scaler else x, y, sample_weight=weight)
        return lambda rows: head.predict_proba(scaler.transform(rows) if scaler else rows)[:, 1], head

    y_fit = labels[:split]
    rows, row_labels, line_row, counts = collapse_rows(features[:split], y_fit)
    first_line = np.zeros(len(rows), dtype=int)
    first_line[line_row[::-1]] = np.arange(split)[::-1]  # any line of the row names its template
    row_groups = np.asarray(groups[:split])[first_line]
    positive_groups = len(set(row_groups[row_labels]))
    details: dict[str, object] = {"positive_templates_in_fit": positive_groups, "distinct_fit_rows": len(rows)}
    if positive_groups >= 2 and (~row_labels).any():
        folds = list(StratifiedGroupKFold(n_splits=min(5, positive_groups), shuffle=True, random_state=seed)
                     .split(rows, row_labels, row_groups))
        best = None
        for c in C_GRID:
            oof_rows = np.zeros(len(rows))
            for train, held in folds:
                if len(set(row_labels[train])) < 2:
                    oof_rows[held] = float(row_labels[train][0])
                    continue
                predict, _ = fit(c, rows[train], row_labels[train], balanced_weights(row_labels[train], counts[train]))
                oof_rows[held] = predict(rows[held])
            oof = oof_rows[line_row]
            ap = average_precision_score(y_fit, oof)
            if best is None or ap > best[0] + 1e-9:
                best = (ap, c, oof)
        ap, c, oof = best
        threshold = best_f1_threshold(y_fit, oof)
        details.update({"C": c, "threshold": threshold, "cv_average_precision": float(ap),
                        "cv_f1": float(detection_scores(confusion_counts(y_fit, oof >= threshold)).f1)})
    else:
        c, threshold = 1.0, 0.5  # too few labelled templates to select anything: the defaults
        details.update({"C": c, "threshold": threshold, "cv": "skipped"})
    if len(set(y_fit)) < 2:
        scores = np.full(len(labels) - split, float(y_fit[0]))
        return HeadFit(scores >= threshold, scores, {**details, "head": "constant"}, 0)
    predict, head = fit(c, rows, row_labels, balanced_weights(row_labels, counts))
    scores = predict(features[split:])
    trainable = int(head.coef_.size + head.intercept_.size)
    return HeadFit(scores >= threshold, scores, details, trainable)


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold (predict ``>=``) with the best F1; the midpoint to the next lower score."""
    candidates = np.unique(scores)
    best_f1, best_index = -1.0, 0
    for index, threshold in enumerate(candidates):
        f1 = detection_scores(confusion_counts(labels, scores >= threshold)).f1
        if f1 > best_f1:
            best_f1, best_index = f1, index
    if best_index == 0:
        return float(candidates[0])
    return float((candidates[best_index] + candidates[best_index - 1]) / 2)


def embed_texts(backbone, texts: Sequence[str], *, pooling: str = "mean", batch_size: int = 16) -> np.ndarray:
    """Last hidden states of each text through the frozen backbone: mean over its tokens, or its last token."""
    import torch

    if pooling not in {"mean", "last"}:
        raise ValueError(f"pooling must be 'mean' or 'last', not {pooling!r}")
    pooled = []
    with torch.no_grad():
        for begin in range(0, len(texts), batch_size):
            embeds, mask = backbone.embed_text(list(texts[begin: begin + batch_size]))
            hidden = backbone(embeds.to(backbone.dtype), attention_mask=mask)
            if pooling == "last":
                vectors = hidden[:, -1]  # left padded: the last position is every text's last token
            else:
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                vectors = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
            pooled.append(vectors.float().cpu().numpy())
    return np.concatenate(pooled) if pooled else np.zeros((0, backbone.hidden_size), dtype=np.float32)


def cached_text_features(texts: Sequence[str], embed: Callable[[Sequence[str]], np.ndarray]) -> tuple[np.ndarray, int]:
    """Embed each distinct text once; rows follow ``texts``. Returns (features, distinct count)."""
    distinct = sorted(set(texts))
    table = embed(distinct)
    position = {text: i for i, text in enumerate(distinct)}
    return table[[position[text] for text in texts]], len(distinct)


# ------------------------------------------------------------------------------------------------
# Variants and the run


@dataclass(frozen=True)
class Variant:
    label: str
    method: str  # level | novelty | llm | tfidf
    templates: str = "drain"  # drain | corrected
    baseline: str = "fit"  # novelty: fit | rolling
    text: str = "template"  # llm/tfidf input: template ("<LEVEL> <template>") | window (prompt evidence)
    layers: int | None = None
    random_init: bool = False
    quantization: str = "none"


def build_variants(args: argparse.Namespace) -> list[Variant]:
    layers = args.layers
    variants = [
        Variant("level FATAL/FAILURE/SEVERE (trivial)", "level"),
        Variant("novelty vs fitting part", "novelty", baseline="fit"),
        Variant("novelty vs rolling baseline", "novelty", baseline="rolling"),
        Variant("novelty vs fitting part [corrected tpl]", "novelty", templates="corrected", baseline="fit"),
        Variant(f"LLM head: template ({layers} layers)", "llm", layers=layers, quantization=args.quantization),
        Variant(f"LLM head: window text ({layers} layers)", "llm", text="window", layers=layers,
                quantization=args.quantization),
        Variant(f"ablation: random LLM ({layers} layers)", "llm", layers=layers, random_init=True),
        Variant("ablation: TF-IDF head (no LLM)", "tfidf"),
        Variant(f"LLM head: template [corrected tpl] ({layers})", "llm", templates="corrected", layers=layers,
                quantization=args.quantization),
    ]
    for extra in args.layer_study:
        variants.append(Variant(f"LLM head: template ({extra} layers)", "llm", layers=extra,
                                quantization=args.quantization))
    if args.only:
        wanted = set(args.only)
        variants = [v for v in variants if v.method in wanted or v.label in wanted]
    return variants


class Backbones:
    """Load each backbone configuration once per run."""

    def __init__(self, source: str | None):
        self.source = source
        self.loaded: dict[tuple, object] = {}

    def get(self, layers: int | None, random_init: bool, quantization: str):
        key = (layers, random_init, quantization)
        if key not in self.loaded:
            from models.backbone import load_backbone, tiny_random_backbone

            if self.source == "tiny-random":
                self.loaded[key] = tiny_random_backbone(num_layers=min(layers or 2, 2), seed=1 if random_init else 0)
            else:
                self.loaded[key] = load_backbone(self.source, device="cpu", num_layers=layers,
                                                 random_init=random_init, quantization=quantization)
        return self.loaded[key]


def line_texts(variant: Variant, events: Sequence[LogEvent], window: timedelta, split: int) -> list[str]:
    if variant.text == "window":
        return [change.text for change in window_changes(events, window=window, baseline="rolling", fit_end=split)]
    return [f"{event.level} {event.template}" for event in events]


def recall_by_template(truth: np.ndarray, predicted: np.ndarray, templates: Sequence[str]) -> dict[str, list[int]]:
    """``{template: [anomalous lines, of them flagged]}`` over the scored anomalies (which kinds are caught)."""
    caught: dict[str, list[int]] = {}
    for is_anomaly, flagged, template in zip(truth, predicted, templates):
        if is_anomaly:
            entry = caught.setdefault(template, [0, 0])
            entry[0] += 1
            entry[1] += int(flagged)
    return dict(sorted(caught.items(), key=lambda item: -item[1][0]))


def line_scores(truth: np.ndarray, predicted: np.ndarray, scores: np.ndarray | None) -> dict[str, object]:
    """Line-level precision/recall/F1 (``models.metrics.detection``) and, given scores, average precision."""
    scored = detection_scores(confusion_counts(truth, predicted)).as_dict()
    average_precision = None
    if scores is not None and truth.any():
        from sklearn.metrics import average_precision_score

        average_precision = float(average_precision_score(truth, scores))
    return {**scored, "average_precision": average_precision, "flagged": int(np.sum(predicted))}


def run_variant(
    variant: Variant, lines: BglLines, events: dict[str, list[LogEvent]], split: int,
    args: argparse.Namespace, backbones: Backbones, log: Log,
) -> dict[str, object]:
    """One table row. Trained heads run once per CV seed; the row holds the mean over seeds."""
    started = time.perf_counter()
    chosen = events[variant.templates]
    window = timedelta(minutes=args.window_minutes)
    truth = lines.anomaly[split:]
    scored_templates = [event.template for event in chosen[split:]]
    trainable, extra, per_seed = 0, {}, []
    if variant.method in {"level", "novelty"}:
        if variant.method == "level":
            predicted, scores, details = level_method(lines, split)
        else:
            predicted, scores, details = novelty_method(chosen, split, window=window, baseline=variant.baseline)
        metrics = line_scores(truth, predicted, scores)
        details["recall_by_template"] = recall_by_template(truth, predicted, scored_templates)
    else:
        texts = line_texts(variant, chosen, window, split)
        if variant.method == "tfidf":
            from sklearn.feature_extraction.text import TfidfVectorizer

            vectorizer = TfidfVectorizer(token_pattern=r"[A-Za-z][A-Za-z_]+", lowercase=True)
            vectorizer.fit(texts[:split])  # vocabulary of the fitting part only
            features, distinct = vectorizer.transform(texts).toarray(), len(set(texts))
            scale = False
        else:
            backbone = backbones.get(variant.layers, variant.random_init, variant.quantization)
            features, distinct = cached_text_features(
                texts, lambda batch: embed_texts(backbone, batch, pooling=args.pooling))
            scale = True
            extra = {"backbone": backbone.describe(), "pooling": f"{args.pooling} of the last kept layer's hidden states",
                     "layers_used": f"decoder layers 1..{backbone.num_layers} of the frozen backbone"}
        groups = [event.template for event in chosen]
        for seed in args.cv_seeds:
            head = fit_head(features, lines.anomaly, groups, split, scale=scale, seed=seed)
            per_seed.append({"seed": seed, **line_scores(truth, head.predicted, head.scores), **head.details,
                             "recall_by_template": recall_by_template(truth, head.predicted, scored_templates)})
            trainable = head.trainable
        keys = ("precision", "recall", "f1", "far_percent", "mar_percent", "flagged")
        metrics = {key: float(np.mean([run[key] for run in per_seed])) for key in keys}
        precisions = [run["average_precision"] for run in per_seed]
        metrics["average_precision"] = None if None in precisions else float(np.mean(precisions))
        metrics["n_points"] = len(truth)
        metrics["f1_sd"] = float(np.std([run["f1"] for run in per_seed]))
        details = {"distinct_texts": distinct, "feature_width": int(features.shape[1]), "text_example": texts[-1],
                   "per_seed": per_seed}
    result = {
        "label": variant.label, "method": variant.method, "templates": variant.templates, "f1_sd": None,
        **metrics, "trainable_parameters": trainable, "seconds": time.perf_counter() - started,
        "details": details, **extra,
    }
    log(f"  {variant.label}: P {result['precision']:.3f} R {result['recall']:.3f} F1 {result['f1']:.3f} "
        f"({result['seconds']:.1f}s)")
    return result


def format_table(results: list[dict[str, object]]) -> str:
    header = (f"{'method':<46} {'P':>6} {'R':>6} {'F1':>6} {'F1 sd':>6} {'AP':>6} {'flagged':>7} "
              f"{'trainable':>9} {'s':>6}")
    lines = [header, "-" * len(header)]
    for r in results:
        ap = f"{r['average_precision']:>6.3f}" if r["average_precision"] is not None else f"{'-':>6}"
        sd = f"{r['f1_sd']:>6.3f}" if r["f1_sd"] is not None else f"{'-':>6}"
        lines.append(
            f"{r['label']:<46} {r['precision']:>6.3f} {r['recall']:>6.3f} {r['f1']:>6.3f} {sd} {ap} "
            f"{r['flagged']:>7.0f} {r['trainable_parameters']:>9,} {r['seconds']:>6.1f}"
        )
    return "\n".join(lines)


def describe_split(lines: BglLines, split: int) -> dict[str, object]:
    def part(begin: int, end: int) -> dict[str, object]:
        anomalies = int(lines.anomaly[begin:end].sum())
        return {"lines": end - begin, "anomalies": anomalies, "anomaly_ratio": anomalies / max(end - begin, 1),
                "first": lines.ts[begin].isoformat(), "last": lines.ts[end - 1].isoformat()}

    return {"fit": part(0, split), "scored": part(split, len(lines))}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m models.evaluate bgl", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "loghub" / "BGL",
                        help=f"folder with {STRUCTURED_FILE} (or the file itself)")
    parser.add_argument("--fit-fraction", type=float, default=0.5, help="first share of lines used for fitting")
    parser.add_argument("--window-minutes", type=float, default=60.0, help="trailing window of the change statistic")
    parser.add_argument("--layers", type=int, default=6, help="backbone decoder layers kept (default 6 of 30)")
    parser.add_argument("--layer-study", type=int, nargs="*", default=[], help="extra LLM-head rows with these layer counts")
    parser.add_argument("--pooling", choices=("mean", "last"), default="mean",
                        help="hidden states -> one vector: mean over the tokens, or the last token")
    parser.add_argument("--quantization", default="none", help="backbone quantization (none | dynamic-int8 on CPU)")
    parser.add_argument("--backbone", default=None, help="HF folder or .gguf (default SmolLM2-135M); 'tiny-random' for tests")
    parser.add_argument("--only", nargs="*", default=None, help="methods (level novelty llm tfidf) or labels to run")
    parser.add_argument("--cv-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                        help="shuffles of the grouped CV folds; trained rows report the mean (and F1 sd) over them")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared CPU)")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "bench" / "results" / "bgl.json")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)  # numpy/scikit-learn BLAS too: OpenMP spin-waits hurt on a shared CPU
    log: Log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    try:
        lines = read_bgl(args.data)
    except FileNotFoundError as error:
        print(f"bgl: {error}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    load = os.getloadavg()[0]
    split = split_point(len(lines), args.fit_fraction)
    records = list(zip(lines.ts, lines.level, lines.content))
    drain = events_from_messages(records)
    events = {
        "drain": drain,
        "corrected": [LogEvent(e.ts, e.level, template) for e, template in zip(drain, lines.event_template)],
    }
    split_info = describe_split(lines, split)
    fit_templates = {e.template for e in drain[:split]}
    split_info["drain_templates"] = len({e.template for e in drain})
    split_info["scored_lines_with_template_unseen_in_fit"] = sum(e.template not in fit_templates for e in drain[split:])
    log(f"BGL: {len(lines)} lines from {args.data}; fit {split_info['fit']} scored {split_info['scored']}; "
        f"load average {load:.1f} on {os.cpu_count()} cores")
    backbones = Backbones(args.backbone)
    results = []
    for variant in build_variants(args):
        log(f"- {variant.label}")
        results.append(run_variant(variant, lines, events, split, args, backbones, log))
    elapsed = time.perf_counter() - started
    print(format_table(results))
    for name, part in (("fit", split_info["fit"]), ("scored", split_info["scored"])):
        print(f"{name}: {part['lines']} lines {part['first'][:10]}..{part['last'][:10]}, "
              f"{part['anomalies']} anomalies ({100 * part['anomaly_ratio']:.1f} %)")
    print(f"mined templates {split_info['drain_templates']}; scored lines whose template the fitting part never saw "
          f"{split_info['scored_lines_with_template_unseen_in_fit']}; harness {elapsed:.0f} s "
          f"(load average at start {load:.1f}, end {os.getloadavg()[0]:.1f})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(
        {"data": str(args.data), "split": split_info, "fit_fraction": args.fit_fraction,
         "window_minutes": args.window_minutes, "change_p": CHANGE_P, "results": results,
         "seconds": elapsed, "load_average_start": load}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
