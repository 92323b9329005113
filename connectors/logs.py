"""Log files: follow a file across rotation with a stored offset, find each record's timestamp
and level, group multi-line records, mine templates.

Offsets: after every delivered batch the follower stores ``(inode, offset, fingerprint)`` for
the path in an :class:`OffsetStore` (a JSON file here; the database in the app). On restart it
continues at that offset; if the file was rotated meanwhile it first finishes the rotated file
(found by inode next to the path, e.g. ``app.log.1``) and then reads the new one from the start,
so no line is missed; a line is never read twice unless the process dies between a delivery and
the offset write (then that one batch repeats: at-least-once). The fingerprint (a hash of the
file's first bytes) tells a reused inode from the same file. Copy-truncate rotation is seen as
the file getting shorter than the offset.

Lines: without an explicit ``format`` the timestamp and level are found by
:mod:`connectors.logheaders` (ISO 8601, log4j, syslog, Windows, Apache, epoch); a line without a
header continues the record before it (stack traces, Windows event bodies). An explicit
``format`` (a regex with ``ts``, ``level``, ``message`` groups) wins; then only indented lines
continue a record and other non-matching lines are quarantined.

Templates: :mod:`connectors.logtemplates` (one default configuration for every source); each
:class:`LogRecord` gets the template id, the template text and the values at its variable
positions. The miner's state is checkpointed per source in a :class:`MinerStateStore` after every
delivered batch (before the offset), so ids keep their meaning across restarts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from connectors.base import Connector, utcnow
from connectors.logheaders import HeaderDetector, continues_record, is_block_start, is_trace_line, read_block
from connectors.logtemplates import DEFAULT_MASKS, MinerSettings, TemplateMiner
from connectors.paths import PathNotAllowed, confine
from connectors.records import LogRecord
from connectors.sink import Sink

FINGERPRINT_BYTES = 256
MAX_RECORD_CHARS = 65_536  # a multi-line record longer than this is cut (a runaway trace must not eat memory)
__all__ = ["DEFAULT_MASKS", "MinerSettings", "TemplateMiner"]

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


class _JsonFile:
    """A dict of JSON values in one file, replaced atomically on every write (write temp +
    rename), one writer at a time in this process: the offset and miner-state files below."""

    what = "JSON file"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def _load(self) -> dict:
        if not self.path.exists():
            return {}
        try:
            return json.loads(self.path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self.what} {self.path} is not valid JSON: {exc}") from exc

    def _get(self, key: str):
        with self._lock:
            return self._load().get(key)

    def _set(self, key: str, value) -> None:
        with self._lock:
            data = self._load()
            data[key] = value
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(self.path.suffix + ".tmp")
            tmp.write_text(json.dumps(data, indent=1))
            os.replace(tmp, self.path)


class JsonOffsetStore(_JsonFile):
    """Offsets in one JSON file."""

    what = "offset store"

    def get(self, key: str) -> LogOffset | None:
        item = self._get(key)
        return LogOffset(**item) if item else None

    def set(self, key: str, offset: LogOffset) -> None:
        self._set(key, asdict(offset))


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


# The header the connector assumed before detection existed; pass it as an explicit pattern to keep
# the old strictness (non-matching, non-indented lines quarantined).
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
    """How to read one line. ``pattern`` None (the default): find the header automatically
    (:mod:`connectors.logheaders`). Else a regex with named groups ``ts``, ``level``,
    ``message`` (and optionally ``source``), which wins over detection; ``ts_format`` a strftime
    pattern (None = ISO 8601, comma decimals allowed); ``timezone`` for timestamps without an
    offset; ``level_map`` extra level names."""

    pattern: str | None = None
    ts_format: str | None = None
    timezone: str = "UTC"
    level_map: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pattern is not None:
            try:
                compiled = re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"log pattern {self.pattern!r} is not a valid regex: {exc}") from exc
            missing = {"ts", "level", "message"} - set(compiled.groupindex)
            if missing:
                raise ValueError(f"log pattern lacks named groups {sorted(missing)}: {self.pattern}")
        try:
            ZoneInfo(self.timezone)
        except (ValueError, KeyError) as exc:
            raise ValueError(f"log format timezone {self.timezone!r} is unknown") from exc

    @property
    def explicit(self) -> bool:
        return self.pattern is not None

    @classmethod
    def from_dict(cls, config: Mapping) -> LogLineFormat:
        unknown = sorted(set(config) - {"pattern", "ts_format", "timezone", "level_map"})
        if unknown:
            raise ValueError(f"unknown log format keys {unknown}")
        return cls(**config)


class LogLineParser:
    def __init__(self, fmt: LogLineFormat, default_source: str):
        self.fmt = fmt
        self.regex = re.compile(fmt.pattern) if fmt.pattern is not None else None
        self.zone = ZoneInfo(fmt.timezone)
        self.default_source = default_source
        self.level_map = {k.upper(): v.upper() for k, v in fmt.level_map.items()}
        self.detector = HeaderDetector(zone=self.zone, level_map=fmt.level_map)

    def parse(self, line: str) -> tuple[str, datetime, str, str]:
        """(source, ts, level, message) or LineProblem."""
        if self.regex is None:
            header = self.detector.detect(line)
            if header is None:
                raise LineProblem("no timestamp found at the start of the line (ISO 8601, syslog, Windows, log4j, Apache or epoch)")
            return self.default_source, header.ts, header.level, header.message
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


class MinerStateStore(Protocol):
    """Where a source's miner state lives between runs (a JSON file here; the database in the app)."""

    def get(self, key: str) -> dict | None: ...

    def set(self, key: str, state: dict) -> None: ...


class MemoryMinerStateStore:
    def __init__(self) -> None:
        self.states: dict[str, dict] = {}

    def get(self, key: str) -> dict | None:
        state = self.states.get(key)
        return json.loads(json.dumps(state)) if state is not None else None  # a copy, as a real store gives

    def set(self, key: str, state: dict) -> None:
        self.states[key] = json.loads(json.dumps(state))


class JsonMinerStateStore(_JsonFile):
    """Miner states in one JSON file."""

    what = "miner state file"

    def get(self, key: str) -> dict | None:
        return self._get(key)

    def set(self, key: str, state: dict) -> None:
        self._set(key, state)


def make_template_miner(settings: MinerSettings = MinerSettings()) -> TemplateMiner:
    """A miner with the one default configuration (``settings.state_path``: continue from, and
    checkpoint to, that JSON file through a :class:`TemplateTagger`)."""
    if settings.state_path:
        return TemplateMiner.from_state(JsonMinerStateStore(settings.state_path).get("miner"), settings)
    return TemplateMiner(settings)


class TemplateTagger:
    """Adds template id, text and parameters to messages with one miner; thread-safe.

    ``id_prefix`` keeps ids of different sources apart where they share one table (the app's
    ``LogTemplate``); ``store``/``key``: where :meth:`checkpoint` writes the miner state."""

    def __init__(self, miner: TemplateMiner, *, id_prefix: str = "", store: MinerStateStore | None = None, key: str = "miner"):
        self.miner = miner
        self.id_prefix = id_prefix
        if store is None and miner.settings.state_path:
            store = JsonMinerStateStore(miner.settings.state_path)
        self.store = store
        self.key = key
        self._saved_revision = miner.revision
        self._lock = threading.Lock()

    @classmethod
    def restore(cls, settings: MinerSettings, *, store: MinerStateStore, key: str, id_prefix: str = "") -> TemplateTagger:
        """A tagger that continues the miner state stored under ``key``."""
        try:
            miner = TemplateMiner.from_state(store.get(key), settings)
        except ValueError as exc:
            raise ValueError(f"miner state {key!r}: {exc}") from exc
        return cls(miner, id_prefix=id_prefix, store=store, key=key)

    def tag(self, message: str) -> tuple[str, list[str]]:
        template_id, _, parameters = self.tag_record(message)
        return template_id, parameters

    def tag_record(self, message: str) -> tuple[str, str, list[str]]:
        """(template id, template text, parameters) of ``message``."""
        with self._lock:
            match = self.miner.add(message)
            return self.id_prefix + match.template_id, self.miner.template(match.template_id), match.parameters

    def template(self, template_id: str) -> str:
        """The current text of the template ``template_id`` belongs to."""
        with self._lock:
            return self.miner.template(template_id.removeprefix(self.id_prefix))

    def summary(self) -> dict:
        """Counters for the connector status: live templates, merged ids, split templates, dropped templates."""
        with self._lock:
            stats = self.miner.stats
            return {
                "templates": len(self.miner.live_templates()),
                "merged_ids": stats.merged,
                "split_templates": stats.split,
                "dropped_templates": stats.evicted,
            }

    def checkpoint(self) -> bool:
        """Store the miner state if it changed since the last checkpoint; True if written."""
        with self._lock:
            if self.store is None or self.miner.revision == self._saved_revision:
                return False
            state, revision = self.miner.state(), self.miner.revision
            # For readers of the stored state (the dashboard): merged id -> the id it belongs to now.
            state["aliases"] = {self.id_prefix + old: self.id_prefix + new for old, new in self.miner.aliases().items()}
            # Split-out id -> the id it was split from (which keeps meaning the lines it covered).
            state["splits"] = {self.id_prefix + new: self.id_prefix + old for new, old in self.miner.splits().items()}
        self.store.set(self.key, state)
        self._saved_revision = revision
        return True


# ------------------------------------------------------------------------------------------------
# Following


class LogFileFollower(Connector):
    """Tail one log file into LogRecords, resuming from the offset store."""

    kind = "logfile"
    max_line_bytes = 1 << 20  # memory per read stays bounded even for a line that never ends

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
        self._last_header: tuple[str, datetime, str] | None = None  # (source, ts, level) of the record before
        self._headers_seen = 0  # lines with a detected header, and other headerless lines (not traces):
        self._headerless_seen = 0  # their ratio tells a wrapped message from a format we cannot read
        self._in_block = False  # inside a Windows event block: every headerless line belongs to it
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
                line = handle.readline(self.max_line_bytes)
                if not line:
                    break
                if not line.endswith(b"\n") and len(line) < self.max_line_bytes:
                    handle.seek(position)  # a line still being written: take it next time
                    break
                # (A line longer than max_line_bytes is taken in pieces; the pieces after the
                # first have no header and join its record, which is cut at MAX_RECORD_CHARS.)
                lines.append((position, line))
                position = handle.tell()
            if not lines:
                return total
            self._deliver(lines)
            self.tagger.checkpoint()  # before the offset: a repeated batch then meets the same ids
            self.set_extra(**self.tagger.summary())
            self._store_offset(position)
            total += len(lines)
            self.lines_read += len(lines)

    def _deliver(self, lines: list[tuple[int, bytes]]) -> None:
        """Lines -> records: a line with a header starts a record; a line without one is placed by
        :meth:`_place_headerless`. Records are tagged with their template once complete."""
        pending: list[list] = []  # [source, ts, level, message] per record (ts None: a Windows event block)
        seen = 0
        cut = False  # the previous piece was a line longer than max_line_bytes, cut short
        for offset, raw in lines:
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if "\x00" in text:  # PostgreSQL text and JSON refuse NUL; a torn write leaves them
                text = text.replace("\x00", "\ufffd")
            if cut and pending:
                pending[-1][3] = (pending[-1][3] + text)[:MAX_RECORD_CHARS]  # the rest of the same line
                cut = not raw.endswith(b"\n")
                continue
            cut = not raw.endswith(b"\n")
            if not text.strip():
                continue
            seen += 1
            try:
                source, ts, level, message = self.parser.parse(text)
            except LineProblem as exc:
                self._place_headerless(text, pending, origin=f"{self.path}@{offset}", problem=exc)
                continue
            pending.append([source, ts, level, message])
            self._headers_seen += 1
            self._in_block = False
            self._last_header = (source, ts, level)
        if seen:
            self.note_messages(seen)  # once per batch: the status lock is not taken per line
        self.deliver_logs(self._records(pending), origin=str(self.path))

    def _place_headerless(self, text: str, pending: list[list], *, origin: str, problem: LineProblem) -> None:
        """A line without a header: the start of a Windows event block, a continuation of the
        record before it, a record of its own (a header format we do not know), or quarantined
        (an explicit pattern it does not match, not indented)."""
        if self.parser.fmt.explicit:
            continues = text[:1].isspace()
        elif is_block_start(text):
            self._in_block = True
            self._headers_seen += 1
            pending.append([self.parser.default_source, None, "INFO", text])  # time and level from its fields
            return
        elif self._in_block:
            continues = True
        else:
            continues = continues_record(text, headers_seen=self._headers_seen, headerless_seen=self._headerless_seen)
            if not is_trace_line(text):
                self._headerless_seen += 1
            if not continues:
                pending.append([self.parser.default_source, utcnow(), self.parser.detector.level_of(text), text])
                return
        if continues and pending:
            record = pending[-1]
            if len(record[3]) < MAX_RECORD_CHARS:
                record[3] = (record[3] + "\n" + text)[:MAX_RECORD_CHARS]
        elif continues and self._last_header is not None:
            # The record it belongs to went out with the previous batch: same source, time, level.
            pending.append([*self._last_header, text])
        else:
            self.quarantine(origin, str(problem), text)

    def _records(self, pending: list[list]) -> list[LogRecord]:
        records = []
        for source, ts, level, message in pending:
            if ts is None:  # a Windows event block, complete now
                block = read_block(message, self.parser.detector)
                ts, level, message = block.ts or utcnow(), block.level, block.message
                self._last_header = (source, ts, level)
            template_id, template, parameters = self.tagger.tag_record(message)
            records.append(LogRecord(source, ts, level, message, template_id, parameters, template))
        return records

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
