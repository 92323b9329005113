"""FaultClassifier's constructor defaults (issue 17): a bare ``FaultClassifier("inceptiontime")``
gets VIBRATION_DEFAULTS, explicit arguments win, and models saved before the defaults existed load
unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.classification import METHOD_DEFAULTS, VIBRATION_DEFAULTS, FaultClassifier
from tests.models.test_classification import FS, bearing_waveforms


def _settings(classifier: FaultClassifier) -> dict:
    return {"method": classifier.method, "window_length": classifier.window_length,
            "window_stride": classifier.window_stride, **classifier.params}


def test_bare_inceptiontime_constructor_has_the_vibration_defaults():
    assert _settings(FaultClassifier("inceptiontime")) == VIBRATION_DEFAULTS
    assert _settings(FaultClassifier(method=VIBRATION_DEFAULTS["method"])) == VIBRATION_DEFAULTS


def test_explicit_arguments_win_over_the_defaults():
    classifier = FaultClassifier("inceptiontime", window_length=None, epochs=3, representation="envelope")
    assert classifier.window_length is None and classifier.window_stride is None
    assert classifier.params == {"representation": "envelope", "epochs": 3, "batch_size": 32}
    # A window length without a stride keeps the old rule (half the window), not the default stride.
    assert FaultClassifier("inceptiontime", window_length=1000).window_stride == 500
    assert FaultClassifier("inceptiontime", window_stride=512).window_length == 2048


@pytest.mark.parametrize("method", ["resnet", "wdcnn", "reprogram"])
def test_other_neural_methods_get_the_default_windows_but_keep_their_training_settings(method):
    classifier = FaultClassifier(method)
    assert (classifier.window_length, classifier.window_stride) == (VIBRATION_DEFAULTS["window_length"], VIBRATION_DEFAULTS["window_stride"])
    assert "epochs" not in classifier.params and "representation" not in classifier.params


def test_features_method_still_takes_whole_examples():
    classifier = FaultClassifier("features")
    assert METHOD_DEFAULTS["features"] == {}
    assert (classifier.window_length, classifier.window_stride, classifier.params) == (None, None, {})


def test_default_window_cuts_long_captures_and_leaves_short_examples_whole(tmp_path):
    X, y = bearing_waveforms({"inner": 6, "outer": 6}, length=4096, seed=3)
    long_model = FaultClassifier("inceptiontime", sampling_rate=FS, nf=4, epochs=1, calibrate=False).fit(X, y)
    windows, owners = long_model.predict_window_proba(X[:2])
    assert long_model.window_length == 2048 and len(owners) == 2 * 3  # starts 0, 1024, 2048 per capture
    short, short_y = bearing_waveforms({"inner": 6, "outer": 6}, length=1024, seed=4)
    short_model = FaultClassifier("inceptiontime", sampling_rate=FS, nf=4, epochs=1, calibrate=False).fit(short, short_y)
    assert short_model.window_length is None  # a default window longer than the examples would refuse them
    restored = FaultClassifier.load(short_model.save(tmp_path / "short"))
    assert restored.window_length is None
    np.testing.assert_allclose(restored.predict_proba(short), short_model.predict_proba(short), atol=1e-6)
    # An explicit window longer than the examples is still refused, naming it.
    with pytest.raises(ValueError, match="window_length=2048"):
        FaultClassifier("inceptiontime", window_length=2048, nf=4, epochs=1, calibrate=False).fit(short, short_y)


def test_model_saved_before_the_defaults_loads_with_its_own_settings(tmp_path):
    """Old config.json: window_length null (one input per example) and only the params passed then."""
    X, y = bearing_waveforms({"inner": 8, "outer": 8}, length=4096, seed=5)
    old = FaultClassifier("inceptiontime", window_length=None, sampling_rate=FS, nf=4, epochs=1, calibrate=False).fit(X, y)
    folder = old.save(tmp_path / "old")
    document = json.loads((folder / "config.json").read_text())
    document["config"]["params"] = {"nf": 4, "epochs": 1}  # what a pre-defaults save held
    assert document["config"]["window_length"] is None and document["config"]["window_stride"] is None
    (folder / "config.json").write_text(json.dumps(document))
    restored = FaultClassifier.load(folder)
    assert restored.window_length is None and restored.window_stride is None
    assert restored.params == {"nf": 4, "epochs": 1}  # no batch_size/representation added
    np.testing.assert_allclose(restored.predict_proba(X), old.predict_proba(X), atol=1e-6)
    _, owners = restored.predict_window_proba(X)
    assert len(owners) == len(X)  # still one input per 4096-sample example, not 2048-sample windows
