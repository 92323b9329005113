"""The backtest report as text lines (the command and the trial print them)."""

from __future__ import annotations


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1f} %"


def _minutes(seconds) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.3f}"


GROUND_TRUTH = {"injections": "recorded fault injections", "work_orders": "corrective work orders", "both": "fault injections and corrective work orders"}


def _work_orders(report: dict) -> str:
    orders = report.get("work_orders")
    if not orders:
        return ""
    skipped = "; ".join(f"{s['number']} ({s['equipment']}) {s['reason']}" for s in orders["skipped"][:10])
    more = f" and {len(orders['skipped']) - 10} more" if len(orders["skipped"]) > 10 else ""
    used = f"{orders['used']} work order{'' if orders['used'] == 1 else 's'} used"
    return f" ({used}, {len(orders['skipped'])} left out{': ' + skipped + more if skipped else ''})"


def report_lines(report: dict) -> list[str]:
    detection = report["detection"]
    false_alarms = report["false_alarms"]
    lines = [
        f"range {report['range']['start']} .. {report['range']['end']} ({report['range']['days']:.2f} days), equipment {', '.join(report['equipment'])}",
        f"ground truth: {GROUND_TRUTH.get(report.get('ground_truth', 'injections'), report.get('ground_truth'))}{_work_orders(report)}",
        f"faults detected before they end: {detection['detected']}/{detection['faults']} ({_pct(detection['detected_pct'])}); "
        f"severity >= 0.5: {detection['severity_ge_0_5']['detected']}/{detection['severity_ge_0_5']['faults']} ({_pct(detection['severity_ge_0_5']['detected_pct'])})"
        + (f"; {detection['running_at_end']} still running at the end and not alarmed yet (not scored)" if detection.get("running_at_end") else ""),
        f"{'fault kind':<20} {'faults':>6} {'detected':>9} {'median delay':>13} {'p90 delay':>10}",
    ]
    for kind, row in detection["by_kind"].items():
        lines.append(f"{kind:<20} {row['faults']:>6} {_pct(row['detected_pct']):>9} {_minutes(row['median_delay_s']):>13} {_minutes(row['p90_delay_s']):>10}")
    lines.append(
        f"false alarms: {false_alarms['count']} over {false_alarms['equipment_days']:.2f} equipment-days outside faults = "
        f"{_ratio(false_alarms['per_equipment_day'])} per equipment-day {false_alarms['by_equipment'] or ''}"
    )
    diagnosis = report.get("diagnosis", {})
    for offset, row in diagnosis.get("by_offset_s", {}).items():
        lines.append(
            f"diagnosis at raise + {int(float(offset)) // 60} min: top-1 {row['correct']}/{row['of_fault_alarms']} ({_pct(None if row['top1_accuracy'] is None else 100 * row['top1_accuracy'])}), "
            f"uncertain {row['uncertain']}/{row['diagnoses']} ({_pct(None if row['uncertain_rate'] is None else 100 * row['uncertain_rate'])})"
        )
    timing = diagnosis.get("raise_to_diagnosis_ms")
    if timing and timing.get("p50") is not None:
        lines.append(f"raise -> diagnosis: p50 {timing['p50']:.0f} ms, p95 {timing['p95']:.0f} ms ({timing['note']})")
    return lines
