"""Log connector throughput: lines/s through the template miner vs reading the same file, same run.

    python bench/logs.py [--data DIR] [--repeat 5] [--json bench/results/logs.json]

The eight Loghub 2k raw logs (``<data>/loghub/<System>/<System>_2k.log``, 16,000 lines of eight
formats), each its own source as in a plant (one connector, one miner per file). Each repetition
measures over the eight files, on one thread (so the figures are per core; CPU seconds of this process are reported next to wall
seconds because the machine may be shared):

* ``read``: reading the file line by line and decoding it (the floor of any log reader);
* ``miner``: every line through the connector's miner (``TemplateTagger.tag_record``: template id,
  text and parameters), with a fresh miner per repetition, so every template is new once;
* ``connector``: the whole ``LogFileFollower`` path (read, header detection, multi-line grouping,
  mining, records to a sink that only counts them), fresh offsets and miner per repetition.

It prints the median of the repetitions and writes them all to JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SYSTEMS = ("HDFS", "BGL", "Apache", "Zookeeper", "Hadoop", "Spark", "Linux", "HealthApp")


class CountingSink:
    """A sink that keeps nothing: the bench measures the connector, not storage."""

    def __init__(self) -> None:
        self.logs = 0

    def write_readings(self, readings):
        from connectors.records import IngestResult

        return IngestResult(accepted=len(readings))

    def write_logs(self, records):
        from connectors.records import IngestResult

        self.logs += len(records)
        return IngestResult(accepted=len(records))

    def write_images(self, images):
        from connectors.records import IngestResult

        return IngestResult(accepted=len(images))


def build_file(loghub: Path, target: Path, systems: tuple[str, ...] = SYSTEMS) -> int:
    lines = 0
    with target.open("wb") as out:
        for system in systems:
            data = (loghub / system / f"{system}_2k.log").read_bytes()
            if not data.endswith(b"\n"):
                data += b"\n"
            out.write(data)
            lines += data.count(b"\n")
    return lines


def timed(function) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def read_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        for raw in handle:
            raw.decode("utf-8", errors="replace").rstrip("\r\n")
            count += 1
    return count


def mine_lines(path: Path) -> int:
    from connectors.logs import TemplateTagger
    from connectors.logtemplates import TemplateMiner

    tagger = TemplateTagger(TemplateMiner())
    count = 0
    with path.open("rb") as handle:
        for raw in handle:
            tagger.tag_record(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
            count += 1
    return count


def follow_file(path: Path) -> tuple[int, int]:
    from connectors.logs import LogFileFollower, MemoryOffsetStore

    sink = CountingSink()
    follower = LogFileFollower("bench", sink, path=path, offsets=MemoryOffsetStore(), source="bench", on_quarantine=lambda item: None)
    lines = follower.read_available()
    return lines, sink.logs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "logs.json")
    args = parser.parse_args(argv)
    if args.data is None:
        from models.evaluate import shared_data_dir  # only then: the bench itself needs the standard library alone

        args.data = shared_data_dir()
    loghub = args.data / "loghub"
    if not all((loghub / s / f"{s}_2k.log").is_file() for s in SYSTEMS):
        print(f"the Loghub 2k logs are not all under {loghub}", file=sys.stderr)
        return 2
    runs: dict[str, list[dict]] = {"read": [], "miner": [], "connector": []}
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        lines = 0
        for system in SYSTEMS:
            paths.append(Path(tmp) / f"{system}.log")
            lines += build_file(loghub, paths[-1], (system,))
        for _ in range(args.repeat):
            for name, function in (("read", read_lines), ("miner", mine_lines), ("connector", follow_file)):
                wall, cpu, results = timed(lambda function=function: [function(path) for path in paths])
                run = {"wall_s": round(wall, 4), "cpu_s": round(cpu, 4), "lines_per_s": round(lines / wall), "lines_per_cpu_s": round(lines / max(cpu, 1e-9))}
                if name == "connector":
                    run["records"] = sum(result[1] for result in results)  # multi-line grouping: records <= lines
                runs[name].append(run)
    summary = {
        name: {
            "lines_per_s": round(statistics.median(r["lines_per_s"] for r in items)),
            "lines_per_cpu_s": round(statistics.median(r["lines_per_cpu_s"] for r in items)),
        }
        for name, items in runs.items()
    }
    summary["miner"]["vs_read"] = round(summary["miner"]["lines_per_s"] / summary["read"]["lines_per_s"], 4)
    print(f"{lines} lines of the eight Loghub 2k logs, median of {args.repeat} runs, one thread")
    print(f"{'path':<10} {'lines/s (wall)':>15} {'lines/CPU-s':>12}")
    for name in runs:
        print(f"{name:<10} {summary[name]['lines_per_s']:>15,} {summary[name]['lines_per_cpu_s']:>12,}")
    print(f"connector records: {runs['connector'][-1]['records']} (multi-line grouping of {lines} lines)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"lines": lines, "repeat": args.repeat, "summary": summary, "runs": runs}, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
