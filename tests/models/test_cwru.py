"""CWRU reader and the harness's splits: names, segments, no train/test overlap, real files if present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.datasets.cwru import (
    CwruRecording,
    contiguous_segments,
    held_out_segment_split,
    load_recording,
    load_recordings,
    parse_recording_name,
)
from models.evaluate import shared_data_dir
from models.evaluate.cwru import WINDOW_LENGTH, combine_rows, cross_load_split, same_load_split, to_reference_speed
from models.features import resample_to_speed

CWRU_DIR = shared_data_dir() / "cwru"


def recording(label_fault: str, size: int, signal: np.ndarray, rpm: int = 1797) -> CwruRecording:
    return CwruRecording(rpm=rpm, fault=label_fault, size_mils=size, signal=signal.astype(np.float32), path=Path("x.npz"))


@pytest.mark.parametrize(
    ("name", "expected"),
    [("1797_OR@6_14_DE12.npz", (1797, "OR", 14)), ("1772_IR_7_DE12.npz", (1772, "IR", 7)), ("1797_Normal.npz", (1797, "Normal", 0))],
)
def test_parse_recording_name(name, expected):
    assert parse_recording_name(Path(name)) == expected


def test_parse_recording_name_rejects_other_files():
    with pytest.raises(ValueError, match="not a CWRU recording name"):
        parse_recording_name(Path("1797_XX_7.npz"))


def test_labels_name_fault_and_size():
    assert recording("OR", 7, np.zeros(10)).label == "OR_007"
    assert recording("Normal", 0, np.zeros(10)).label == "Normal"


def test_load_recording_reads_the_channel(tmp_path):
    path = tmp_path / "1797_B_21_DE12.npz"
    np.savez(path, DE=np.arange(100, dtype=np.float64).reshape(-1, 1), FE=np.zeros((100, 1)))
    loaded = load_recording(path)
    assert loaded.label == "B_021" and loaded.signal.dtype == np.float32 and loaded.signal[5] == 5.0
    with pytest.raises(KeyError, match="no channel 'BA'"):
        load_recording(path, channel="BA")


def test_contiguous_segments_cover_the_signal_without_overlap():
    signal = np.arange(103)
    segments = contiguous_segments(signal, 4)
    assert np.array_equal(np.concatenate(segments), signal)


def test_held_out_segments_do_not_share_samples_with_training():
    signal = np.arange(10_000)
    train, test = held_out_segment_split(signal, n_segments=5, n_test_segments=1, rng=np.random.default_rng(0))
    assert len(test) == 1 and len(train) == 4
    assert not set(np.concatenate(train)) & set(np.concatenate(test))


def test_same_load_split_keeps_test_windows_out_of_training_segments():
    # Sample values are their own time index, so overlap would show as shared values.
    recordings = [recording("IR", 7, np.arange(0, 50_000.0)), recording("Normal", 0, np.arange(100_000, 150_000.0))]
    split = same_load_split(recordings, segment_length=10_000, test_fraction=0.2, stride=1024, seed=0)
    assert split.train_X.shape[1:] == (1, 10_000) and split.test_X.shape[1:] == (1, WINDOW_LENGTH)
    assert not set(split.train_X.ravel()) & set(split.test_X.ravel())
    assert set(split.test_y) == {"IR_007", "Normal"}


def test_cross_load_split_trains_on_one_speed_and_tests_on_the_other():
    train = [recording("IR", 7, np.zeros(30_000)), recording("Normal", 0, np.zeros(30_000))]
    test = [recording("IR", 7, np.ones(30_000), rpm=1772)]
    split = cross_load_split(train, test, segment_length=10_000, stride=2048)
    assert len(split.train_X) == 6 and set(split.test_y) == {"IR_007"}
    assert split.test_X.min() == 1.0


def test_inner_split_never_uses_a_same_load_test_segment():
    recordings = [recording("IR", 7, np.arange(0, 50_000.0)), recording("Normal", 0, np.arange(100_000, 150_000.0))]
    outer = same_load_split(recordings, segment_length=10_000, test_fraction=0.2, stride=1024, seed=0)
    inner = same_load_split(recordings, segment_length=10_000, test_fraction=0.2, stride=1024, seed=0, inner=True)
    used_by_inner = set(inner.train_X.ravel()) | set(inner.test_X.ravel())
    assert not used_by_inner & set(outer.test_X.ravel())
    assert not set(inner.train_X.ravel()) & set(inner.test_X.ravel())
    assert len(inner.train_X) == 6  # 4 of 5 segments per recording left, 1 of them held out


def test_order_resampling_puts_a_shaft_order_at_the_reference_speed():
    fs, order = 12_000, 5.4152  # BPFI of the drive-end bearing
    t = np.arange(120_000) / fs
    at_1772 = np.sin(2 * np.pi * order * 1772 / 60 * t)
    resampled = resample_to_speed(at_1772, rpm=1772, reference_rpm=1797)
    assert resampled.size == round(120_000 * 1772 / 1797)
    spectrum = np.abs(np.fft.rfft(resampled))
    peak_hz = np.fft.rfftfreq(resampled.size, 1 / fs)[spectrum.argmax()]
    assert peak_hz == pytest.approx(order * 1797 / 60, abs=0.2)


def test_to_reference_speed_leaves_recordings_at_that_speed_alone():
    same = recording("IR", 7, np.arange(10_000.0), rpm=1797)
    other = recording("IR", 7, np.arange(10_000.0), rpm=1772)
    converted = to_reference_speed([same, other], 1797)
    assert converted[0].signal is same.signal and converted[1].signal.size == round(10_000 * 1772 / 1797)


def test_combined_row_averages_member_probabilities():
    classes = np.array(["a", "b"])
    split_y = np.array(["a", "b"])
    member = {"fit_s": 1.0, "predict_s": 0.1, "epochs_run": 1, "trainable_parameters": 5, "total_parameters": 5, "_classes": classes}
    first = {**member, "_probabilities": np.array([[0.9, 0.1], [0.6, 0.4]])}
    second = {**member, "_probabilities": np.array([[0.7, 0.3], [0.0, 1.0]])}
    from models.evaluate.cwru import Split

    row = combine_rows("both", [first, second], Split(np.zeros((1, 1, 4)), np.array(["a"]), np.zeros((2, 1, 4)), split_y))
    assert row["accuracy"] == 1.0 and row["fit_s"] == 2.0 and row["trainable_parameters"] == 10


@pytest.mark.skipif(not CWRU_DIR.is_dir(), reason="shared CWRU data not present")
def test_real_cwru_has_ten_classes_at_1797_and_nine_at_1772():
    assert len({r.label for r in load_recordings(CWRU_DIR, 1797)}) == 10
    labels_1772 = {r.label for r in load_recordings(CWRU_DIR, 1772)}
    assert len(labels_1772) == 9 and "Normal" not in labels_1772


def test_cross_direction_split_cuts_captures_and_sets_aside_classes_missing_from_training():
    from models.evaluate.cwru import cross_direction_split

    rng = np.random.default_rng(0)
    at_1772 = [recording("IR", 7, rng.normal(size=25_000), rpm=1772)]
    at_1797 = [recording("IR", 7, rng.normal(size=36_500), rpm=1797), recording("Normal", 0, rng.normal(size=24_000), rpm=1797)]
    split = cross_direction_split(at_1772, at_1797, capture_length=12_000, train_rpm=1772, test_rpm=1797)
    assert split.train_X.shape == (2, 1, 12_000) and split.test_X.shape == (3, 1, 12_000)
    assert set(split.test_y) == {"IR_007"} and split.unseen_label == "Normal" and split.unseen_X.shape == (2, 1, 12_000)
    assert (split.train_rpm, split.test_rpm) == (1772, 1797)
    forward = cross_direction_split(at_1797, at_1772, capture_length=12_000, train_rpm=1797, test_rpm=1772)
    assert forward.unseen_X is None and len(forward.test_y) == 2
