from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from connectors.logheaders import HeaderDetector, continues_record
from connectors.logs import LogLineFormat, LogLineParser

UTC = timezone.utc


@pytest.mark.parametrize(
    ("line", "ts", "level", "message"),
    [
        ("2024-05-01 10:00:01,123 WARN [main] x.Pump: cavitation", datetime(2024, 5, 1, 10, 0, 1, 123000, UTC), "WARNING", "[main] x.Pump: cavitation"),
        ("2024-05-01T10:00:01.5+02:00 - ERROR [t1] - trip", datetime(2024, 5, 1, 8, 0, 1, 500000, UTC), "ERROR", "[t1] - trip"),
        ("2016-09-28 04:30:30, Info                  CBS    Starting", datetime(2016, 9, 28, 4, 30, 30, tzinfo=UTC), "INFO", "CBS    Starting"),
        ("<11>1 2024-05-01T10:00:00Z plc1 opc - - - link lost", datetime(2024, 5, 1, 10, 0, tzinfo=UTC), "ERROR", "plc1 opc - - - link lost"),
        ("5/1/2024 1:02:03 PM Error Service Control Manager 7031", datetime(2024, 5, 1, 13, 2, 3, tzinfo=UTC), "ERROR", "Service Control Manager 7031"),
        ("[Sun Dec 04 04:47:44 2005] [error] mod_jk child in error state 6", datetime(2005, 12, 4, 4, 47, 44, tzinfo=UTC), "ERROR", "mod_jk child in error state 6"),
        ("1714557600.25 CRIT overtemp", datetime(2024, 5, 1, 10, 0, 0, 250000, UTC), "CRITICAL", "overtemp"),
        ("1714557600250 info ok", datetime(2024, 5, 1, 10, 0, 0, 250000, UTC), "INFO", "info ok"),
        ("20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579", datetime(2017, 12, 23, 22, 15, 29, 606000, UTC), "INFO", "Step_LSC|30002312|onStandStepChanged 3579"),
        ("081109 203615 148 INFO dfs.DataNode: x", datetime(2008, 11, 9, 20, 36, 15, tzinfo=UTC), "INFO", "dfs.DataNode: x"),
    ],
)
def test_common_headers_are_found(line, ts, level, message):
    header = HeaderDetector().detect(line)
    assert (header.ts, header.level, header.message) == (ts, level, message)


def test_syslog_gets_this_year_unless_that_is_in_the_future():
    now = datetime.now(UTC)
    header = HeaderDetector().detect(f"{now:%b} {now.day:2d} {now:%H:%M:%S} combo sshd[1]: error: bad login")
    assert header.ts.year == now.year and header.level == "INFO"  # "error:" is message text in syslog
    ahead = now + timedelta(days=40)
    if ahead.year == now.year:
        assert HeaderDetector().detect(f"{ahead:%b %d %H:%M:%S} h p: x").ts.year == now.year - 1


def test_lines_without_a_header_are_not_records_and_continue_by_the_files_evidence():
    assert HeaderDetector().detect("\tat x.y(Z.java:1)") is None
    assert continues_record("\tat x.y(Z.java:1)", headers_seen=0, headerless_seen=9)
    assert continues_record("wrapped text", headers_seen=5, headerless_seen=1)
    assert not continues_record("#12 pump started", headers_seen=0, headerless_seen=3)


def test_the_connectors_explicit_format_wins_over_detection():
    fmt = LogLineFormat(pattern=r"^(?P<level>\w) (?P<ts>\S+ \S+) (?P<message>.*)$", ts_format="%Y-%m-%d %H:%M:%S", timezone="Europe/Berlin")
    source, ts, level, message = LogLineParser(fmt, "plc").parse("E 2024-05-01 12:00:00 1714557600 overtemp")
    assert (level, message) == ("ERROR", "1714557600 overtemp")
    assert ts == datetime(2024, 5, 1, 12, tzinfo=ZoneInfo("Europe/Berlin"))


def test_a_level_before_the_time_is_read_too():
    header = HeaderDetector().detect("Warning\t12/6/2026 10:00:00 AM\tPumpControl\t1001\tNone\tseal leak")
    assert (header.ts, header.level, header.message) == (datetime(2026, 12, 6, 10, tzinfo=UTC), "WARNING", "PumpControl\t1001\tNone\tseal leak")
    assert HeaderDetector().detect("error 12/6/2026 10:00:00 AM x").level == "ERROR"


@pytest.mark.parametrize(
    ("line", "ts"),
    [
        ("20171223-22:16:0:119|Step_LSC|x", datetime(2017, 12, 23, 22, 16, 0, 119000, UTC)),
        ("20171223-22:15:29:606|Step_LSC|x", datetime(2017, 12, 23, 22, 15, 29, 606000, UTC)),
        ("20240501T100001.250 ok", datetime(2024, 5, 1, 10, 0, 1, 250000, UTC)),
        ("17/06/09 20:10:40 INFO spark.SecurityManager: x", datetime(2017, 6, 9, 20, 10, 40, tzinfo=UTC)),
    ],
)
def test_digits_only_dates_with_short_fields(line, ts):
    assert HeaderDetector().detect(line).ts == ts


@pytest.mark.parametrize(
    ("line", "ts", "level", "message"),
    [
        (  # open62541, an OPC UA server
            "[2024-05-01 10:00:00.123 (UTC+0200)] warn/network\tConnection 5 | Closed",
            datetime(2024, 5, 1, 8, 0, 0, 123000, UTC),
            "WARNING",
            "Connection 5 | Closed",
        ),
        (  # KEPServerEX event log export: tab between date and time
            "5/1/2024\t10:00:00 AM\tKEPServerEX\\Runtime\tDevice 'PLC1' is not responding.",
            datetime(2024, 5, 1, 10, tzinfo=UTC),
            "INFO",
            "KEPServerEX\\Runtime\tDevice 'PLC1' is not responding.",
        ),
    ],
)
def test_opc_server_logs(line, ts, level, message):
    header = HeaderDetector().detect(line)
    assert (header.ts, header.level, header.message) == (ts, level, message)


@pytest.mark.parametrize(
    ("line", "ts", "level", "message"),
    [
        # Drive / DCS exports (Oracle-style day-month-year) and log4j's DATE layout, met in the live
        # check of issue 20 with a file nothing was configured for.
        ("06-DEC-2026 12:23:21.698  DRV_03  FAULT  F0007 overcurrent 12.4 A on phase V", datetime(2026, 12, 6, 12, 23, 21, 698000, UTC), "ERROR", "DRV_03 F0007 overcurrent 12.4 A on phase V"),
        ("06 Dec 2026 12:23:21,698 WARN  [opc] session revised", datetime(2026, 12, 6, 12, 23, 21, 698000, UTC), "WARNING", "[opc] session revised"),
        ("6-Dec-2026 07:00:00 PLC_1 INFO heartbeat", datetime(2026, 12, 6, 7, 0, tzinfo=UTC), "INFO", "PLC_1 heartbeat"),
    ],
)
def test_day_month_name_year_headers_are_found(line, ts, level, message):
    header = HeaderDetector().detect(line)
    assert (header.ts, header.level, header.message) == (ts, level, message)
