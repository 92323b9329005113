"""Write a Windows Event Viewer style log (tab-separated export, level first, US time with AM/PM,
one multi-line event) for one piece of equipment, to feed a ``logfile`` connector a format it
was never configured for.

    python scripts/event_log_sample.py /tmp/P-101-events.txt [--equipment P-101] [--minutes 60]
        [--follow-seconds 0]

The lines cover the last ``--minutes`` up to now; ``--follow-seconds N`` keeps appending one event
every 5 s for N seconds (bounded, stops by itself), so the connector can be watched following it.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path


def stamp(ts: datetime) -> str:
    return f"{ts.month}/{ts.day}/{ts.year} {ts:%I:%M:%S %p}"


def event(ts: datetime, equipment: str, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.70:
        return f"Information\t{stamp(ts)}\tPumpControl\t1000\tNone\tScan cycle completed in {rng.randint(35, 60)} ms"
    if roll < 0.85:
        return f"Information\t{stamp(ts)}\tOpcUaServer\t2100\tNone\tSession {rng.randint(1, 9)} renewed for client opc.tcp://10.0.{rng.randint(0, 9)}.{rng.randint(2, 250)}:4840"
    if roll < 0.97:
        return f"Warning\t{stamp(ts)}\tPumpControl\t1001\tNone\t{equipment} vibration {rng.uniform(4.6, 7.0):.1f} mm/s above warning limit 4.5 mm/s"
    return (
        f'Error\t{stamp(ts)}\tPumpControl\t1002\tNone\t"{equipment} drive tripped: overcurrent {rng.uniform(38, 45):.1f} A\n'
        f'Fault code F000{rng.randint(1, 4)}, reset required\nOperator acknowledged at the panel"'
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--equipment", default="P-101")
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--follow-seconds", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    now = datetime.now(UTC).replace(microsecond=0)
    lines = [event(now - timedelta(minutes=args.minutes) + timedelta(seconds=30 * i), args.equipment, rng) for i in range(args.minutes * 2)]
    args.path.parent.mkdir(parents=True, exist_ok=True)
    with args.path.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} events to {args.path}")
    deadline = time.monotonic() + max(args.follow_seconds, 0.0)
    while time.monotonic() < deadline:
        time.sleep(5)
        with args.path.open("a", encoding="utf-8") as handle:
            handle.write(event(datetime.now(UTC).replace(microsecond=0), args.equipment, rng) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
