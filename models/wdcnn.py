"""WDCNN: a 1-D CNN with a wide first kernel for raw vibration windows (Zhang et al., Sensors 2017).

The first convolution has a wide kernel (64 samples) and a large stride (16): it acts as a
learned filter bank that also downsamples 16x, so the rest of the network (small 3-sample
kernels) runs on 128 steps instead of 2048. That keeps a training step on a 2048-sample window
about a hundred times cheaper than InceptionTime on the same input, which is what makes raw
waveforms affordable on the 2-core development CPU.

Two options matter for transfer between loads (``FaultClassifier(method="wdcnn")``):

``per_window_norm``  standardise every window by its own mean and standard deviation inside the
                     network: the vibration level changes with load (CWRU IR_021 has RMS 0.53 at
                     1797 rpm and 0.44 at 1772 rpm), the waveform's shape much less.
``noise_std``        training-time augmentation: Gaussian noise of this many window standard
                     deviations (plus a random amplitude scale of ±``scale_jitter``), active only
                     in ``train()`` mode, like dropout.
``spectral_jitter_db`` training-time random equaliser (see :class:`WaveformAugment`).
"""

from __future__ import annotations

import torch
from torch import nn


class WaveformAugment(nn.Module):
    """Random amplitude scale and additive noise per window; identity in eval mode."""

    def __init__(self, *, noise_std: float = 0.0, scale_jitter: float = 0.0, spectral_jitter_db: float = 0.0, n_knots: int = 8) -> None:
        super().__init__()
        if noise_std < 0 or not 0 <= scale_jitter < 1 or spectral_jitter_db < 0:
            raise ValueError(f"need noise_std >= 0, 0 <= scale_jitter < 1, spectral_jitter_db >= 0; got {noise_std}, {scale_jitter}, {spectral_jitter_db}")
        self.noise_std = noise_std
        self.scale_jitter = scale_jitter
        self.spectral_jitter_db = spectral_jitter_db
        self.n_knots = n_knots

    def _random_equaliser(self, x: torch.Tensor) -> torch.Tensor:
        """Filter each window by a smooth random gain curve (``n_knots`` gains uniform in
        ±``spectral_jitter_db``, linearly interpolated over frequency): a change of load or mounting
        changes how strongly each structural resonance is excited, not the impact rate."""
        spectrum = torch.fft.rfft(x, dim=-1)
        knots = (2 * torch.rand(x.shape[0], 1, self.n_knots) - 1) * self.spectral_jitter_db / 20.0
        gains = torch.nn.functional.interpolate(knots, size=spectrum.shape[-1], mode="linear", align_corners=True)
        return torch.fft.irfft(spectrum * torch.pow(10.0, gains), n=x.shape[-1], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or (self.noise_std == 0 and self.scale_jitter == 0 and self.spectral_jitter_db == 0):
            return x
        if self.spectral_jitter_db:
            x = self._random_equaliser(x)
        if self.scale_jitter:
            x = x * (1 + self.scale_jitter * (2 * torch.rand(x.shape[0], 1, 1) - 1))
        if self.noise_std:
            x = x + self.noise_std * x.std(dim=-1, keepdim=True) * torch.randn_like(x)
        return x


class PerWindowNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean(dim=-1, keepdim=True)) / (x.std(dim=-1, keepdim=True) + 1e-6)


def _block(n_in: int, n_out: int, *, kernel: int, stride: int = 1, padding: int = 0) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(n_in, n_out, kernel, stride=stride, padding=padding), nn.BatchNorm1d(n_out), nn.ReLU(), nn.MaxPool1d(2)
    )


class WDCNN(nn.Module):
    """``[B, C, L] -> [B, n_classes]`` (L >= 1024; designed for 2048-sample windows)."""

    def __init__(
        self,
        n_channels: int,
        n_classes: int,
        *,
        first_kernel: int = 64,
        first_stride: int = 16,
        width: int = 64,
        per_window_norm: bool = True,
        noise_std: float = 0.0,
        scale_jitter: float = 0.0,
        spectral_jitter_db: float = 0.0,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.augment = WaveformAugment(noise_std=noise_std, scale_jitter=scale_jitter, spectral_jitter_db=spectral_jitter_db)
        self.normalise = PerWindowNorm() if per_window_norm else nn.Identity()
        self.features = nn.Sequential(
            _block(n_channels, 16, kernel=first_kernel, stride=first_stride, padding=(first_kernel - first_stride) // 2),
            _block(16, 32, kernel=3, padding=1),
            _block(32, width, kernel=3, padding=1),
            _block(width, width, kernel=3, padding=1),
            _block(width, width, kernel=3, padding=1),
            # Global average pooling instead of the paper's flatten: the classifier then does not
            # depend on where in the window an impact happened, and any window length works.
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, 100), nn.ReLU(), nn.Linear(100, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalise(self.augment(x))))
