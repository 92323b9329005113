"""Running connector definitions against the database: offsets, statuses, quarantine, and the
supervisor that ``manage.py phm_connectors`` starts."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from connectors.base import ConnectorStatus as LiveStatus
from connectors.base import QuarantinedPayload
from connectors.logs import LogOffset
from connectors.spool import SpoolingSink
from connectors.supervisor import Supervisor
from phm.sources.models import ConnectorDefinition, ConnectorStatus, LogFileOffset, LogMinerState
from phm.sources.registry import ConfigError, build_connector
from phm.telemetry.log_templates import record_lineage
from phm.telemetry.models import QuarantinedRecord, RecordKind
from phm.telemetry.sink import DatabaseSink, close_stale_connection

logger = logging.getLogger(__name__)

KIND_RECORDS = {"logfile": RecordKind.LOG, "image_folder": RecordKind.IMAGE, "file_folder": RecordKind.FILE_ROW}


class DatabaseOffsetStore:
    """``connectors.logs.OffsetStore`` over the LogFileOffset table."""

    def get(self, key: str) -> LogOffset | None:
        close_stale_connection()
        row = LogFileOffset.objects.filter(key=key).first()
        if row is None:
            return None
        return LogOffset(row.inode, row.offset, row.fingerprint, row.fingerprint_len)

    def set(self, key: str, offset: LogOffset) -> None:
        close_stale_connection()
        LogFileOffset.objects.update_or_create(
            key=key,
            defaults={
                "inode": offset.inode,
                "offset": offset.offset,
                "fingerprint": offset.fingerprint,
                "fingerprint_len": offset.fingerprint_len,
            },
        )


class DatabaseMinerStateStore:
    """``connectors.logs.MinerStateStore`` over the LogMinerState table."""

    def get(self, key: str) -> dict | None:
        close_stale_connection()
        row = LogMinerState.objects.filter(key=key).only("state").first()
        return row.state if row is not None else None

    def set(self, key: str, state: dict) -> None:
        close_stale_connection()
        with transaction.atomic():
            LogMinerState.objects.update_or_create(key=key, defaults={"state": state})
            # Readers of LogTemplate (API, admin, pages) see merged and split ids without the state.
            record_lineage(aliases=state.get("aliases") or {}, splits=state.get("splits") or {})


def spool_root() -> Path:
    return Path(os.environ.get("PHM_SPOOL_DIR", Path(settings.DATA_ROOT) / "spool"))


def quarantine_writer(definition: ConnectorDefinition):
    """Store what a connector quarantined (malformed payloads) next to ingestion's rejects."""
    kind = KIND_RECORDS.get(definition.kind, RecordKind.READING)
    channel = f"{definition.kind}:{definition.name}"

    def write(item: QuarantinedPayload) -> None:
        try:
            close_stale_connection()
            QuarantinedRecord.objects.create(
                kind=kind, channel=channel[:200], payload={"origin": item.origin, "payload": item.payload}, error=item.reason
            )
        except Exception:  # the database may be the thing that is down: the log line remains
            logger.exception("could not store a quarantined payload of %s", definition.name)

    return write


def build_supervisor(definitions: Iterable[ConnectorDefinition], *, tick_seconds: float = 2.0) -> tuple[Supervisor, dict]:
    """Connectors for ``definitions``, each writing through its own SpoolingSink over the
    DatabaseSink, under one Supervisor whose tick stores statuses and replays spools."""
    connectors = []
    spools: dict[str, SpoolingSink] = {}
    by_name: dict[str, ConnectorDefinition] = {}
    offsets = DatabaseOffsetStore()
    miner_states = DatabaseMinerStateStore()
    for definition in definitions:
        spool = SpoolingSink(DatabaseSink(channel=f"{definition.kind}:{definition.name}"), spool_root() / definition.name)
        try:
            # Checked again here, not only on save: the roots may have shrunk, or the definition
            # may predate them (or have been written to the database directly).
            connector = build_connector(
                name=definition.name,
                kind=definition.kind,
                config=definition.config,
                sink=spool,
                offsets=offsets,
                on_quarantine=quarantine_writer(definition),
                miner_states=miner_states,
            )
        except ConfigError as exc:
            record_refused(definition, str(exc))
            continue
        spools[definition.name] = spool
        by_name[definition.name] = definition
        connectors.append(connector)

    def on_tick(statuses: list[LiveStatus]) -> None:
        for spool in spools.values():
            if spool.pending:
                spool.replay()
        record_statuses(statuses, by_name, spools)

    return Supervisor(connectors, tick_seconds=tick_seconds, on_tick=on_tick), spools


def record_refused(definition: ConnectorDefinition, reason: str) -> None:
    """A definition the supervisor will not run: its status says why."""
    logger.warning("connector %s not started: %s", definition.name, reason)
    close_stale_connection()
    ConnectorStatus.objects.update_or_create(
        connector=definition,
        defaults={"state": "refused", "connected": False, "last_error": reason, "last_error_at": timezone.now(), "supervisor_pid": os.getpid()},
    )


def record_statuses(statuses: Iterable[LiveStatus], definitions: dict[str, ConnectorDefinition], spools: dict[str, SpoolingSink]) -> None:
    try:
        close_stale_connection()
        with transaction.atomic():
            for status in statuses:
                definition = definitions[status.name]
                spool = spools.get(status.name)
                extra = dict(status.extra)
                if spool is not None and spool.last_error:
                    extra["spool_last_error"] = spool.last_error
                ConnectorStatus.objects.update_or_create(
                    connector=definition,
                    defaults={
                        "state": status.state,
                        "connected": status.connected,
                        "started_at": status.started_at,
                        "last_message_at": status.last_message_at,
                        "messages": status.messages,
                        "accepted": status.accepted,
                        "duplicate": status.duplicate,
                        "rejected": status.rejected,
                        "reconnects": status.reconnects,
                        "last_error": status.last_error or "",
                        "last_error_at": status.last_error_at,
                        "extra": extra,
                        "spooled_batches": spool.pending_batches() if spool is not None and spool.pending else 0,
                        "supervisor_pid": os.getpid(),
                    },
                )
    except Exception as exc:  # database down: statuses are written again on the next tick
        logger.warning("could not store connector statuses: %s: %s", type(exc).__name__, exc)
