"""CWRU drive-end bearing: defect-frequency orders against the published table, and envelope-spectrum
lines of every 12 kHz drive-end capture at BPFO / BPFI / BSF.

    python -m models.evaluate cwru_envelope [--data DIR] [--seconds 2]

For each capture (the first ``--seconds`` of its DE channel, as a 2 s analyser capture), the envelope
spectrum with the default band (10-40 % of the sample rate: 1.2-4.8 kHz) and each defect line's
prominence (its peak over the median level within +-20 Hz; about 1 means no line). A race fault
counts as found when the line of its race is the most prominent of BPFO/BPFI and above 10.
Nothing is tuned on these files: the band is the library default, the threshold a round number.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from models.evaluate import shared_data_dir
from models.vibration import BearingGeometry, defect_frequencies, envelope_spectrum, line_prominence

CWRU_DE = BearingGeometry(pitch_diameter=1.537, ball_diameter=0.3126, rolling_elements=9, contact_angle_deg=0.0)
PUBLISHED = {"BPFI": 5.4152, "BPFO": 3.5848, "FTF": 0.39828, "BSF": 2.357}
RATE = 12_000.0
RACE = {"OR@6": "BPFO", "IR": "BPFI"}


def analyse(path: Path, seconds: float) -> dict:
    rpm = float(path.name.split("_")[0])
    fault = path.name.split("_")[1].removesuffix(".npz")
    samples = np.load(path)["DE"].ravel()[: int(seconds * RATE)]
    env = envelope_spectrum(samples, RATE, max_hz=600)
    freqs = defect_frequencies(CWRU_DE, shaft_speed_rpm=rpm)
    row = {"file": path.name, "fault": fault, **{k: round(line_prominence(env, freqs[k][0], tolerance_hz=3), 1) for k in ("BPFO", "BPFI", "BSF")}}
    if fault in RACE:
        own, other = RACE[fault], "BPFI" if RACE[fault] == "BPFO" else "BPFO"
        row["found"] = bool(row[own] > 10 and row[own] > row[other])
    return row


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "cwru")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    orders = CWRU_DE.orders()
    print(f"{'line':<6}{'computed':>10}{'published':>11}")
    for name, value in PUBLISHED.items():
        print(f"{name:<6}{orders[name]:>10.5f}{value:>11}")
    paths = sorted(args.data.glob("*/*.npz"))
    if not paths:
        print(f"no CWRU files under {args.data}")
        return 1
    rows = [analyse(p, args.seconds) for p in paths]
    print(f"\n{'file':<24}{'BPFO':>7}{'BPFI':>7}{'BSF':>7}  race fault found")
    for r in rows:
        found = {True: "yes", False: "no"}.get(r.get("found"), "-")
        print(f"{r['file']:<24}{r['BPFO']:>7}{r['BPFI']:>7}{r['BSF']:>7}  {found}")
    races = [r for r in rows if "found" in r]
    print(f"\nrace faults found: {sum(r['found'] for r in races)} of {len(races)}")
    print(json.dumps({"orders": {k: round(v, 5) for k, v in orders.items()}, "found": sum(r["found"] for r in races), "races": len(races)}))
    return 0
