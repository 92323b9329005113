"""``python manage.py phm_diagnose``: train the diagnoser, inject a demo fault and print the stored
diagnosis, or diagnose an alarm again.

    phm_diagnose --train-demo                       train the demo diagnoser (simulated incidents) and activate it
    phm_diagnose --train-demo --force               ... even when a diagnoser is active already
    phm_diagnose --register var/diagnosers/v1       a saved FaultDiagnoser folder (trained elsewhere) as the active version
    phm_diagnose --retrain                          update the active diagnoser from engineer feedback (replay set kept)
    phm_diagnose --inject bearing_wear --equipment P-101 [--minutes 60] [--json]
                                                    live simulator running: inject now and wait for the alarm's diagnosis;
                                                    otherwise: play the fault into the database (a unit's second fault
                                                    goes just before its first), raise an alarm, diagnose it in this
                                                    process and write its explanation
    phm_diagnose --alarm 42                         diagnose alarm 42 again (trigger 'manual') and print it
    phm_diagnose --show 7                           print stored diagnosis 7
    phm_diagnose --history 42                       print every stored diagnosis of alarm 42 (raise, follow-ups, escalations)
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from connectors.simulator import FAULT_KINDS
from phm.analytics import diagnoser_training, diagnosis, diagnosis_demo
from phm.analytics.models import DiagnoserJobKind, Diagnosis, DiagnosisTrigger
from phm.assets.models import Equipment


class Command(BaseCommand):
    help = "Train the root-cause diagnoser, inject a demo fault and print its stored diagnosis, or diagnose an alarm again."

    def add_arguments(self, parser):
        parser.add_argument("--train-demo", action="store_true", help="Train the demo diagnoser from simulated incidents.")
        parser.add_argument("--force", action="store_true", help="--train-demo: train even when a diagnoser is active.")
        parser.add_argument("--register", type=Path, help="A saved FaultDiagnoser folder to register as the active version.")
        parser.add_argument("--retrain", action="store_true", help="Update the active diagnoser from unused engineer feedback.")
        parser.add_argument("--inject", choices=FAULT_KINDS, help="Demo fault to inject, e.g. bearing_wear.")
        parser.add_argument("--equipment", help="Equipment tag for --inject, e.g. P-101.")
        parser.add_argument("--minutes", type=float, default=60.0, help="How long the fault has been developing when the alarm is raised (offline mode).")
        parser.add_argument("--severity", type=float, default=1.0)
        parser.add_argument("--timeout", type=float, default=600.0, help="Live mode: seconds to wait for the alarm and its diagnosis.")
        parser.add_argument("--alarm", type=int, help="Diagnose this alarm again, in this process.")
        parser.add_argument("--show", type=int, help="Print this stored diagnosis.")
        parser.add_argument("--history", type=int, help="Print every stored diagnosis of this alarm, oldest first.")
        parser.add_argument("--json", action="store_true", help="Print the stored result as JSON instead of a summary.")

    def handle(self, *args, **options):
        if options["train_demo"] and not options["force"] and (version := diagnosis.active_version()) is not None:
            self.stdout.write(f"diagnoser v{version.version} is active already ({version.get_source_display()}); --force trains a new one")
            return None
        if options["train_demo"] or options["retrain"]:
            kind = DiagnoserJobKind.DEMO if options["train_demo"] else DiagnoserJobKind.RETRAIN
            return self._train(kind)
        if options["register"]:
            try:
                version = diagnoser_training.register_folder(folder=options["register"])
            except diagnoser_training.DiagnoserTrainingError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"diagnoser v{version.version} active, registered from {options['register']} ({version.backbone})")
            return None
        if options["inject"]:
            return self._print(self._inject(options), options["json"])
        if options["alarm"]:
            stored = diagnosis.run_diagnosis(alarm_id=options["alarm"], trigger=DiagnosisTrigger.MANUAL)
            return self._print(stored, options["json"])
        if options["history"]:
            rows = list(Diagnosis.objects.filter(alarm_id=options["history"]).order_by("pk"))
            if not rows:
                raise CommandError(f"no diagnosis of alarm {options['history']}")
            for row in rows:
                self._print(row, options["json"])
            return None
        if options["show"]:
            return self._print(Diagnosis.objects.filter(pk=options["show"]).first() or self._missing(options["show"]), options["json"])
        raise CommandError("give --train-demo, --register FOLDER, --retrain, --inject FAULT --equipment TAG, --alarm ID or --show ID")

    def _missing(self, pk: int):
        raise CommandError(f"no diagnosis {pk}")

    def _train(self, kind: str) -> None:
        try:
            job = diagnoser_training.start_job(kind=kind, enqueue=False)
        except diagnoser_training.DiagnoserTrainingError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"diagnoser {kind} job {job.pk}: training (this process)...")
        job = diagnoser_training.run_job(job_id=job.pk)
        if job.result is None:
            raise CommandError(f"diagnoser job {job.pk} failed: {job.error}")
        version = job.result
        self.stdout.write(f"diagnoser v{version.version} active ({version.get_source_display()}); trained on {json.dumps(version.trained_on)}; "
                          f"metrics {json.dumps(version.metrics)}")

    def _inject(self, options) -> Diagnosis:
        tag = options["equipment"]
        if not tag:
            raise CommandError("--inject needs --equipment (e.g. P-101)")
        equipment = Equipment.objects.filter(tag=tag).first()
        if equipment is None:
            raise CommandError(f"no equipment {tag!r}: run `python manage.py phm_demo` first")
        if diagnosis.active_version() is None:
            raise CommandError("no diagnoser is trained yet: run `python manage.py phm_diagnose --train-demo` first")
        try:
            if diagnosis_demo.is_live(equipment):
                return self._inject_live(equipment, options)
            config = diagnosis.DiagnosisConfig.from_env()
            # Enough history for the diagnosis window and a healthy log baseline before the fault.
            history = max(options["minutes"], config.window_s / 60) + config.baseline_s / 60
            end = diagnosis_demo.free_slot_end(equipment, history=timedelta(minutes=history), latest=timezone.now().replace(microsecond=0))
            injection = diagnosis_demo.play_fault(equipment_tag=tag, fault=options["inject"], end=end,
                                                  fault_minutes=options["minutes"], history_minutes=history, severity=options["severity"])
        except diagnosis_demo.DemoError as exc:
            raise CommandError(str(exc)) from None
        diagnosis.warm_up()  # models and the knowledge index loaded first, as in a running worker: the latency printed is a worker's
        alarm = diagnosis_demo.raise_alarm(injection=injection)
        self.stdout.write(f"played {injection.fault} on {tag} {injection.start:%H:%M:%S}-{injection.end:%H:%M:%S} UTC; alarm {alarm.pk} raised; diagnosing...")
        stored = diagnosis.run_diagnosis(alarm_id=alarm.pk)
        if stored is None:  # a worker took the task first: wait for its result
            stored = diagnosis_demo.wait_for_diagnosis(equipment=equipment, since=alarm.raised_at, timeout_s=options["timeout"])
        if stored is None:
            raise CommandError(f"alarm {alarm.pk}: no diagnosis stored within {options['timeout']:g} s")
        if config.explain == "after" and stored.status == "done":
            self.stdout.write(f"diagnosis {stored.pk} stored after {stored.latency_ms:.0f} ms; writing the explanation...")
            stored = diagnosis.explain_stored(diagnosis_id=stored.pk) or stored  # a worker may have done it already
        return stored

    def _inject_live(self, equipment: Equipment, options) -> Diagnosis:
        injection = diagnosis_demo.inject_live(equipment_tag=equipment.tag, fault=options["inject"], minutes=max(options["minutes"], 30), severity=options["severity"])
        self.stdout.write(f"live simulator: injected {injection.fault} on {equipment.tag} from {injection.start:%H:%M:%S} UTC; "
                          f"waiting up to {options['timeout']:g} s for the detector's alarm and its diagnosis...")
        stored = diagnosis_demo.wait_for_diagnosis(equipment=equipment, since=injection.start - timedelta(seconds=5), timeout_s=options["timeout"])
        if stored is None:
            raise CommandError(f"no diagnosis of an alarm on {equipment.tag} within {options['timeout']:g} s (is the Celery worker running?)")
        return stored

    def _print(self, stored: Diagnosis | None, as_json: bool) -> None:
        if stored is None:
            raise CommandError("that alarm's diagnosis is being stored by another worker")
        stored.refresh_from_db()
        if as_json:
            self.stdout.write(json.dumps({"id": stored.pk, "alarm": stored.alarm_id, "equipment": stored.equipment.tag, "status": stored.status,
                                          "latency_ms": stored.latency_ms, "error": stored.error, "result": stored.result}, indent=2, default=str))
            return
        self.stdout.write(summary(stored))


def summary(stored: Diagnosis) -> str:
    """The stored diagnosis as a few lines for a terminal (and for pasting into a report)."""
    head = f"diagnosis {stored.pk} of alarm {stored.alarm_id} on {stored.equipment.tag}: {stored.status}"
    if stored.status != "done":
        return f"{head}: {stored.error}"
    result = stored.result
    evidence = result.get("evidence", {})
    explained = f", explanation after {stored.explanation_ms:.0f} ms" if stored.explanation_ms is not None else ""
    stage = f" {stored.stage}" if stored.stage else ""
    until = f", evidence until {stored.window_end:%H:%M:%S} UTC" if stored.window_end else ""
    lines = [f"{head}; fault {stored.fault} p={stored.probability:.3f}; model {result.get('model_version')}; latency {stored.latency_ms:.0f} ms "
             f"(trigger -> stored){explained}; inputs {', '.join(result.get('modalities', []))}; {stored.trigger}{stage}{until}"
             f"{'; announced' if stored.announced else '; not announced (fault and band unchanged)'}"]
    top = sorted(result.get("probabilities", {}).items(), key=lambda kv: -kv[1])[:4]
    lines.append("  probabilities: " + ", ".join(f"{k} {v:.3f}" for k, v in top))
    lines.append(f"  explanation ({result.get('explanation_source') or '-'}): {result.get('explanation', '')}")
    lines.append("  sensors: " + ", ".join(f"{s['sensor']} {100 * s['share']:.0f}% {s['direction']}" for s in evidence.get("sensors", [])))
    for t in evidence.get("log_templates", [])[:5]:
        lines.append(f"  log: {t['template']!r} x{t['count']} ({t['window_per_hour']:.1f}/h vs baseline {t['baseline_per_hour']:.1f}/h, {t['level']})")
    if image := evidence.get("image"):
        lines.append(f"  image {image['ref']}: {image['label']} p={image['probability']:.2f}")
    for case in evidence.get("similar", []):
        lines.append(f"  similar {case['kind']} {case['ref']}: {case['fault'] or '-'} sim={case['similarity']:.2f} {case['summary'][:120]}")
    for action in result.get("actions", []):
        cites = "; ".join(f"{c['document']} ({c['locator']}, chunk {c['chunk_id']})" for c in action.get("citations", []))
        lines.append(f"  action: {action['text']} [{cites}]")
    return "\n".join(lines)
