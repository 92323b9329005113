"""The ground truth a backtest is scored against: the recorded ``FaultInjection`` rows (simulated or
staged faults), the plant's corrective work orders, or both.

A corrective work order is a known fault when it names the fault found (``fault``, in the
diagnoser's vocabulary) and when it began (``fault_start``). Its period runs from ``fault_start``
to the functional failure (``failed_at``) where one is recorded (an alarm after the failure
predicted nothing), else to the opening of the work order (``opened_at``: the fault was found and
dealt with then). A corrective work order in the range without them is left out with the reason,
and the report lists it, so a work order never disappears from the scoring without a word.
Preventive, predictive and inspection work orders are no failures and are not read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import models

from phm.assets.models import Equipment, WorkOrder, WorkOrderKind
from phm.backtests.models import GroundTruth
from phm.backtests.report import KnownFault
from phm.telemetry.models import FaultInjection


@dataclass(frozen=True)
class SkippedWorkOrder:
    number: str
    equipment: str
    reason: str


@dataclass
class Truth:
    faults: list[KnownFault]
    skipped: list[SkippedWorkOrder]
    work_orders_used: int = 0


def work_order_period(order: WorkOrder) -> tuple[datetime, datetime] | str:
    """The fault period of a corrective work order, or why it has none."""
    if order.kind != WorkOrderKind.CORRECTIVE:
        return f"a {order.kind} work order, not corrective"
    if not order.fault:
        return "names no fault found"
    if order.fault_start is None:
        return "has no fault_start (when the fault began is unknown)"
    end = order.failed_at or order.opened_at
    if end <= order.fault_start:
        which = "failed_at" if order.failed_at else "opened_at"
        return f"{which} {end.isoformat()} is not after fault_start {order.fault_start.isoformat()}"
    return order.fault_start, end


def known_faults(*, ground_truth: str, equipment: Iterable[Equipment | int], start: datetime, end: datetime) -> Truth:
    """The known faults of ``equipment`` overlapping [start, end) from the chosen source(s)."""
    if ground_truth not in GroundTruth.values:
        raise ValueError(f"ground_truth must be one of {', '.join(GroundTruth.values)}, got {ground_truth!r}")
    ids = {e.pk if isinstance(e, Equipment) else int(e) for e in equipment}
    truth = Truth(faults=[], skipped=[])
    if ground_truth in (GroundTruth.INJECTIONS, GroundTruth.BOTH):
        rows = FaultInjection.objects.select_related("equipment").filter(equipment__in=ids, start__lt=end, end__gt=start)
        truth.faults += [KnownFault(f.pk, f.equipment.tag, f.fault, f.start, f.end, f.severity) for f in rows]
    if ground_truth in (GroundTruth.WORK_ORDERS, GroundTruth.BOTH):
        # A work order opened after the range may still describe a fault that began inside it.
        orders = WorkOrder.objects.select_related("equipment").filter(equipment__in=ids, kind=WorkOrderKind.CORRECTIVE).filter(
            models.Q(fault_start__lt=end) | models.Q(fault_start__isnull=True, opened_at__gte=start, opened_at__lt=end)
        )
        for order in orders.order_by("opened_at", "pk"):
            period = work_order_period(order)
            if isinstance(period, str):
                truth.skipped.append(SkippedWorkOrder(order.number, order.equipment.tag, period))
                continue
            fault_start, fault_end = period
            if fault_end <= start:
                continue  # over before the range: not part of this backtest
            truth.faults.append(KnownFault(order.pk, order.equipment.tag, order.fault, fault_start, fault_end, None,
                                           source="work_order", reference=order.number))
            truth.work_orders_used += 1
    truth.faults.sort(key=lambda f: (f.start, f.equipment))
    return truth
