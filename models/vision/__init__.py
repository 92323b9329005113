"""Vision for inspection photos: a compact encoder, its classifier and the projector into the LM.

* ``ImageClassifier`` — the DESIGN.md image contract (``fit`` / ``predict`` / ``predict_proba`` /
  ``save`` / ``load``), ``method="cnn"`` (learned encoder) or ``"features"`` (classical baseline).
* ``VisionEncoder`` — the residual CNN; ``tokens`` gives ``[batch, tokens, feature_dim]``.
* ``VisionProjector`` — LLaVA-style MLP from image tokens to the LM's embedding width.
"""

from models.vision.classifier import ImageClassifier, ImageClassifierParams
from models.vision.encoder import VisionEncoder, configured_encoder_checkpoint
from models.vision.preprocessing import load_image_batch
from models.vision.projector import VisionProjector

__all__ = [
    "configured_encoder_checkpoint",
    "ImageClassifier", "ImageClassifierParams", "VisionEncoder", "VisionProjector", "load_image_batch"]
