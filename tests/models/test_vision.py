"""Vision encoder, projector and the ImageClassifier contract, on synthetic tiles made here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from models.metrics.vision import defect_scores, score_image_classifier
from models.vision import ImageClassifier, VisionEncoder, VisionProjector, configured_encoder_checkpoint, load_image_batch
from models.vision.augment import AugmentationSettings, augment_batch
from models.vision.boosting import BoostedTrees, export_boosted_trees
from models.vision.features import surface_features

# Small settings so a CNN trains in seconds; the real-data run uses the defaults.
FAST_CNN = {"image_size": 64, "widths": [16, 24, 32, 48], "epochs": 12, "batch_size": 16, "channels": 1,
            "learning_rate": 5e-3}


def make_tile(rng: np.random.Generator, defect: str | None, *, height: int, width: int) -> np.ndarray:
    """A grey tile with a lighting gradient and grain; ``blowhole`` adds a dark disc, ``crack`` a dark line."""
    rows, cols = np.mgrid[0:height, 0:width]
    image = 150 + 30 * cols / width + rng.normal(0, 6, (height, width))
    if defect == "blowhole":
        cy, cx = rng.integers(height // 4, 3 * height // 4), rng.integers(width // 4, 3 * width // 4)
        radius = max(height, width) * rng.uniform(0.06, 0.09)
        image[(rows - cy) ** 2 + (cols - cx) ** 2 < radius**2] -= 90
    elif defect == "crack":
        row = rng.integers(height // 4, 3 * height // 4)
        thickness = max(2, height // 25)
        image[row : row + thickness, width // 6 : 5 * width // 6] -= 90
    return np.clip(image, 0, 255).astype(np.uint8)


def make_tiles(count: int, seed: int, classes: tuple[str, ...] = ("free", "blowhole", "crack")):
    rng = np.random.default_rng(seed)
    labels = [classes[i % len(classes)] for i in range(count)]
    images = [
        make_tile(rng, None if label == "free" else label, height=int(rng.integers(70, 110)), width=int(rng.integers(60, 100)))
        for label in labels
    ]
    return images, labels


@pytest.fixture(scope="module")
def tiles():
    return make_tiles(60, seed=1)


@pytest.fixture(scope="module")
def held_out_tiles():
    return make_tiles(30, seed=2)


@pytest.fixture(scope="module")
def trained_cnn(tiles) -> ImageClassifier:
    images, labels = tiles
    return ImageClassifier("cnn", **FAST_CNN).fit(images, labels)


# ------------------------------------------------------------------ preprocessing
def test_load_image_batch_resizes_any_size_and_mixes_paths_and_arrays(tmp_path: Path):
    path = tmp_path / "tile.png"
    Image.fromarray(np.full((50, 80), 200, np.uint8)).save(path)
    batch = load_image_batch([path, np.zeros((300, 120), np.uint8), np.zeros((40, 41, 3), np.uint8)], size=32, channels=1)
    assert batch.shape == (3, 1, 32, 32) and batch.dtype == np.uint8
    assert batch[0].min() == 200


def test_load_image_batch_turns_colour_into_luminance_and_grey_into_three_channels():
    red = np.zeros((10, 10, 3), np.uint8)
    red[..., 0] = 255
    assert load_image_batch([red], size=8, channels=1)[0, 0, 0, 0] == 76  # ITU-R 601: 0.299 × 255
    grey = load_image_batch([np.full((10, 10), 90, np.uint8)], size=8, channels=3)
    assert grey.shape == (1, 3, 8, 8) and (grey == 90).all()


def test_pad_mode_keeps_aspect_ratio_with_edge_replication():
    wide = np.zeros((10, 40), np.uint8)
    wide[:, 20:] = 255
    padded = load_image_batch([wide], size=40, resize_mode="pad", channels=1)[0, 0]
    # The content stays 4:1 (10 rows high, centred); the margins copy the nearest row.
    assert (padded[:, 0] == 0).all() and (padded[:, -1] == 255).all()
    assert (padded[0] == padded[15]).all()


@pytest.mark.parametrize(
    ("image", "error", "message"),
    [
        (np.zeros((5, 5), np.float32), TypeError, "image 1: arrays must be uint8"),
        (np.zeros((5, 5, 2), np.uint8), ValueError, "image 1: expected H×W grey"),
        ("/no/such/tile.jpg", FileNotFoundError, "image 1: no such file"),
    ],
)
def test_load_image_batch_names_the_bad_image(image, error, message):
    with pytest.raises(error, match=message):
        load_image_batch([np.zeros((5, 5), np.uint8), image], size=8, channels=1)


def test_load_image_batch_rejects_a_corrupt_file(tmp_path: Path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="image 0: cannot decode"):
        load_image_batch([broken], size=8, channels=1)


# ------------------------------------------------------------------ encoder, projector, augmentation
def test_encoder_gives_tokens_and_pooled_features():
    encoder = VisionEncoder(in_channels=3, widths=(8, 16, 24), token_grid=2)
    pixels = torch.rand(2, 3, 64, 48)
    assert encoder.tokens(pixels).shape == (2, 4, 24)
    assert encoder.pooled(pixels).shape == (2, 48)
    with pytest.raises(ValueError, match=r"expected pixels \[batch, 3"):
        encoder.tokens(torch.rand(2, 1, 64, 64))


def test_projector_maps_tokens_to_lm_width_and_trains_end_to_end():
    encoder = VisionEncoder(in_channels=1, widths=(8, 16), token_grid=2)
    projector = VisionProjector(encoder.feature_dim, lm_hidden_size=576)
    embeds = projector(encoder.tokens(torch.rand(3, 1, 32, 32)))
    assert embeds.shape == (3, 4, 576)
    embeds.pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in projector.parameters())
    assert encoder.stem[0].weight.grad is not None and encoder.stem[0].weight.grad.abs().sum() > 0


def test_projector_rejects_tokens_of_the_wrong_width():
    with pytest.raises(ValueError, match=r"expected image tokens \[batch, tokens, 16\]"):
        VisionProjector(16, 64)(torch.rand(1, 4, 8))


def test_augmentation_keeps_shape_and_range_and_is_seeded():
    pixels = torch.rand(4, 1, 32, 32)
    first, _ = augment_batch(pixels, generator=torch.Generator().manual_seed(3))
    second, _ = augment_batch(pixels, generator=torch.Generator().manual_seed(3))
    assert first.shape == pixels.shape and 0 <= first.min() and first.max() <= 1
    assert torch.equal(first, second) and not torch.allclose(first, pixels)


def test_augmentation_moves_masks_with_their_images():
    pixels = torch.zeros(1, 1, 32, 32)
    pixels[..., 10:14, 20:24] = 1.0
    moved, moved_mask = augment_batch(
        pixels, masks=pixels.clone(), generator=torch.Generator().manual_seed(5),
        settings=AugmentationSettings(gamma_range=(1.0, 1.0), max_contrast_change=0.0, noise_std=0.0),
    )
    assert torch.allclose(moved, moved_mask, atol=1e-3)  # relighting clamps black to 1e-4
    assert not torch.allclose(moved_mask, pixels)


def test_surface_features_respond_to_a_dark_blob():
    rng = np.random.default_rng(0)
    clean = surface_features(make_tile(rng, None, height=128, width=128))
    holed = surface_features(make_tile(rng, "blowhole", height=128, width=128))
    assert clean.shape == holed.shape and np.isfinite(holed).all()
    skew, first_percentile = 2, 4  # positions in the feature vector
    assert holed[skew] < clean[skew] - 1  # a dark defect gives the intensities a long dark tail
    assert holed[first_percentile] < clean[first_percentile] - 1


# ------------------------------------------------------------------ ImageClassifier contract
def test_cnn_learns_small_defects_on_held_out_tiles(trained_cnn, held_out_tiles):
    images, labels = held_out_tiles
    accuracy = (trained_cnn.predict(images) == np.asarray(labels)).mean()
    assert accuracy >= 0.8, accuracy


def test_predict_proba_columns_follow_classes(trained_cnn, held_out_tiles):
    images, _ = held_out_tiles
    probabilities = trained_cnn.predict_proba(images[:5])
    assert trained_cnn.classes_ == ["blowhole", "crack", "free"]
    assert probabilities.shape == (5, 3) and np.allclose(probabilities.sum(axis=1), 1)
    assert list(trained_cnn.predict(images[:5])) == [trained_cnn.classes_[i] for i in probabilities.argmax(axis=1)]


def test_cnn_round_trips_through_safetensors_and_json(trained_cnn, held_out_tiles, tmp_path: Path):
    images, _ = held_out_tiles
    folder = trained_cnn.save(tmp_path / "cnn")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((folder / "config.json").read_text())["classes"] == trained_cnn.classes_
    restored = ImageClassifier.load(folder)
    np.testing.assert_allclose(restored.predict_proba(images), trained_cnn.predict_proba(images), atol=1e-6)


def test_image_tokens_feed_the_projector(trained_cnn, held_out_tiles):
    tokens = trained_cnn.image_tokens(held_out_tiles[0][:3])
    assert tokens.shape == (3, 16, 48)
    assert VisionProjector(48, 64)(tokens).shape == (3, 16, 64)


def test_encoder_checkpoint_initialises_and_freezes_the_encoder(trained_cnn, tiles, tmp_path: Path):
    folder = trained_cnn.save(tmp_path / "pretrained")
    images, labels = tiles
    fine_tuned = ImageClassifier("cnn", **{**FAST_CNN, "epochs": 1}, encoder_checkpoint=str(folder), freeze_encoder=True)
    fine_tuned.fit(images[:20], labels[:20])
    for name, value in trained_cnn.network_.encoder.state_dict().items():
        assert torch.equal(value, fine_tuned.network_.encoder.state_dict()[name]), name


def test_configured_encoder_checkpoint_comes_from_the_environment(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("PHM_VISION_ENCODER_CHECKPOINT", raising=False)
    assert configured_encoder_checkpoint() is None
    monkeypatch.setenv("PHM_VISION_ENCODER_CHECKPOINT", str(tmp_path))
    assert configured_encoder_checkpoint() == tmp_path
    monkeypatch.setenv("PHM_VISION_ENCODER_CHECKPOINT", str(tmp_path / "gone.safetensors"))
    with pytest.raises(FileNotFoundError, match="PHM_VISION_ENCODER_CHECKPOINT points to"):
        configured_encoder_checkpoint()


def test_encoder_checkpoint_of_another_architecture_is_refused(trained_cnn, tiles, tmp_path: Path):
    folder = trained_cnn.save(tmp_path / "pretrained")
    images, labels = tiles
    other = ImageClassifier("cnn", **{**FAST_CNN, "widths": [8, 16, 32, 64]}, encoder_checkpoint=str(folder))
    with pytest.raises(ValueError, match="does not fit"):
        other.fit(images[:10], labels[:10])


def make_masks(images: list[np.ndarray]) -> list[np.ndarray]:
    """Defect masks of the synthetic tiles: the pixels darkened well below the lit surface."""
    return [np.where(image < 100, 255, 0).astype(np.uint8) for image in images]


def test_masks_teach_the_encoder_where_defects_are(tiles, held_out_tiles):
    images, labels = tiles
    model = ImageClassifier("cnn", **FAST_CNN).fit(images, labels, masks=make_masks(images))
    test_images, test_labels = held_out_tiles
    defective = [image for image, label in zip(test_images, test_labels) if label != "free"]
    pixels = torch.from_numpy(model._pixels(defective)).float() / 255
    truth = torch.from_numpy(model._masks(make_masks(defective), len(defective))[0]).float()
    with torch.no_grad():
        finest = model.network_.forward_with_masks(pixels)[1][0]
    inside = torch.nn.functional.adaptive_max_pool2d(truth, finest.shape[-2:]) > 0.5
    # The finest mask head scores defect cells above clean ones on tiles it never saw.
    assert finest[inside].mean() > finest[~inside].mean() + 1.0


def test_fit_rejects_a_mask_list_of_the_wrong_length(tiles):
    images, labels = tiles
    with pytest.raises(ValueError, match="got 4 images but 3 masks"):
        ImageClassifier("cnn", **FAST_CNN).fit(images[:4], labels[:4], masks=[None, None, None])


@pytest.fixture(scope="module")
def tile_features(tiles, held_out_tiles):
    """Hand-crafted features of the synthetic tiles, computed once for the feature-model tests."""
    model = ImageClassifier("features")
    return model._feature_matrix(tiles[0]), model._feature_matrix(held_out_tiles[0])


@pytest.mark.parametrize("feature_classifier", ["boosting", "logistic"])
def test_features_baseline_learns_and_round_trips(feature_classifier, tiles, held_out_tiles, tile_features, tmp_path: Path):
    model = ImageClassifier("features", feature_classifier=feature_classifier)
    # Features are computed once by the fixture (they are the slow part); fit/predict then go
    # through the same private steps as fit(images) / predict_proba(images).
    model.classes_ = sorted(set(tiles[1]))
    model._fit_features(tile_features[0], np.searchsorted(model.classes_, tiles[1]))
    probabilities = model._features_proba(tile_features[1])
    predicted = np.asarray(model.classes_)[probabilities.argmax(axis=1)]
    assert (predicted == np.asarray(held_out_tiles[1])).mean() >= 0.8
    restored = ImageClassifier.load(model.save(tmp_path / "features"))
    np.testing.assert_allclose(restored._features_proba(tile_features[1]), probabilities)


def test_features_baseline_takes_images_through_the_contract(tiles):
    images, labels = tiles
    model = ImageClassifier("features", feature_classifier="logistic").fit(images[:24], labels[:24])
    assert model.predict_proba(images[24:27]).shape == (3, 3)


@pytest.mark.parametrize(
    ("labels", "message"),
    [(["a", "b"], "got 3 images but 2 labels"), (["a", "a", "a"], "at least two classes"), (["a", "", "b"], "label 1")],
)
def test_fit_rejects_bad_labels(labels, message):
    images = [np.zeros((8, 8), np.uint8)] * 3
    with pytest.raises((ValueError, TypeError), match=message):
        ImageClassifier("features").fit(images, labels)


def test_unfitted_model_and_unknown_options_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="not fitted"):
        ImageClassifier().predict([np.zeros((8, 8), np.uint8)])
    with pytest.raises(TypeError, match="unknown ImageClassifier parameters \\['imagesize'\\]"):
        ImageClassifier(imagesize=10)
    with pytest.raises(FileNotFoundError, match="not a saved ImageClassifier"):
        ImageClassifier.load(tmp_path)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_exported_trees_reproduce_scikit_learn_probabilities(n_classes):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 6))
    features[rng.random(features.shape) < 0.05] = np.nan  # missing values take the learned side
    labels = (np.nan_to_num(features[:, 0]) + np.nan_to_num(features[:, 1]) > 0).astype(int) + 2 * (n_classes > 2) * (
        np.nan_to_num(features[:, 2]) > 0
    )
    with threadpool_limits(limits=1, user_api="openmp"):
        booster = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(features, labels)
    trees = BoostedTrees.from_arrays(export_boosted_trees(booster).to_arrays())
    np.testing.assert_allclose(trees.predict_proba(features), booster.predict_proba(features), atol=1e-12)


# ------------------------------------------------------------------ metrics
def test_defect_auroc_uses_one_minus_normal_probability():
    classes = ["crack", "free"]
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])
    scores = score_image_classifier(["crack", "crack", "free", "free"], probabilities, classes, normal_class="free")
    assert scores.defect_auroc == 1.0 and scores.accuracy == 0.75
    assert np.allclose(defect_scores(probabilities, classes, "free"), [0.9, 0.4, 0.3, 0.2])
    with pytest.raises(ValueError, match="normal class 'ok'"):
        defect_scores(probabilities, classes, "ok")
