"""A watched folder of historian files: each settled CSV/Parquet/npz file dropped in the folder
is streamed through :func:`connectors.files.iter_reading_batches` into the sink, then moved to
``done/`` (or ``rejected/`` with a ``.reason.txt`` when the file cannot be read at all).

A vibration capture file (``*.capture.npz`` / ``*.capture.csv``, :mod:`connectors.waveforms`) is
not split into readings: it goes to the sink's ``write_captures`` as one capture, with what the
file does not say taken from ``capture_defaults`` (equipment, point, sample_rate_hz, unit, array).
A capture the sink refuses (too short, NaN, unknown equipment...) is quarantined by the sink and
the file moves to ``rejected/`` with the reason.

Per-row problems are quarantined with the file name and row and do not stop the file. Progress
(current file, rows and bytes done) is published in the connector status ``extra``. A sink error
stops the file where it is; it is read again from the start on the next scan, and the idempotent
ingestion counts the rows stored the first time as duplicates.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from connectors.base import Connector
from connectors.files import CSV_SUFFIXES, NPZ_SUFFIXES, PARQUET_SUFFIXES, FileFormatError, FileSpec, iter_reading_batches
from connectors.paths import FolderGuard, PathNotAllowed
from connectors.sink import Sink
from connectors.waveforms import is_capture_file, read_capture_file

SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES + NPZ_SUFFIXES


class HistorianFolderSource(Connector):
    kind = "file_folder"

    def __init__(
        self,
        name: str,
        sink: Sink,
        *,
        directory: str | Path,
        spec: FileSpec,
        batch_size: int = 50_000,
        poll_interval_s: float = 5.0,
        settle_s: float = 2.0,
        roots: Sequence[str | Path] | None = None,
        capture_defaults: dict | None = None,
        max_capture_bytes: int | None = 64 * 1024 * 1024,
        **kwargs,
    ):
        super().__init__(name, sink, **kwargs)
        self.directory = Path(directory)
        # The folder inside the roots; files read and moved only when they resolve inside the folder.
        self.guard = FolderGuard(self.directory, roots)
        self._refused: set[Path] = set()
        self.spec = spec
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.settle_s = settle_s
        self.done_dir = self.directory / "done"
        self.rejected_dir = self.directory / "rejected"
        self._seen: dict[Path, tuple[int, float]] = {}
        self.capture_defaults = dict(capture_defaults or {})
        self.max_capture_bytes = max_capture_bytes

    def run(self, stop: threading.Event) -> None:
        self.set_state("running", connected=True)
        try:
            while not stop.is_set():
                try:
                    self.scan(stop)
                except (OSError, PathNotAllowed) as exc:
                    self.note_error(exc)
                stop.wait(self.poll_interval_s)
        finally:
            self.set_state("stopped", connected=False)

    def scan(self, stop: threading.Event | None = None) -> int:
        """Ingest every settled file once; returns how many files completed."""
        self.guard.check_folder()
        self.directory.mkdir(parents=True, exist_ok=True)
        completed = 0
        for path in sorted(p for p in self.directory.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES):
            if stop is not None and stop.is_set():
                break
            if not self.guard.owns(path):
                if path not in self._refused:  # a link out of the folder: reported once, never read or moved
                    self._refused.add(path)
                    self.note_error(f"{path.name}: links outside the folder {self.directory}; left alone")
                continue
            if self._settled(path) and self._ingest(path):
                completed += 1
        return completed

    def _settled(self, path: Path) -> bool:
        size = path.stat().st_size
        previous = self._seen.get(path)
        now = time.monotonic()
        if previous is None or previous[0] != size:
            self._seen[path] = (size, now)
            return self.settle_s <= 0
        return now - previous[1] >= self.settle_s

    def _ingest(self, path: Path) -> bool:
        self.note_messages()
        if is_capture_file(path.name):
            return self._ingest_capture(path)
        try:
            for batch in iter_reading_batches(path, self.spec, batch_size=self.batch_size):
                for rejection in batch.rejections:
                    self.quarantine(f"{path.name} row {rejection.index}", rejection.error)
                self.deliver_readings(batch.readings, origin=f"file:{path.name}")
                self.set_extra(file=path.name, rows_done=batch.rows_done, bytes_done=batch.bytes_done, bytes_total=batch.bytes_total)
        except FileFormatError as exc:
            self.quarantine(path.name, str(exc))
            self._move(path, self.rejected_dir, reason=str(exc))
            return False
        except Exception as exc:  # sink down (no spool): leave the file, read it again next scan
            self.note_error(exc)
            return False
        self._move(path, self.done_dir)
        return True

    def _ingest_capture(self, path: Path) -> bool:
        defaults = {k: v for k, v in self.capture_defaults.items() if k != "array"}
        try:
            record = read_capture_file(path, array=self.capture_defaults.get("array"), defaults=defaults,
                                       max_decoded_bytes=self.max_capture_bytes)
            result = self.deliver_captures([record], origin=f"file:{path.name}")
        except FileFormatError as exc:
            self.quarantine(path.name, str(exc))
            self._move(path, self.rejected_dir, reason=str(exc))
            return False
        except Exception as exc:  # sink down or unable to take captures: leave the file, retry next scan
            self.note_error(exc)
            return False
        self.set_extra(file=path.name)
        if result.rejections:
            self._move(path, self.rejected_dir, reason=result.rejections[0].error)
            return False
        self._move(path, self.done_dir)
        return True

    def _move(self, path: Path, folder: Path, *, reason: str | None = None) -> None:
        self.guard.target(folder / path.name)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / path.name
        if target.exists():
            target = folder / f"{path.stem}-{int(time.time() * 1000)}{path.suffix}"
        shutil.move(str(path), target)
        if reason is not None:
            target.with_name(target.name + ".reason.txt").write_text(reason + "\n")
        self._seen.pop(path, None)
