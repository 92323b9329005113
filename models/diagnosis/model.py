"""``FaultDiagnoser``: root cause of an alarm from sensors, logs and an inspection image.

Usage::

    diagnoser = FaultDiagnoser().fit(simulate_incidents(per_class=20))
    result = diagnoser.diagnose(incident)          # DiagnosisResult (models.diagnosis.types)
    diagnoser.save("var/models/diagnosis"); FaultDiagnoser.load("var/models/diagnosis")

Training (``fit``), in two stages:

1. **Image pre-fit** (LLaVA stage 0): the vision encoder learns the visible findings
   (``connectors.simulator.IMAGE_FINDINGS``: hot bearing spot, hot coupling band, ...) from the
   incidents' images, then stays frozen; its head also names the finding in the evidence.
2. **Fusion**: the text prompt (equipment type, task, changed log templates), the projected image
   tokens and the reprogrammed sensor patch tokens go through the frozen backbone as one sequence
   (:mod:`models.diagnosis.network`); the trunk, the projector, the fusion layer and the head
   learn. **Modality dropout**: each present modality of a training incident is hidden with
   probability ``modality_dropout`` (at least one stays), so the model answers with any subset.
3. **Summary booster** (``booster_weight`` > 0): gradient-boosted trees on the window statistics
   (:mod:`models.diagnosis.boosting`); the answer is the softmax of ``(1 - w) log p_network +
   w log p_trees`` for incidents with a sensor window (the network's alone without one), and
   :meth:`calibrate` fits the temperature on that combination.

``update`` is the continual-learning step for engineer feedback: the corrected incidents plus a
replay set of old ones retrain the fusion layer and the head (everything upstream frozen), and a
class the taxonomy did not have yet is added for its equipment type.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from connectors.simulator import IMAGE_FINDINGS, NO_VISIBLE_FINDING, image_finding
from models.backbone import Backbone, load_backbone
from models.diagnosis import explain as explanation
from models.diagnosis.boosting import SummaryBooster
from models.diagnosis.dynamics import dynamics_summary, dynamics_summary_size, fit_dynamics
from models.diagnosis.features import (
    CHANNELS_PER_MEASURE, N_CROSS_SUMMARY, NormalStats, bin_window, cross_measure_summary, fit_normal_stats, residual_summary,
    residual_summary_size, residual_tails, sensor_evidence, standardise, trend_summary, trend_summary_size, window_summary,
)
from models.diagnosis.network import MASKED_LOGIT, FusionBatch, FusionNetwork, ImagePath, TextPrefix, text_prefix
from models.diagnosis.taxonomy import DEFAULT_TAXONOMY, check_taxonomy
from models.diagnosis.types import (
    MODALITIES, NO_KNOWN_FAULT, NORMAL, DiagnosisResult, Evidence, ImageEvidence, Incident, LogEvidence,
)
from models.logs import log_prompt_text, rank_template_changes
from models.training import EpochProgress, TrainConfig, seed_everything, train_model

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
BOOSTER_FILE = "summary_booster.txt"  # LightGBM's own text format: no pickle in a diagnoser folder
#: Fewest incidents of every class an ``update`` needs to refit the summary booster; with fewer the
#: updated diagnoser answers with the network alone.
MIN_BOOSTER_PER_CLASS = 2
FORMAT = "phm-fault-diagnoser/1"
#: Log changes shown to the model: far looser than models.logs' CHANGE_P, because controllers
#: throttle their messages (one line per 10 min per condition), so a fault's log signature in a
#: 30-minute window is a few new lines, which the strict test calls chance. The model learns
#: which of them matter; the same list is the evidence, so the operator sees what the model saw.
PROMPT_CHANGE_P = 0.25
MAX_LOG_CHANGES = 5
MIN_WINDOW_HOURS = 1 / 60
PREFIX_CACHE_SIZE = 64
_BACKBONES: dict[tuple, Backbone] = {}


@dataclass(frozen=True)
class DiagnoserConfig:
    num_layers: int = 4
    quantization: str = "dynamic-int8"
    backbone_source: str | None = None
    seed: int = 0
    modality_dropout: float = 0.3
    seq_len: int = 32  # time bins of the sensor window
    patch_len: int = 8  # bins per sensor patch token
    tail_bins: int = 3  # window summary also holds the mean of the last bins (0: the summary of diagnosers saved before it)
    cross_summary: bool = True  # and features.cross_measure_summary (False: diagnosers saved before it)
    residual_summary: bool = True  # and features.residual_summary of the detector's residuals (False: saved before it)
    trend_summary: bool = True  # and features.trend_summary, each measure against its own recent line (False: saved before it)
    dynamics_summary: bool = True  # and dynamics.dynamics_summary, each measure against what the unit explains (False: saved before it)
    #: Weight of boosting.SummaryBooster (trees on the summary) in the answer, the network's
    #: log-probabilities taking the rest; 0: the network alone (diagnosers saved before it).
    booster_weight: float = 0.5
    image_size: int = 64
    fusion_dim: int = 128
    n_prototypes: int = 64
    d_model: int = 64
    dropout: float = 0.1
    epochs: int = 10
    batch_size: int = 16
    learning_rate: float = 2e-3
    image_epochs: int = 15
    use_llm: bool = True  # False: the "no language model" ablation (token embeddings, no transformer layer)
    max_new_tokens: int = 48  # explanation length (tokens of the summary)
    explanation_budget_s: float = explanation.DEFAULT_TIME_BUDGET_S  # then the template sentence is used


@dataclass
class _Prepared:
    equipment_type: str
    modalities: tuple[str, ...]
    prompt: str
    log_changes: list[LogEvidence]
    sensors: np.ndarray | None = None  # [C, L] model input
    summary: np.ndarray | None = None  # [n_summary] window statistics
    z: np.ndarray | None = None  # [M, 3, L] standardised channels, for the evidence
    present: np.ndarray | None = None  # [M] measures in the window
    residual_tail: np.ndarray | None = None  # [M] the detector's recent residuals (limit units), for the evidence
    pixels: np.ndarray | None = None  # [1, S, S] in [0, 1]
    image_tokens: torch.Tensor | None = None  # [I, vision_dim] (frozen encoder)
    prefix: TextPrefix | None = field(default=None, repr=False)


def shared_backbone(config: DiagnoserConfig) -> Backbone:
    """The frozen backbone for ``config``, loaded once per process (it never trains)."""
    key = (config.backbone_source, config.num_layers, config.quantization)
    if key not in _BACKBONES:
        _BACKBONES[key] = load_backbone(config.backbone_source, device="cpu", num_layers=config.num_layers,
                                        quantization=config.quantization)
    return _BACKBONES[key]


class FaultDiagnoser:
    def __init__(
        self,
        taxonomy: dict[str, list[str]] | None = None,
        *,
        backbone: Backbone | None = None,
        explainer: explanation.Generator | None = None,
        **params,
    ) -> None:
        known = {f.name for f in fields(DiagnoserConfig)}
        unknown = set(params) - known
        if unknown:
            raise TypeError(f"unknown FaultDiagnoser options {sorted(unknown)}; known: {sorted(known)}")
        self.config = DiagnoserConfig(**params)
        if not 0 <= self.config.modality_dropout < 1:
            raise ValueError(f"modality_dropout must be in [0, 1), got {self.config.modality_dropout}")
        if not 0 <= self.config.booster_weight <= 1:
            raise ValueError(f"booster_weight must be in [0, 1], got {self.config.booster_weight}")
        self.taxonomy = check_taxonomy(taxonomy or DEFAULT_TAXONOMY)
        self._backbone = backbone
        self.explainer = explainer
        self.measures: list[str] = []
        self.stats: dict[str, NormalStats] = {}
        self.findings: list[str] = sorted(set(IMAGE_FINDINGS.values())) + [NO_VISIBLE_FINDING]
        self.network: FusionNetwork | None = None
        self.image_path: ImagePath | None = None
        self.model_version = ""
        self.history: list[EpochProgress] = []
        #: Temperature scaling (Guo et al. 2017) fitted by :meth:`calibrate` on held-out incidents;
        #: 1.0 until then. Probabilities are ``softmax(logits / temperature)``.
        self.temperature = 1.0
        #: A LoRA adapter of the explanation model (models.diagnosis.explainer_tuning), saved in the
        #: diagnoser's folder: part of this diagnoser version. None: the plain default model.
        self.explainer_adapter: Path | None = None
        #: Trees on the window statistics (models.diagnosis.boosting), fitted with the network when
        #: ``booster_weight`` > 0; None: the network answers alone.
        self.booster: SummaryBooster | None = None
        self._prefix_cache: dict[str, TextPrefix] = {}

    # -- public API ------------------------------------------------------------------------------
    @property
    def backbone(self) -> Backbone:
        if self._backbone is None:
            self._backbone = shared_backbone(self.config)
        return self._backbone

    def classes(self, equipment_type: str) -> list[str]:
        if equipment_type not in self.taxonomy:
            raise ValueError(f"no taxonomy for equipment type {equipment_type!r}; known: {', '.join(self.taxonomy)}")
        return list(self.taxonomy[equipment_type])

    def fit(
        self, incidents: Sequence[Incident], *, booster_incidents: Iterable[Incident] = (),
        on_epoch: Callable[[EpochProgress], None] | None = None,
    ) -> "FaultDiagnoser":
        """Learn the normal statistics, the image encoder and the fusion network from labelled incidents.

        ``booster_incidents``: more labelled incidents for the summary booster only, read one at a
        time (a generator of simulated incidents is never held whole). The trees fit thousands of
        incidents in seconds where the network takes minutes over two thousand, so they can see many
        more faults: a drifting or stuck transmitter on each of a pump's seven sensors, minutes into
        the fault (README, "More faults for the trees")."""
        cfg = self.config
        incidents = list(incidents)
        self._check_labels(incidents)
        torch.set_num_threads(1)  # the shared 2-core machine: more threads ran slower (see models.classification)
        seed_everything(cfg.seed)
        self.measures = _measures(incidents)
        self.stats = self._fit_stats(incidents)
        self.image_path = ImagePath(len(self.findings))
        self._prefix_cache = {}
        prepared = [self._prepare(incident) for incident in incidents]
        self._fit_image_path(incidents, prepared)
        seed_everything(cfg.seed)
        self.network = FusionNetwork(
            self.backbone, n_channels=CHANNELS_PER_MEASURE * len(self.measures), seq_len=cfg.seq_len,
            patch_len=cfg.patch_len, n_classes=len(self._flat_classes()), vision_dim=self.image_path.encoder.feature_dim,
            n_summary=self._n_summary(),
            fusion_dim=cfg.fusion_dim, n_prototypes=cfg.n_prototypes, d_model=cfg.d_model, dropout=cfg.dropout,
            use_llm=cfg.use_llm,
        )
        self._attach_inputs(prepared)
        targets = torch.tensor([self._class_row(i.equipment_type, i.label) for i in incidents])
        rng = np.random.default_rng(cfg.seed)
        history = train_model(
            self.network, torch.arange(len(prepared)), targets,
            loss_fn=nn.CrossEntropyLoss(),  # no label smoothing: it would spread mass onto the masked classes
            config=TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
                               weight_decay=1e-2, seed=cfg.seed),
            forward=lambda network, index: network(self._batch([prepared[i] for i in index.tolist()], rng if network.training else None)),
            on_epoch=on_epoch,
        )
        self.history = history.epochs
        self.booster = self._fit_booster(incidents, prepared, booster_incidents) if cfg.booster_weight > 0 else None
        self._stamp_version()
        return self

    def diagnose(self, incident: Incident, *, explain: bool = True, alarm: bool = False) -> DiagnosisResult:
        """The fault of one incident with its evidence and a checked explanation.

        ``explain=False`` skips the language model: the explanation is then the template sentence
        built from the evidence (``explanation_source="template"``). ``alarm=True`` (the app: every
        diagnosis is of a raised alarm) reports the ``normal`` class as ``no_known_fault`` ("no known
        fault pattern: unknown fault or false alarm"): a detector tripped, so "normal" is never the
        answer, while the probability that none of the known faults fits still is.
        """
        prepared, scores = self._scores([incident])
        classes = self.classes(incident.equipment_type)
        rows = [self._class_row(incident.equipment_type, c) for c in classes]
        probabilities = torch.softmax(torch.from_numpy(scores[0, rows]) / self.temperature, dim=0).numpy()
        if alarm:
            classes = [NO_KNOWN_FAULT if c == NORMAL else c for c in classes]
        best = int(np.argmax(probabilities))
        item = prepared[0]
        evidence = Evidence(
            sensors=self._sensor_evidence(item),
            log_templates=list(item.log_changes) if "logs" in item.modalities else [],
            image=self._image_evidence(item, incident.image_ref),
        )
        fault, probability = classes[best], float(probabilities[best])
        equipment = incident.equipment or incident.equipment_type
        result = DiagnosisResult(
            fault=fault, probability=probability,
            probabilities={c: float(p) for c, p in zip(classes, probabilities, strict=True)},
            modalities=item.modalities, evidence=evidence, model_version=self.model_version,
        )
        if explain:
            result.explanation, result.explanation_source = self.explain(result, equipment=equipment)
        else:
            result.explanation = explanation.template_explanation(fault, probability, equipment, evidence)
            result.explanation_source = "template"
        return result

    def explain(self, result: DiagnosisResult, *, equipment: str = "") -> tuple[str, str]:
        """``(explanation, source)`` for a diagnosis (e.g. a stored one explained later, off the
        alarm's critical path): the language model's summary when it passes the evidence check
        (``"model"``), else the template sentence (``"template"``)."""
        generator = self.explainer
        if generator is None and self.explainer_adapter is not None:
            from models.diagnosis.explainer_tuning import adapter_generator

            generator = adapter_generator(self.explainer_adapter, self.config.max_new_tokens, self.config.explanation_budget_s)
        return explanation.explain(
            fault=result.fault, probability=result.probability, equipment=equipment, evidence=result.evidence,
            generator=generator or explanation.language_model_generator(self.config.max_new_tokens, self.config.explanation_budget_s),
            other_faults=sorted({c for cs in self.taxonomy.values() for c in cs}), all_sensors=self.measures,
        )

    def predict_proba(self, incidents: Sequence[Incident]) -> list[dict[str, float]]:
        """Class probabilities of each incident (its own type's classes), without evidence."""
        results = []
        for start in range(0, len(incidents), 32):
            chunk = list(incidents[start : start + 32])
            _, scores = self._scores(chunk)
            for incident, row in zip(chunk, torch.from_numpy(scores), strict=True):
                classes = self.classes(incident.equipment_type)
                probs = torch.softmax(row[[self._class_row(incident.equipment_type, c) for c in classes]] / self.temperature, dim=0)
                results.append({c: float(p) for c, p in zip(classes, probs, strict=True)})
        return results

    def calibrate(self, incidents: Sequence[Incident]) -> dict[str, float]:
        """Fit the temperature on held-out labelled incidents (never the training ones: a network's
        confidence on what it fitted says nothing about new alarms); returns the top-label expected
        calibration error and the negative log-likelihood before and after."""
        from models.classification import fit_temperature
        from models.metrics.classification import expected_calibration_error

        self._check_fitted()
        incidents = list(incidents)
        self._check_labels(incidents)
        logits = []
        for start in range(0, len(incidents), 32):
            chunk = incidents[start : start + 32]
            logits.append(self._scores(chunk)[1])
        stacked = np.concatenate(logits).astype(np.float64)
        targets = np.array([self._class_row(i.equipment_type, i.label) for i in incidents])

        def scores(temperature: float) -> tuple[float, float]:
            z = stacked / temperature
            z = z - z.max(axis=1, keepdims=True)
            probabilities = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
            nll = float(-np.log(np.clip(probabilities[np.arange(len(targets)), targets], 1e-12, None)).mean())
            flat = [f"{t}:{c}" for t, c in self._flat_classes()]
            truth = [flat[t] for t in targets]
            return expected_calibration_error(truth, probabilities, flat), nll

        ece_before, nll_before = scores(self.temperature)
        self.temperature = float(fit_temperature(stacked, targets))
        ece_after, nll_after = scores(self.temperature)
        self._stamp_version()
        return {"incidents": len(incidents), "temperature": round(self.temperature, 4), "ece_before": round(ece_before, 4),
                "ece_after": round(ece_after, 4), "nll_before": round(nll_before, 4), "nll_after": round(nll_after, 4)}

    def predict(self, incidents: Sequence[Incident]) -> list[str]:
        return [max(p, key=p.get) for p in self.predict_proba(incidents)]

    def embedding(self, incident: Incident) -> np.ndarray:
        """``float32 [fusion_dim]``, unit length: the fused features the head reads (for similar-incident search)."""
        _, features = self._features([incident])
        vector = features[0].numpy().astype(np.float32)
        return vector / max(float(np.linalg.norm(vector)), 1e-12)

    def update(
        self,
        new_incidents: Sequence[Incident],
        *,
        replay: Sequence[Incident] = (),
        epochs: int = 40,
        learning_rate: float = 2e-3,
        distillation: float = 1.0,
        balanced: bool = True,
        train_fusion: bool = True,
        on_epoch: Callable[[EpochProgress], None] | None = None,
    ) -> "FaultDiagnoser":
        """Continual learning from labelled (e.g. engineer-corrected) incidents plus a replay set.

        The head (and with ``train_fusion`` the fusion layer) trains; the trunk, the projector and
        the image encoder stay as fitted, so each incident's pooled features are computed once.
        Three guards against forgetting the old faults: ``replay`` (old labelled incidents mixed
        in), class-balanced loss weights (``balanced``: a burst of one corrected class does not swamp the rest),
        and ``distillation`` (learning without forgetting, Li & Hoiem 2016: the updated model's
        distribution over the old classes is kept close to the model's before the update, weight
        ``distillation``, temperature 2). A label the taxonomy lacks becomes a new class of that
        equipment type.
        """
        self._check_fitted()
        new_incidents, replay = list(new_incidents), list(replay)
        if not new_incidents:
            raise ValueError("update needs at least one new labelled incident")
        old_classes = set(self._flat_classes())
        for incident in new_incidents:
            if incident.label is None:
                raise ValueError("every incident of an update needs a label")
            if incident.equipment_type not in self.taxonomy:
                raise ValueError(f"no taxonomy for equipment type {incident.equipment_type!r}")
            if incident.label not in self.taxonomy[incident.equipment_type]:
                self._add_class(incident.equipment_type, incident.label)
        incidents = new_incidents + replay
        self._check_labels(incidents)
        torch.set_num_threads(1)
        network = self.network
        with torch.no_grad():
            prepared = [self._prepare(i) for i in incidents]
            self._attach_inputs(prepared)
            network.eval()
            batches = [self._batch(prepared[s : s + 32], None) for s in range(0, len(prepared), 32)]
            blocks = torch.cat([network.pooled_blocks(b) for b in batches])
            summaries = torch.cat([b.sensor_summary for b in batches])
            masks = self._class_mask([i.equipment_type for i in incidents])
            teacher = network.logits(network.features(blocks, summaries), masks)  # before any change
        flat = self._flat_classes()
        old_rows = torch.tensor([c in old_classes for c in flat])
        labels = torch.tensor([self._class_row(i.equipment_type, i.label) for i in incidents])
        counts = torch.bincount(labels, minlength=len(flat)).float()
        weights = torch.where(counts > 0, len(labels) / (counts.clamp(min=1) * (counts > 0).sum()), torch.zeros_like(counts))
        present = torch.tensor([[True, "image" in p.modalities, "sensors" in p.modalities] for p in prepared])
        trainable = list(network.head.parameters()) + (list(network.fusion.parameters()) if train_fusion else [])
        frozen = [p for p in network.parameters() if all(p is not t for t in trainable)]
        for parameter in frozen:
            parameter.requires_grad_(False)
        rng = np.random.default_rng(self.config.seed + 1)

        def forward(model: FusionNetwork, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            chosen, summary = blocks[index], summaries[index]
            if model.training and self.config.modality_dropout > 0:
                keep = self._keep_masks(present[index], rng)
                chosen, summary = chosen * keep[:, :, None], summary * keep[:, 2:3]
            return model.logits(model.features(chosen, summary), masks[index]), index

        def loss_fn(output: tuple[torch.Tensor, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
            logits, index = output
            loss = F.cross_entropy(logits, target, weight=weights if balanced else None)
            if distillation > 0:
                kept = masks[index] & old_rows  # the old classes of each incident's type
                student = F.log_softmax(logits.masked_fill(~kept, MASKED_LOGIT) / 2.0, dim=1)
                target_probs = F.softmax(teacher[index].masked_fill(~kept, MASKED_LOGIT) / 2.0, dim=1)
                loss = loss + distillation * 4.0 * F.kl_div(student, target_probs, reduction="batchmean")
            return loss

        try:
            history = train_model(
                network, torch.arange(len(incidents)), labels, loss_fn=loss_fn,
                config=TrainConfig(epochs=epochs, batch_size=self.config.batch_size, learning_rate=learning_rate,
                                   weight_decay=1e-2, seed=self.config.seed + 1),
                forward=forward, on_epoch=on_epoch,
            )
        finally:
            for parameter in frozen:
                parameter.requires_grad_(True)
        self.history = history.epochs
        # The trees were fitted on the original incidents: refit them on what the head learnt from
        # (the corrections and the replay), or leave the answer to the network when that set lacks a class.
        self.booster = self._fit_booster(incidents, prepared) if self._booster_can_learn(incidents) else None
        self._stamp_version()
        return self

    def save(self, path: str | Path) -> Path:
        """A folder with ``config.json`` and ``weights.safetensors`` (never the frozen backbone)."""
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        state = {f"network.{k}": v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}
        state.update({f"image.{k}": v.detach().cpu().contiguous() for k, v in self.image_path.state_dict().items()})
        save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": FORMAT})
        document = {
            "format": FORMAT, "config": asdict(self.config), "taxonomy": self.taxonomy, "measures": self.measures,
            "stats": {t: s.to_dict() for t, s in self.stats.items()}, "findings": self.findings,
            "model_version": self.model_version, "backbone": self.backbone.describe(), "temperature": self.temperature,
        }
        (folder / CONFIG_FILE).write_text(json.dumps(document, indent=1))
        booster_file = folder / BOOSTER_FILE
        if self.booster is not None:
            booster_file.write_text(self.booster.to_string())
        elif booster_file.exists():  # a folder saved over: its old trees are not this diagnoser's
            booster_file.unlink()
        if self.explainer_adapter is not None:
            import shutil

            from models.diagnosis.explainer_tuning import ADAPTER_DIR

            target = folder / ADAPTER_DIR
            if Path(self.explainer_adapter).resolve() != target.resolve():
                shutil.copytree(self.explainer_adapter, target, dirs_exist_ok=True)
        return folder

    @classmethod
    def load(cls, path: str | Path, *, backbone: Backbone | None = None,
             explainer: explanation.Generator | None = None) -> "FaultDiagnoser":
        folder = Path(path)
        document = json.loads((folder / CONFIG_FILE).read_text())
        if document.get("format") != FORMAT:
            raise ValueError(f"{folder} is not a saved FaultDiagnoser (format {document.get('format')!r})")
        # A diagnoser saved before tail_bins (cross_summary, residual_summary) existed has the summary its weights expect.
        diagnoser = cls(document["taxonomy"], backbone=backbone, explainer=explainer,
                        **{"tail_bins": 0, "cross_summary": False, "residual_summary": False, "trend_summary": False,
                           "dynamics_summary": False, "booster_weight": 0.0, **document["config"]})
        diagnoser.measures = list(document["measures"])
        diagnoser.stats = {t: NormalStats.from_dict(s) for t, s in document["stats"].items()}
        diagnoser.findings = list(document["findings"])
        state = load_file(str(folder / WEIGHTS_FILE))
        cfg = diagnoser.config
        diagnoser.image_path = ImagePath(len(diagnoser.findings))
        diagnoser.image_path.load_state_dict({k.removeprefix("image."): v for k, v in state.items() if k.startswith("image.")})
        diagnoser.image_path.eval()
        diagnoser.network = FusionNetwork(
            diagnoser.backbone, n_channels=CHANNELS_PER_MEASURE * len(diagnoser.measures), seq_len=cfg.seq_len,
            patch_len=cfg.patch_len, n_classes=len(diagnoser._flat_classes()),
            vision_dim=diagnoser.image_path.encoder.feature_dim, n_summary=diagnoser._n_summary(), fusion_dim=cfg.fusion_dim,
            n_prototypes=cfg.n_prototypes, d_model=cfg.d_model, dropout=cfg.dropout, use_llm=cfg.use_llm,
        )
        diagnoser.network.load_state_dict({k.removeprefix("network."): v for k, v in state.items() if k.startswith("network.")})
        diagnoser.network.eval()
        if (folder / BOOSTER_FILE).exists():
            try:
                diagnoser.booster = SummaryBooster.from_string((folder / BOOSTER_FILE).read_text(), list(diagnoser.taxonomy),
                                                               len(diagnoser._flat_classes()))
            except (ValueError, UnicodeDecodeError) as exc:
                raise ValueError(f"{folder / BOOSTER_FILE}: {exc}") from exc
        diagnoser.model_version = document.get("model_version", "")
        diagnoser.temperature = float(document.get("temperature", 1.0))
        from models.diagnosis.explainer_tuning import ADAPTER_DIR

        if (folder / ADAPTER_DIR / "adapter_config.json").exists():
            diagnoser.explainer_adapter = folder / ADAPTER_DIR
        return diagnoser

    # -- preparation -----------------------------------------------------------------------------
    def _check_labels(self, incidents: Sequence[Incident]) -> None:
        if not incidents:
            raise ValueError("no incidents to learn from")
        for incident in incidents:
            if incident.equipment_type not in self.taxonomy:
                raise ValueError(f"incident of equipment type {incident.equipment_type!r}, which the taxonomy lacks")
            if incident.label not in self.taxonomy[incident.equipment_type]:
                raise ValueError(f"label {incident.label!r} is not a class of {incident.equipment_type!r}: "
                                 f"{self.taxonomy[incident.equipment_type]}")

    def _check_fitted(self) -> None:
        if self.network is None or self.image_path is None:
            raise RuntimeError("the FaultDiagnoser is not fitted: call fit() or load()")

    def _flat_classes(self) -> list[tuple[str, str]]:
        return [(t, c) for t, classes in self.taxonomy.items() for c in classes]

    def _class_row(self, equipment_type: str, label: str) -> int:
        return self._flat_classes().index((equipment_type, label))

    def _class_mask(self, equipment_types: Sequence[str]) -> torch.Tensor:
        flat = self._flat_classes()
        return torch.tensor([[t == equipment_type for t, _ in flat] for equipment_type in equipment_types])

    def _add_class(self, equipment_type: str, label: str) -> None:
        """Append a class to a type; the head grows one row (old rows keep their weights)."""
        types = list(self.taxonomy)
        row = sum(len(self.taxonomy[t]) for t in types[: types.index(equipment_type) + 1])  # after the type's last class
        self.taxonomy = {t: (cs + [label] if t == equipment_type else cs) for t, cs in self.taxonomy.items()}
        old = self.network.head
        head = nn.Linear(old.in_features, old.out_features + 1)
        with torch.no_grad():
            head.weight[:row], head.bias[:row] = old.weight[:row], old.bias[:row]
            head.weight[row + 1 :], head.bias[row + 1 :] = old.weight[row:], old.bias[row:]
            head.weight[row].normal_(0, 0.01)
            head.bias[row] = old.bias[:row].mean() if row else 0.0  # start near the other classes' prior
        self.network.head = head

    def _fit_stats(self, incidents: Sequence[Incident]) -> dict[str, NormalStats]:
        stats = {}
        for equipment_type in self.taxonomy:
            mine = [i for i in incidents if i.equipment_type == equipment_type and i.sensors is not None and len(i.sensors)]
            normal = [i for i in mine if i.label == NORMAL] or mine
            if normal:
                windows = [bin_window(i.sensors, self.measures, self.config.seq_len) for i in normal]
                fitted = fit_normal_stats(windows)
                if self.config.dynamics_summary:
                    fitted.dynamics, fitted.dynamics_scale = fit_dynamics(windows, fitted) or (None, None)
                stats[equipment_type] = fitted
        return stats

    def _prompt(self, incident: Incident) -> tuple[str, list[LogEvidence], bool]:
        head = f"Equipment: {incident.equipment_type}. Task: find the root cause of the alarm."
        if not incident.logs and not incident.baseline_logs:
            return head, [], False
        window_hours = None
        if incident.sensors is not None and len(incident.sensors) > 1:
            index = incident.sensors.index
            window_hours = max((index.max() - index.min()).total_seconds() / 3600.0, MIN_WINDOW_HOURS)
        ranked = rank_template_changes(incident.logs, incident.baseline_logs, window_hours=window_hours,
                                       change_p=PROMPT_CHANGE_P)
        changes = [change.evidence for change in ranked[:MAX_LOG_CHANGES]]
        return f"{head} {log_prompt_text(changes) or 'Logs vs normal: no change.'}", changes, True

    def _prepare(self, incident: Incident) -> _Prepared:
        cfg = self.config
        prompt, changes, has_logs = self._prompt(incident)
        modalities = []
        item = _Prepared(incident.equipment_type, (), prompt, changes)
        stats = self.stats.get(incident.equipment_type)
        if incident.sensors is not None and len(incident.sensors) > 1 and stats is not None:
            window = bin_window(incident.sensors, self.measures, cfg.seq_len)
            if window.present.any():
                item.z = standardise(window, stats)
                item.present = window.present
                item.residual_tail = residual_tails(incident.residuals, self.measures, cfg.seq_len, max(cfg.tail_bins, 1))
                item.sensors = item.z.reshape(-1, cfg.seq_len).astype(np.float32)
                summary = window_summary(item.z, cfg.tail_bins)
                if cfg.cross_summary:
                    summary = np.concatenate([summary, cross_measure_summary(item.z, item.present, cfg.tail_bins)])
                if cfg.residual_summary:
                    summary = np.concatenate([summary, residual_summary(incident.residuals, self.measures, cfg.seq_len, max(cfg.tail_bins, 1))])
                if cfg.trend_summary:
                    summary = np.concatenate([summary, trend_summary(window, stats)])
                if cfg.dynamics_summary:
                    summary = np.concatenate([summary, dynamics_summary(window, stats)])
                item.summary = summary.astype(np.float32)
                modalities.append("sensors")
        if has_logs:
            modalities.append("logs")
        if incident.image is not None:
            item.pixels = _pixels(incident.image, cfg.image_size)
            modalities.append("image")
        item.modalities = tuple(m for m in MODALITIES if m in modalities)
        return item

    def _text(self, prompt: str) -> TextPrefix:
        cached = self._prefix_cache.get(prompt)
        if cached is None:
            cached = text_prefix(self.backbone, prompt, use_llm=self.config.use_llm)
            if len(self._prefix_cache) >= PREFIX_CACHE_SIZE:  # keys/values are ~0.3 MB a prompt: keep a few
                self._prefix_cache = {}
            self._prefix_cache[prompt] = cached
        return cached

    def _n_summary(self) -> int:
        per_measure = CHANNELS_PER_MEASURE * len(self.measures) * (4 if self.config.tail_bins > 0 else 3)
        return (per_measure + (N_CROSS_SUMMARY if self.config.cross_summary else 0)
                + (residual_summary_size(len(self.measures)) if self.config.residual_summary else 0)
                + (trend_summary_size(len(self.measures)) if self.config.trend_summary else 0)
                + (dynamics_summary_size(len(self.measures)) if self.config.dynamics_summary else 0))

    def _no_log_prompt(self, equipment_type: str) -> str:
        return f"Equipment: {equipment_type}. Task: find the root cause of the alarm."

    def _attach_inputs(self, prepared: Sequence[_Prepared]) -> None:
        """Text prefixes and frozen image tokens, computed once per incident."""
        with torch.no_grad():
            for item in prepared:
                item.prefix = self._text(item.prompt)
                if item.pixels is not None and item.image_tokens is None:
                    item.image_tokens = self.image_path.encoder.tokens(torch.from_numpy(item.pixels)[None])[0]

    def _fit_image_path(self, incidents: Sequence[Incident], prepared: Sequence[_Prepared]) -> None:
        with_image = [(i, p) for i, p in zip(incidents, prepared, strict=True) if p.pixels is not None]
        targets = [self.findings.index(image_finding(i.label if i.label != NORMAL else None)) for i, _ in with_image]
        if len(set(targets)) >= 2:
            pixels = torch.from_numpy(np.stack([p.pixels for _, p in with_image]))
            # Held-out order is irrelevant here (no validation split), so the stacked order is fine.
            train_model(
                self.image_path, pixels, torch.tensor(targets), loss_fn=nn.CrossEntropyLoss(),
                config=TrainConfig(epochs=self.config.image_epochs, batch_size=32, learning_rate=3e-3,
                                   weight_decay=1e-3, seed=self.config.seed),
            )
        self.image_path.eval()
        for parameter in self.image_path.parameters():
            parameter.requires_grad_(False)

    def _keep_masks(self, present: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Modality dropout over ``[B, 3]`` presence (text/logs, image, sensors): drop each present one
        with probability ``modality_dropout``, keeping at least one."""
        keep = present.clone()
        draws = torch.from_numpy(rng.random(tuple(present.shape)) < self.config.modality_dropout)
        for row in range(len(keep)):
            candidates = keep[row].nonzero().flatten().tolist()
            dropped = [c for c in candidates if draws[row, c]]
            if len(dropped) == len(candidates) and candidates:
                dropped.remove(candidates[int(rng.integers(len(candidates)))])
            keep[row, dropped] = False
        return keep.to(torch.float32)

    def _batch(self, items: Sequence[_Prepared], rng: np.random.Generator | None) -> FusionBatch:
        """Collate prepared incidents; with ``rng`` (training) apply modality dropout."""
        cfg = self.config
        present = torch.tensor([["logs" in p.modalities, "image" in p.modalities, "sensors" in p.modalities] for p in items])
        keep = self._keep_masks(present, rng).bool() if rng is not None and cfg.modality_dropout > 0 else present
        channels = CHANNELS_PER_MEASURE * len(self.measures)
        sensors = torch.zeros(len(items), channels, cfg.seq_len)
        summary = torch.zeros(len(items), self._n_summary())
        image_dim = self.image_path.encoder.feature_dim
        n_tokens = self.image_path.encoder.num_tokens
        images = torch.zeros(len(items), n_tokens, image_dim)
        prefixes = []
        for row, item in enumerate(items):
            if keep[row, 2]:
                sensors[row] = torch.from_numpy(item.sensors)
                summary[row] = torch.from_numpy(item.summary)
            if keep[row, 1]:
                images[row] = item.image_tokens
            prefixes.append(item.prefix if keep[row, 0] else self._text(self._no_log_prompt(item.equipment_type)))
        return FusionBatch(
            prefixes=prefixes, sensors=sensors, sensor_present=keep[:, 2], image_tokens=images, image_present=keep[:, 1],
            sensor_summary=summary,
            class_mask=self._class_mask([p.equipment_type for p in items]),
        )

    @torch.no_grad()
    def _features(self, incidents: Sequence[Incident]) -> tuple[list[_Prepared], torch.Tensor]:
        self._check_fitted()
        for incident in incidents:
            self.classes(incident.equipment_type)
        prepared = [self._prepare(i) for i in incidents]
        self._attach_inputs(prepared)
        self.network.eval()
        batch = self._batch(prepared, None)
        return prepared, self.network.features(self.network.pooled_blocks(batch), batch.sensor_summary)

    # -- evidence --------------------------------------------------------------------------------
    def _sensor_evidence(self, item: _Prepared) -> list:
        if item.z is None:
            return []
        return sensor_evidence(item.z, item.present, self.measures, self.stats[item.equipment_type], item.residual_tail)

    @torch.no_grad()
    def _image_evidence(self, item: _Prepared, ref: str | None) -> ImageEvidence | None:
        if item.pixels is None:
            return None
        probabilities = torch.softmax(self.image_path(torch.from_numpy(item.pixels)[None])[0], dim=0)
        best = int(probabilities.argmax())
        return ImageEvidence(ref=ref, label=self.findings[best], probability=float(probabilities[best]))

    def _scores(self, incidents: Sequence[Incident]) -> tuple[list[_Prepared], np.ndarray]:
        """``[N, flat classes]`` scores whose softmax (over an incident's own type's classes, after
        the temperature) is the answer: the network's logits, or with the summary booster
        ``(1 - w) log p_network + w log p_trees`` for incidents with a sensor window (the trees read
        nothing else). Classes of other types are far below the rest."""
        prepared, features = self._features(incidents)
        types = [i.equipment_type for i in incidents]
        masks = self._class_mask(types)
        with torch.no_grad():
            logits = self.network.logits(features, masks)
        weight = self.config.booster_weight
        if self.booster is None or weight <= 0:
            return prepared, logits.numpy().astype(np.float64)
        network = torch.log_softmax(logits, dim=1).numpy().astype(np.float64)
        trees = self.booster.log_probabilities(self._summaries(prepared), types, masks.numpy())
        with_sensors = np.array([p.summary is not None for p in prepared])[:, None]
        combined = np.where(with_sensors, (1 - weight) * network + weight * trees, network)
        return prepared, np.where(masks.numpy(), combined, MASKED_LOGIT)

    def _summaries(self, prepared: Sequence[_Prepared]) -> np.ndarray:
        width = self._n_summary()
        return np.stack([p.summary if p.summary is not None else np.zeros(width, dtype=np.float32) for p in prepared])

    def _fit_booster(self, incidents: Sequence[Incident], prepared: Sequence[_Prepared], more: Iterable[Incident] = ()) -> SummaryBooster:
        """Trees on the summaries of ``incidents`` and of ``more`` (each prepared, its summary kept,
        the incident let go)."""
        rows = [self._class_row(i.equipment_type, i.label) for i in incidents]
        types = [i.equipment_type for i in incidents]
        summaries = [self._summaries(prepared)]
        for incident in more:
            self._check_labels([incident])
            rows.append(self._class_row(incident.equipment_type, incident.label))
            types.append(incident.equipment_type)
            summaries.append(self._summaries([self._prepare(incident)]))
        booster = SummaryBooster(list(self.taxonomy), len(self._flat_classes()))
        return booster.fit(np.concatenate(summaries), types, rows, seed=self.config.seed)

    def _booster_can_learn(self, incidents: Sequence[Incident]) -> bool:
        if self.config.booster_weight <= 0:
            return False
        counts: dict[tuple[str, str], int] = {}
        for incident in incidents:
            if incident.sensors is not None:
                key = (incident.equipment_type, str(incident.label))
                counts[key] = counts.get(key, 0) + 1
        # A type absent from the set gets the same (floor) probability for each of its classes from
        # the trees, which leaves its answer to the network; a type present needs all its classes.
        present = {t for t, _ in counts}
        return bool(present) and all(counts.get((t, c), 0) >= MIN_BOOSTER_PER_CLASS for t, c in self._flat_classes() if t in present)

    def _stamp_version(self) -> None:
        digest = hashlib.sha256()
        for module in (self.network, self.image_path):
            for name, tensor in sorted(module.state_dict().items()):
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().numpy().tobytes())
        if self.booster is not None and self.config.booster_weight > 0:
            digest.update(self.booster.to_string().encode())
            digest.update(np.float64(self.config.booster_weight).tobytes())
        if self.temperature != 1.0:  # a calibrated copy answers other probabilities: another version
            digest.update(np.float64(self.temperature).tobytes())
        self.model_version = f"diagnoser-{digest.hexdigest()[:12]}"


def _measures(incidents: Sequence[Incident]) -> list[str]:
    """Every measure seen in training windows, in order of first appearance (the channel layout)."""
    seen: dict[str, None] = {}
    for incident in incidents:
        if incident.sensors is not None:
            for column in incident.sensors.columns:
                seen.setdefault(str(column), None)
    return list(seen)


def _pixels(image: np.ndarray, size: int) -> np.ndarray:
    """``[1, size, size]`` grey in [0, 1] from uint8 H×W or H×W×3 of any size."""
    array = np.asarray(image)
    if array.ndim == 3:
        array = array[..., :3].mean(axis=-1)
    if array.ndim != 2:
        raise ValueError(f"image must be H×W or H×W×3, got shape {np.asarray(image).shape}")
    scale = 255.0 if array.dtype == np.uint8 or array.max() > 1.0 else 1.0
    tensor = torch.from_numpy(array.astype(np.float32) / scale)[None, None]
    if tensor.shape[-2:] != (size, size):
        tensor = F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return tensor[0].numpy()
