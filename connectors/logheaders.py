"""Find the timestamp and level at the start of a log line without being told the format.

Header styles recognised (the first that matches wins; the last one that matched is tried
first, since a file keeps one style):

* ISO 8601 and log4j/logback/python ``logging``: ``2024-05-01 10:00:00,123 INFO [main] x: msg``,
  ``2024-05-01T10:00:00.123+02:00 - WARN  [thread] - msg``, Windows CBS ``2016-09-28 04:30:30, Info  CBS msg``,
  also with ``/`` as the date separator;
* syslog (RFC 3164) ``Jun 14 15:16:01 host sshd[199]: msg`` (the year is the current one, or the
  one before when that would put the line in the future) and RFC 5424 ``<34>1 2024-05-01T...``;
* Windows event exports and US-style tools: ``5/1/2024 10:00:00 AM Error msg`` (also with a tab
  between date and time, as KEPServerEX's event log export writes it);
* open62541 (OPC UA server): ``[2024-05-01 10:00:00.123 (UTC+0200)] warn/network  Connection 5 | closed``;
* Apache error log ``[Sun Dec 04 04:47:44 2005] [error] msg``;
* digits-only dates: ``20171223-22:15:29:606|...``, ``081109 203615 148 INFO ...`` (yyMMdd HHmmss),
  ``17/06/09 20:10:40 INFO ...`` (yy/MM/dd);
* epoch seconds or milliseconds: ``1714557600.123 ERROR msg``;
* any of these after a level word (Windows Event Viewer's tab-separated export:
  ``Warning<TAB>12/6/2026 10:00:00 AM<TAB>Source<TAB>1001<TAB>None<TAB>message``).

The level is the first of the next three tokens that names one (``INFO``, ``[warn]``,
``Warning``, ``<E>``, Windows ``Information``/``Verbose``, syslog's PRI severity); without one the
line is ``INFO``. A line with no recognised header: see :func:`continues_record`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo

from connectors.timeparse import parse_timestamp

LEVEL_NAMES: dict[str, str] = {
    "TRACE": "DEBUG",
    "DEBUG": "DEBUG",
    "DBG": "DEBUG",
    "FINE": "DEBUG",
    "FINER": "DEBUG",
    "FINEST": "DEBUG",
    "VERBOSE": "DEBUG",
    "INFO": "INFO",
    "INFORMATION": "INFO",
    "INFORMATIONAL": "INFO",
    "NOTICE": "INFO",
    "WARN": "WARNING",
    "WARNING": "WARNING",
    "ERR": "ERROR",
    "ERROR": "ERROR",
    "SEVERE": "ERROR",
    "FAIL": "ERROR",
    "FAILURE": "ERROR",
    "CRIT": "CRITICAL",
    "CRITICAL": "CRITICAL",
    "FATAL": "CRITICAL",
    "ALERT": "CRITICAL",
    "EMERG": "CRITICAL",
    "EMERGENCY": "CRITICAL",
    "ALARM": "ALARM",
    "FAULT": "ERROR",  # drives and PLCs: a tripped fault, not an alarm-limit crossing
}
SYSLOG_SEVERITY = ("CRITICAL", "CRITICAL", "CRITICAL", "ERROR", "WARNING", "INFO", "INFO", "DEBUG")
LEVEL_SEARCH_TOKENS = 3
_LEVEL_STRIP = "[]()<>{}:|,-"


@dataclass(frozen=True, slots=True)
class Header:
    ts: datetime
    level: str
    message: str
    style: str


@dataclass(frozen=True)
class _Style:
    name: str
    regex: re.Pattern
    parse: Callable[[re.Match, tzinfo], datetime]


def _iso(match: re.Match, zone: tzinfo) -> datetime:
    text = match.group("ts").replace("/", "-").replace(",", ".", 1)
    offset = match.groupdict().get("utc")  # open62541 writes "(UTC+0200)" after the time
    ts = datetime.fromisoformat(text + (offset if offset and not text.endswith("Z") and "+" not in text[10:] else ""))
    return ts if ts.tzinfo else ts.replace(tzinfo=zone)


def _syslog(match: re.Match, zone: tzinfo) -> datetime:
    now = datetime.now(zone)
    text = " ".join(match.group("ts").split())
    ts = datetime.strptime(f"{now.year} {text}", "%Y %b %d %H:%M:%S").replace(tzinfo=zone)
    if ts - now > timedelta(days=1):  # December lines read in January
        ts = ts.replace(year=now.year - 1)
    return ts


def _us(match: re.Match, zone: tzinfo) -> datetime:
    date, _, time_of_day = re.sub(r"[,\s]+", " ", match.group("ts"), count=1).partition(" ")
    text = f"{date} {time_of_day}"
    pattern = "%m/%d/%Y %I:%M:%S %p" if text[-1] in "Mm" else "%m/%d/%Y %H:%M:%S"
    return datetime.strptime(text.upper(), pattern).replace(tzinfo=zone)


def _apache(match: re.Match, zone: tzinfo) -> datetime:
    text = re.sub(r"\.\d+", "", " ".join(match.group("ts").split()))
    return datetime.strptime(text, "%a %b %d %H:%M:%S %Y").replace(tzinfo=zone)


def _day_month_year(match: re.Match, zone: tzinfo) -> datetime:
    """``06-DEC-2026 12:23:21.698`` (drive and DCS exports, Oracle), ``06 Dec 2026 12:23:21,698``
    (log4j's DATE layout)."""
    day, month, year, clock = re.match(r"(\d{1,2})[- /]([A-Za-z]{3})[- /](\d{4})[ T:](.*)", match.group("ts")).groups()
    clock, _, fraction = clock.replace(",", ".").partition(".")
    ts = datetime.strptime(f"{day} {month.title()} {year} {clock}", "%d %b %Y %H:%M:%S")
    return ts.replace(microsecond=int(fraction.ljust(6, "0")[:6]) if fraction else 0, tzinfo=zone)


_COMPACT_PARTS = re.compile(
    r"^(?:(?P<y4>\d{4})(?P<m4>\d{2})(?P<d4>\d{2})|(?P<y2>\d{2})/?(?P<m2>\d{2})/?(?P<d2>\d{2}))[-T ]?"
    r"(?:(?P<H>\d{1,2}):(?P<M>\d{1,2}):(?P<S>\d{1,2})|(?P<H6>\d{2})(?P<M6>\d{2})(?P<S6>\d{2}))(?:[:.,](?P<f>\d{1,6}))?$"
)


def _compact(match: re.Match, zone: tzinfo) -> datetime:
    """Digits-only dates: ``20171223-22:15:29:606``, ``081109 203615``, ``17/06/09 20:10:40``
    (two-digit years are 20yy; a fraction of up to 3 digits is milliseconds)."""
    parts = _COMPACT_PARTS.match(match.group("ts"))
    if parts is None:
        raise ValueError(f"{match.group('ts')!r} is not a compact date")
    p = parts.groupdict()
    year = int(p["y4"]) if p["y4"] else 2000 + int(p["y2"])
    month, day = int(p["m4"] or p["m2"]), int(p["d4"] or p["d2"])
    hour, minute, second = (int(p[a] or p[b]) for a, b in (("H", "H6"), ("M", "M6"), ("S", "S6")))
    fraction = p["f"] or ""
    micro = int(fraction) * 1000 if 0 < len(fraction) <= 3 else int(fraction.ljust(6, "0")) if fraction else 0
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)


def _epoch(match: re.Match, zone: tzinfo) -> datetime:
    return parse_timestamp(match.group("ts"))


_REST = r"[\s,|\-:]*(?P<rest>.*)$"
STYLES: tuple[_Style, ...] = (
    _Style(
        "iso8601",
        re.compile(r"^(?:<(?P<pri>\d{1,3})>1? ?)?\[?(?P<ts>\d{4}[-/]\d{2}[-/]\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)(?: \(UTC(?P<utc>[+-]\d{2}:?\d{2})\))?\]?" + _REST),
        _iso,
    ),
    _Style(
        "syslog",
        re.compile(r"^(?:<(?P<pri>\d{1,3})>)?(?P<ts>[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2})\s+(?P<rest>.*)$"),
        _syslog,
    ),
    _Style("us_datetime", re.compile(r"^(?P<ts>\d{1,2}/\d{1,2}/\d{4}[,\s]+\d{1,2}:\d{2}:\d{2}(?: ?[AaPp][Mm])?)" + _REST), _us),
    _Style(
        "apache",
        re.compile(r"^\[(?P<ts>[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}(?:\.\d+)? \d{4})\]" + _REST),
        _apache,
    ),
    _Style(
        "day_month_year",
        re.compile(
            r"^\[?(?P<ts>\d{1,2}[- /](?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[- /]\d{4}[ T:]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,6})?)\]?" + _REST
        ),
        _day_month_year,
    ),
    _Style(
        "compact",
        re.compile(
            r"^(?P<ts>\d{8}[-T ]?(?:\d{1,2}:\d{1,2}:\d{1,2}|\d{6})(?:[:.,]\d{1,6})?|\d{6} \d{6}|\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2})(?![\d:])"
            + r"[\s,|\-:]*(?P<rest>.*)$"
        ),
        _compact,
    ),
    _Style("epoch", re.compile(r"^\[?(?P<ts>1\d{9}(?:\.\d+)?|1\d{12})\]?(?![\d.])" + _REST), _epoch),
)


class HeaderDetector:
    """Reads ``(ts, level, message)`` from lines of any of :data:`STYLES`; ``None`` for a line
    that starts no record."""

    def __init__(self, *, zone: tzinfo = timezone.utc, level_map: Mapping[str, str] | None = None):
        self.zone = zone
        self.levels = {**LEVEL_NAMES, **{k.upper(): v.upper() for k, v in (level_map or {}).items()}}
        self._order = list(STYLES)

    def detect(self, line: str) -> Header | None:
        header = self._detect(line)
        if header is None:
            # Level first, then the time: Windows Event Viewer's tab-separated export
            # ("Warning<TAB>12/6/2026 10:00:00 AM<TAB>Source<TAB>1001<TAB>...").
            first, _, rest = line.partition("\t") if "\t" in line[:16] else line.partition(" ")
            level = self.levels.get(first.strip(_LEVEL_STRIP).upper()) if first[:1].isalpha() or first[:1] in "[<(" else None
            if level is not None and rest:
                inner = self._detect(rest.lstrip())
                if inner is not None:
                    return Header(inner.ts, level, inner.message, "level_first+" + inner.style)
        return header

    def _detect(self, line: str) -> Header | None:
        for index, style in enumerate(self._order):
            match = style.regex.match(line)
            if match is None:
                continue
            try:
                ts = style.parse(match, self.zone)
            except (ValueError, OverflowError):
                continue
            if index:
                self._order.insert(0, self._order.pop(index))
            rest, pri = match.group("rest"), match.groupdict().get("pri")
            # syslog puts host and program first: a level word there would be message text.
            level, message = self._level(rest, pri) if style.name != "syslog" else (_pri_level(pri), rest)
            return Header(ts, level, message, style.name)
        return None

    def level_of(self, line: str, *, tokens: int = 10) -> str:
        """The level named among the first ``tokens`` tokens of a line without a known header."""
        for token in line.split(None, tokens)[:tokens]:
            core = token.strip(_LEVEL_STRIP)
            if (token[:1] in "[<(" or core.isupper() or core.istitle()) and core.upper() in self.levels:
                return self.levels[core.upper()]
        return "INFO"

    def _level(self, rest: str, pri: str | None) -> tuple[str, str]:
        tokens = rest.split(None, LEVEL_SEARCH_TOKENS)
        for index, token in enumerate(tokens[:LEVEL_SEARCH_TOKENS]):
            core = token.strip(_LEVEL_STRIP)
            if "/" in core[1:]:  # open62541 "info/server", "warn/network": level and category
                core, token = core.split("/", 1)[0], "[" + core
            # "ERROR", "Error", "[error]": a level; a lower-case bare "error" starts the message.
            marked = token[:1] in "[<(" or core.isupper() or core.istitle()
            level = self.levels.get(core.upper()) if marked else None
            if level is not None:
                # The message is what follows the level; a bracketed "[thread]" or a bare number (a
                # process id, HDFS) before it is dropped with the level, a name kept: "DRV_03 FAULT
                # ..." names the drive that tripped.
                after = rest.split(None, index + 1)
                message = (after[index + 1] if len(after) > index + 1 else "").lstrip(" -|:")
                kept = [t for t in after[:index] if t[:1] not in "[<(" and any(c.isalpha() for c in t)]
                if kept:
                    message = " ".join(kept) + (" " + message if message else "")
                return level, message or rest
        return _pri_level(pri), rest


def _pri_level(pri: str | None) -> str:
    """Syslog PRI = facility * 8 + severity; no PRI: INFO."""
    return SYSLOG_SEVERITY[int(pri) % 8] if pri and pri.isdigit() else "INFO"


_TRACE_LINE = re.compile(r"^(?:\s|Caused by:|Traceback |During handling|\.\.\. \d+ more|[\w.$]+(?:Exception|Error|Throwable)\b)")


def is_trace_line(line: str) -> bool:
    """An indented line or a stack-trace line: always part of the record before it."""
    return bool(_TRACE_LINE.match(line))


def continues_record(line: str, *, headers_seen: int, headerless_seen: int) -> bool:
    """Whether a line without a header belongs to the record before it: a trace line
    (:func:`is_trace_line`), or any line of a file where lines with a header outnumber the other
    headerless lines seen so far (a wrapped message). Where headers are rare the line is a record
    of its own: a format whose header we do not know."""
    if is_trace_line(line):
        return True
    return headers_seen > headerless_seen


# Windows events exported by ``wevtutil qe <log> /f:text``: a block per event, the time and level
# in fields, the message after "Description:" (not indented).
_BLOCK_START = re.compile(r"^Event\[\d+\]:\s*$")
_BLOCK_FIELD = re.compile(r"^\s+([A-Za-z][A-Za-z ]*?):\s?(.*)$")


def is_block_start(line: str) -> bool:
    """The first line of a Windows event block (``Event[12]:``)."""
    return bool(_BLOCK_START.match(line))


@dataclass(frozen=True, slots=True)
class BlockRecord:
    ts: datetime | None
    level: str
    message: str


def read_block(text: str, detector: HeaderDetector) -> BlockRecord:
    """A Windows event block -> time (``Date:``), level (``Level:``) and a message whose first
    line is ``<Source> <Event ID>: <description>`` (what the template is mined on), followed by
    the rest of the description and the fields."""
    fields: dict[str, str] = {}
    field_lines: list[str] = []
    description: list[str] = []
    in_description = False
    for line in text.split("\n")[1:]:
        match = None if in_description else _BLOCK_FIELD.match(line)
        if match is None:
            description.append(line.strip()) if in_description else field_lines.append(line)
            continue
        key, value = match.group(1).strip(), match.group(2).strip()
        if key == "Description":
            in_description = True
            if value:
                description.append(value)
            continue
        fields[key] = value
        field_lines.append(line)
    header = detector.detect(fields.get("Date", "")) if fields.get("Date") else None
    level = detector.levels.get(fields.get("Level", "").upper(), "INFO")
    words = " ".join(d for d in description if d) or text.split("\n", 1)[0]
    first = f"{fields.get('Source', 'Event')} {fields.get('Event ID', '')}".strip() + ": " + words.split("\n")[0]
    return BlockRecord(header.ts if header else None, level, "\n".join([first, *field_lines]))
