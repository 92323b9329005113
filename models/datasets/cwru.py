"""Case Western Reserve University bearing data (12 kHz drive-end accelerometer).

The shared copy holds one ``.npz`` per recording, named ``<rpm>_<fault>_<size mils>_DE12.npz``
(or ``<rpm>_Normal.npz``) under ``<root>/<rpm>rpm/``; keys ``DE``/``FE``/``BA`` are float64
``(n, 1)`` columns. Fault codes: ``IR`` inner race, ``B`` ball, ``OR@6`` outer race at 6 o'clock.

Labels are the ten classes of the usual benchmark: ``Normal`` plus fault type x size, written
``IR_007``, ``B_014``, ``OR_021`` (size in thousandths of an inch), so a label says both what
failed and how badly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLING_RATE_HZ = 12_000
# SKF 6205-2RS JEM drive-end bearing: characteristic frequencies as multiples of shaft speed,
# from the CWRU Bearing Data Center's bearing specification page.
DRIVE_END_FAULT_ORDERS: dict[str, float] = {
    "BPFI": 5.4152,  # inner race
    "BPFO": 3.5848,  # outer race
    "BSF": 4.7135,  # twice the ball spin frequency (a ball defect strikes both races)
    "FTF": 0.39828,  # cage
}
_FILE_PATTERN = re.compile(r"^(?P<rpm>\d+)_(?:(?P<normal>Normal)|(?P<fault>IR|B|OR@\d+)_(?P<size>\d+)_DE12)$")


@dataclass(frozen=True)
class CwruRecording:
    """One accelerometer recording at a constant shaft speed."""

    rpm: int
    fault: str  # "Normal", "IR", "B" or "OR"
    size_mils: int  # 0 for Normal
    signal: np.ndarray  # float32, 1-D
    path: Path

    @property
    def label(self) -> str:
        return "Normal" if self.fault == "Normal" else f"{self.fault}_{self.size_mils:03d}"

    @property
    def shaft_hz(self) -> float:
        return self.rpm / 60.0


def parse_recording_name(path: Path) -> tuple[int, str, int]:
    """``1797_OR@6_14_DE12.npz`` -> ``(1797, "OR", 14)``; ``1797_Normal.npz`` -> ``(1797, "Normal", 0)``."""
    match = _FILE_PATTERN.match(path.stem)
    if match is None:
        raise ValueError(
            f"{path.name}: not a CWRU recording name (expected <rpm>_<IR|B|OR@k>_<mils>_DE12.npz "
            "or <rpm>_Normal.npz)"
        )
    rpm = int(match["rpm"])
    if match["normal"]:
        return rpm, "Normal", 0
    return rpm, match["fault"].split("@")[0], int(match["size"])


def load_recording(path: Path, *, channel: str = "DE") -> CwruRecording:
    rpm, fault, size = parse_recording_name(path)
    with np.load(path) as archive:
        if channel not in archive.files:
            raise KeyError(f"{path}: no channel {channel!r}; channels are {sorted(archive.files)}")
        signal = np.asarray(archive[channel], dtype=np.float32).ravel()
    if signal.size == 0 or not np.isfinite(signal).all():
        raise ValueError(f"{path}: channel {channel} is empty or holds NaN/inf")
    return CwruRecording(rpm=rpm, fault=fault, size_mils=size, signal=signal, path=path)


def load_recordings(root: str | Path, rpm: int, *, channel: str = "DE") -> list[CwruRecording]:
    """All recordings at one shaft speed, sorted by label. ``root`` holds the ``<rpm>rpm`` folders."""
    folder = Path(root) / f"{rpm}rpm"
    if not folder.is_dir():
        raise FileNotFoundError(f"no CWRU folder {folder} (expected <root>/{rpm}rpm/*.npz)")
    recordings = [load_recording(path, channel=channel) for path in sorted(folder.glob("*.npz"))]
    if not recordings:
        raise FileNotFoundError(f"{folder} holds no .npz recordings")
    mismatched = [r.path.name for r in recordings if r.rpm != rpm]
    if mismatched:
        raise ValueError(f"{folder}: recordings at another speed: {mismatched}")
    return sorted(recordings, key=lambda r: r.label)


def contiguous_segments(signal: np.ndarray, n_segments: int) -> list[np.ndarray]:
    """Split a recording into ``n_segments`` contiguous, non-overlapping, near-equal pieces."""
    if n_segments < 1:
        raise ValueError(f"n_segments must be >= 1, got {n_segments}")
    if signal.ndim != 1 or signal.size < n_segments:
        raise ValueError(f"need a 1-D signal with at least {n_segments} samples, got shape {signal.shape}")
    bounds = np.linspace(0, signal.size, n_segments + 1).astype(int)
    return [signal[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]


def held_out_segment_split(
    signal: np.ndarray, *, n_segments: int, n_test_segments: int, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Pick ``n_test_segments`` of the recording's contiguous segments for testing, the rest train.

    Windows are cut *inside* each segment afterwards, so no training window shares a sample
    with a test window (the leak that inflates many published CWRU numbers).
    """
    if not 0 < n_test_segments < n_segments:
        raise ValueError(f"n_test_segments must be in 1..{n_segments - 1}, got {n_test_segments}")
    segments = contiguous_segments(signal, n_segments)
    test_index = set(rng.choice(n_segments, size=n_test_segments, replace=False).tolist())
    train = [s for i, s in enumerate(segments) if i not in test_index]
    test = [s for i, s in enumerate(segments) if i in test_index]
    return train, test
