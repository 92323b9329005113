"""Log files: follow a file across rotation with a stored offset, parse timestamp and level,
mine templates with Drain3.

Offsets: after every delivered batch the follower stores ``(inode, offset, fingerprint)`` for
the path in an :class:`OffsetStore` (a JSON file here; the database in the app). On restart it
continues at that offset; if the file was rotated meanwhile it first finishes the rotated file
(found by inode next to the path, e.g. ``app.log.1``) and then reads the new one from the start,
so no line is missed; a line is never read twice unless the process dies between a delivery and
the offset write (then that one batch repeats: at-least-once). The fingerprint (a hash of the
file's first bytes) tells a reused inode from the same file. Copy-truncate rotation is seen as
the file getting shorter than the offset.

Templates: Drain3 with masking of IPs, paths, UUIDs, hex ids, block ids and numbers; each
:class:`LogRecord` gets the cluster id as ``template_id`` and the masked values as ``parameters``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from drain3 import TemplateMiner
from drain3.file_persistence import FilePersistence
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

from connectors.base import Connector
from connectors.paths import PathNotAllowed, confine
from connectors.records import LogRecord
from connectors.sink import Sink

FINGERPRINT_BYTES = 256

# ------------------------------------------------------------------------------------------------
# Offsets


@dataclass(frozen=True)
class LogOffset:
    inode: int
    offset: int
    fingerprint: str = ""  # sha1 of the first min(size, FINGERPRINT_BYTES) bytes
    fingerprint_len: int = 0


class OffsetStore(Protocol):
    def get(self, key: str) -> LogOffset | None: ...

    def set(self, key: str, offset: LogOffset) -> None: ...


class JsonOffsetStore:
    """Offsets in one JSON file, replaced atomically on every write (write temp + rename)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def _load(self) -> dict:
        if not self.path.exists():
            return {}
        try:
            return json.loads(self.path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"offset store {self.path} is not valid JSON: {exc}") from exc

    def get(self, key: str) -> LogOffset | None:
        with self._lock:
            item = self._load().get(key)
        return LogOffset(**item) if item else None

    def set(self, key: str, offset: LogOffset) -> None:
        with self._lock:
            data = self._load()
            data[key] = asdict(offset)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(self.path.suffix + ".tmp")
            tmp.write_text(json.dumps(data, indent=1))
            os.replace(tmp, self.path)


class MemoryOffsetStore:
    def __init__(self) -> None:
        self.offsets: dict[str, LogOffset] = {}

    def get(self, key: str) -> LogOffset | None:
        return self.offsets.get(key)

    def set(self, key: str, offset: LogOffset) -> None:
        self.offsets[key] = offset


def fingerprint(path: Path, length: int = FINGERPRINT_BYTES) -> tuple[str, int]:
    with path.open("rb") as handle:
        head = handle.read(length)
    return hashlib.sha1(head).hexdigest(), len(head)


# ------------------------------------------------------------------------------------------------
# Parsing


DEFAULT_PATTERN = (
    r"^(?P<ts>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)"
    r"\s+\[?(?P<level>[A-Za-z]+)\]?\s+(?P<message>.*)$"
)
LEVEL_ALIASES = {
    "WARN": "WARNING",
    "ERR": "ERROR",
    "FATAL": "CRITICAL",
    "CRIT": "CRITICAL",
    "SEVERE": "ERROR",
    "EMERG": "CRITICAL",
    "ALERT": "CRITICAL",
    "NOTICE": "INFO",
    "TRACE": "DEBUG",
    "FINE": "DEBUG",
    "E": "ERROR",
    "W": "WARNING",
    "I": "INFO",
    "D": "DEBUG",
}


class LineProblem(ValueError):
    """A log line that cannot become a record; the text says why."""


@dataclass(frozen=True)
class LogLineFormat:
    """How to read one line: a regex with named groups ``ts``, ``level``, ``message`` (and
    optionally ``source``); ``ts_format`` a strftime pattern (None = ISO 8601, comma decimals
    allowed); ``timezone`` for timestamps without an offset; ``level_map`` extra level names."""

    pattern: str = DEFAULT_PATTERN
    ts_format: str | None = None
    timezone: str = "UTC"
    level_map: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        compiled = re.compile(self.pattern)
        missing = {"ts", "level", "message"} - set(compiled.groupindex)
        if missing:
            raise ValueError(f"log pattern lacks named groups {sorted(missing)}: {self.pattern}")
        ZoneInfo(self.timezone)

    @classmethod
    def from_dict(cls, config: Mapping) -> LogLineFormat:
        return cls(**config)


class LogLineParser:
    def __init__(self, fmt: LogLineFormat, default_source: str):
        self.fmt = fmt
        self.regex = re.compile(fmt.pattern)
        self.zone = ZoneInfo(fmt.timezone)
        self.default_source = default_source
        self.level_map = {k.upper(): v.upper() for k, v in fmt.level_map.items()}

    def parse(self, line: str) -> tuple[str, datetime, str, str]:
        """(source, ts, level, message) or LineProblem."""
        match = self.regex.match(line)
        if match is None:
            raise LineProblem("line does not match the log pattern")
        ts = self._timestamp(match.group("ts"))
        level = self.normalise_level(match.group("level"))
        source = match.groupdict().get("source") or self.default_source
        return source, ts, level, match.group("message")

    def normalise_level(self, level: str) -> str:
        upper = level.strip().upper()
        return self.level_map.get(upper) or LEVEL_ALIASES.get(upper, upper)

    def _timestamp(self, text: str) -> datetime:
        try:
            if self.fmt.ts_format:
                ts = datetime.strptime(text, self.fmt.ts_format)
            else:
                ts = datetime.fromisoformat(text.replace(",", ".", 1))
        except ValueError as exc:
            raise LineProblem(f"timestamp {text!r}: {exc}") from exc
        return ts if ts.tzinfo else ts.replace(tzinfo=self.zone)


# ------------------------------------------------------------------------------------------------
# Templates


# Order matters: the most specific patterns first, so an IP is not eaten as numbers.
DEFAULT_MASKS: tuple[tuple[str, str], ...] = (
    (r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b", "UUID"),
    (r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?(?![\w.])", "IP"),
    (r"\bblk_-?\d+\b", "BLOCK"),
    (r"(?<![\w/])(?:/[\w.\-]+){2,}/?", "PATH"),
    (r"\b0x[0-9a-fA-F]+\b", "HEX"),
    (r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b", "ID"),
    (r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w.])", "NUM"),
)


@dataclass(frozen=True)
class MinerSettings:
    sim_th: float = 0.4
    depth: int = 4
    max_clusters: int | None = None
    masks: Sequence[tuple[str, str]] = DEFAULT_MASKS
    extra_delimiters: Sequence[str] = ()
    state_path: str | None = None  # keep clusters (and so template ids) across restarts

    @classmethod
    def from_dict(cls, config: Mapping) -> MinerSettings:
        values = dict(config)
        if "masks" in values:
            values["masks"] = tuple(tuple(item) for item in values["masks"])
        return cls(**values)


def make_template_miner(settings: MinerSettings = MinerSettings()) -> TemplateMiner:
    config = TemplateMinerConfig()
    config.drain_sim_th = settings.sim_th
    config.drain_depth = settings.depth
    config.drain_max_clusters = settings.max_clusters
    config.drain_extra_delimiters = list(settings.extra_delimiters)
    config.masking_instructions = [MaskingInstruction(pattern, name) for pattern, name in settings.masks]
    config.profiling_enabled = False
    persistence = FilePersistence(settings.state_path) if settings.state_path else None
    return TemplateMiner(persistence_handler=persistence, config=config)


class TemplateTagger:
    """Adds ``template_id`` and ``parameters`` to messages with one shared Drain3 miner."""

    def __init__(self, miner: TemplateMiner):
        self.miner = miner
        self._lock = threading.Lock()

    def tag(self, message: str) -> tuple[str, list[str]]:
        with self._lock:
            result = self.miner.add_log_message(message)
            template = result["template_mined"]
            params = self.miner.extract_parameters(template, message, exact_matching=False) or []
        return str(result["cluster_id"]), [p.value for p in params]


# ------------------------------------------------------------------------------------------------
# Following


class LogFileFollower(Connector):
    """Tail one log file into LogRecords, resuming from the offset store."""

    kind = "logfile"

    def __init__(
        self,
        name: str,
        sink: Sink,
        *,
        path: str | Path,
        offsets: OffsetStore,
        source: str | None = None,
        line_format: LogLineFormat = LogLineFormat(),
        tagger: TemplateTagger | None = None,
        poll_interval_s: float = 0.5,
        batch_lines: int = 5000,
        roots: Sequence[str | Path] | None = None,
        **kwargs,
    ):
        super().__init__(name, sink, **kwargs)
        self.path = Path(path)
        # Checked again on every open, not only when the definition was saved: the file may have
        # been replaced by a symlink to somewhere else since.
        self.roots = tuple(roots) if roots is not None else None
        self.key = str(self.path.resolve())
        self.offsets = offsets
        self.parser = LogLineParser(line_format, source or self.path.stem)
        self.tagger = tagger if tagger is not None else TemplateTagger(make_template_miner())
        self.poll_interval_s = poll_interval_s
        self.batch_lines = batch_lines
        self._handle = None
        self._inode: int | None = None
        self.lines_read = 0

    def run(self, stop: threading.Event) -> None:
        self.set_state("running", connected=True)
        try:
            while not stop.is_set():
                try:
                    self.read_available()
                except (OSError, PathNotAllowed) as exc:  # file briefly missing during rotation, permissions, confinement ...
                    self.note_error(exc)
                    self._close()
                stop.wait(self.poll_interval_s)
        finally:
            self._close()
            self.set_state("stopped", connected=False)

    def read_available(self) -> int:
        """Read all complete lines available now (across a rotation); returns lines read."""
        total = 0
        if self._handle is None and not self._open():
            return 0
        while True:
            total += self._drain_handle()
            rotated = self._current_file_replaced()
            if not rotated:
                return total
            # The old file was renamed away and is drained; continue with the new one.
            self._close()
            if not self._open(fresh=True):
                return total

    def _open(self, fresh: bool = False) -> bool:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return False
        stored = None if fresh else self.offsets.get(self.key)
        if stored is not None and stored.inode != stat.st_ino:
            # Rotated while we were not running: finish the old file first, if it is still around.
            old = self._find_by_inode(stored.inode)
            if old is not None:
                self._follow(old, stored.offset)
                self._drain_handle()
                self._close()
            else:
                self.note_error(f"{self.path}: the file read before (inode {stored.inode}) is gone; its unread tail is lost")
            stored = None
        offset = 0
        if stored is not None:
            same_file = stored.fingerprint_len == 0 or fingerprint(self.path, stored.fingerprint_len)[0] == stored.fingerprint
            if same_file and stored.offset <= stat.st_size:
                offset = stored.offset
            else:
                self.note_error(f"{self.path}: truncated or replaced since offset {stored.offset}; reading from the start")
        self._follow(self.path, offset)
        return True

    def _follow(self, path: Path, offset: int) -> None:
        if self.roots is not None:
            confine(path, self.roots, field="path")
        self._handle = path.open("rb")
        self._inode = os.fstat(self._handle.fileno()).st_ino
        self._handle.seek(offset)

    def _find_by_inode(self, inode: int) -> Path | None:
        for candidate in sorted(self.path.parent.glob(self.path.name + "*")):
            try:
                if candidate.stat().st_ino == inode:
                    return candidate
            except FileNotFoundError:
                continue
        return None

    def _current_file_replaced(self) -> bool:
        try:
            return self.path.stat().st_ino != self._inode
        except FileNotFoundError:
            return False  # renamed, new one not created yet: keep the old handle for now

    def _drain_handle(self) -> int:
        """Read complete lines from the open handle in batches, deliver, store the offset."""
        handle = self._handle
        total = 0
        if os.fstat(handle.fileno()).st_size < handle.tell():
            self.note_error(f"{self.path}: file shrank (copy-truncate rotation); reading from the start")
            handle.seek(0)
        while True:
            start = handle.tell()
            lines: list[tuple[int, bytes]] = []
            position = start
            while len(lines) < self.batch_lines:
                line = handle.readline()
                if not line:
                    break
                if not line.endswith(b"\n"):
                    handle.seek(position)  # a line still being written: take it next time
                    break
                lines.append((position, line))
                position = handle.tell()
            if not lines:
                return total
            self._deliver(lines)
            self._store_offset(position)
            total += len(lines)
            self.lines_read += len(lines)

    def _deliver(self, lines: list[tuple[int, bytes]]) -> None:
        records: list[LogRecord] = []
        for offset, raw in lines:
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not text.strip():
                continue
            self.note_messages()
            try:
                source, ts, level, message = self.parser.parse(text)
            except LineProblem as exc:
                if records and text[:1].isspace():
                    # A continuation (stack trace, wrapped message) of the record before it.
                    last = records.pop()
                    records.append(LogRecord(last.source, last.ts, last.level, last.message + "\n" + text))
                    continue
                self.quarantine(f"{self.path}@{offset}", str(exc), text)
                continue
            template_id, parameters = self.tagger.tag(message)
            records.append(LogRecord(source, ts, level, message, template_id, parameters))
        self.deliver_logs(records, origin=str(self.path))

    def _store_offset(self, offset: int) -> None:
        source_path = Path(self._handle.name)
        if os.fstat(self._handle.fileno()).st_ino != self._inode:
            return
        try:
            fp, fp_len = fingerprint(source_path) if source_path == self.path else ("", 0)
        except FileNotFoundError:
            fp, fp_len = "", 0
        self.offsets.set(self.key, LogOffset(self._inode, offset, fp, fp_len))

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
