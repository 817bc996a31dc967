"""A physiologically motivated generator of HD-sEMG gesture trials.

Each gesture recruits a few muscle "hot spots": smooth 2-D blobs on the
electrode grid whose columns wrap around the forearm. The recorded signal is
spatially smeared, band-limited (20-380 Hz) noise whose local amplitude follows
that activation, plus white sensor noise. Variation is layered as in real
recordings:

* subject: anatomy (every hot spot moved, resized and re-weighted, the whole
  pattern rotated around the forearm) and skin/electrode gains;
* session: electrode-array displacement (rotation and shift) and channel gains;
* trial: effort level, a slow amplitude drift and a small positional jitter.

So frames of one session are easy to tell apart, another session is harder and
another subject is hardest, as with CapgMyo. Everything is a pure function of
the seed and the trial's identity, so generation is deterministic.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage, signal

_SPOTS_PER_GESTURE = 3
# Seed-sequence tags keep the random streams of the layers independent.
_GESTURE, _SUBJECT, _SESSION, _TRIAL = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class Spots:
  """Hot spots of one gesture: centre row/column, widths and weights, shape (K,)."""
  row: np.ndarray
  col: np.ndarray
  row_width: np.ndarray
  col_width: np.ndarray
  weight: np.ndarray


@dataclasses.dataclass(frozen=True)
class SignalModel:
  """Generates trials for a grid of ``grid_shape`` electrodes at ``sampling_rate_hz``."""
  seed: int
  num_gestures: int
  grid_shape: tuple[int, int] = (16, 8)
  sampling_rate_hz: float = 1000.0
  band_hz: tuple[float, float] = (20.0, 380.0)
  amplitude: float = 0.15
  sensor_noise: float = 0.01

  def _rng(self, *tags: int) -> np.random.Generator:
    return np.random.default_rng([self.seed, *tags])

  def gesture_spots(self, gesture: int) -> Spots:
    height, width = self.grid_shape
    rng = self._rng(_GESTURE, gesture)
    k = _SPOTS_PER_GESTURE
    return Spots(
        row=rng.uniform(1.5, height - 2.5, k),
        col=rng.uniform(0, width, k),
        row_width=rng.uniform(1.5, 3.0, k),
        col_width=rng.uniform(0.7, 1.4, k),
        weight=rng.uniform(0.5, 1.0, k),
    )

  def subject_spots(self, subject: int, gesture: int) -> Spots:
    """The gesture's hot spots in this subject's anatomy."""
    base = self.gesture_spots(gesture)
    rng = self._rng(_SUBJECT, subject, gesture)
    rotation = self._rng(_SUBJECT, subject).uniform(-1.5, 1.5)  # Whole arm, all gestures.
    k = _SPOTS_PER_GESTURE
    return Spots(
        row=base.row + rng.uniform(-2.0, 2.0, k),
        col=base.col + rotation + rng.uniform(-1.2, 1.2, k),
        row_width=base.row_width * rng.uniform(0.8, 1.25, k),
        col_width=base.col_width * rng.uniform(0.8, 1.25, k),
        weight=base.weight * rng.uniform(0.6, 1.4, k),
    )

  def channel_gain(self, *tags: int, spread: float) -> np.ndarray:
    """A smooth log-normal gain map over the grid."""
    rng = self._rng(*tags)
    field = ndimage.gaussian_filter(rng.normal(size=self.grid_shape), sigma=1.0, mode='wrap')
    field /= field.std() + 1e-12
    return np.exp(spread * field)

  def activation_map(self, spots: Spots, row_shift: float, col_shift: float) -> np.ndarray:
    """Amplitude of the activity under each electrode, shape ``grid_shape``."""
    height, width = self.grid_shape
    rows = np.arange(height)[:, None, None]
    cols = np.arange(width)[None, :, None]
    d_row = (rows - (spots.row + row_shift)) / spots.row_width
    d_col = cols - (spots.col + col_shift)
    d_col = (d_col + width / 2) % width - width / 2  # Columns wrap around the forearm.
    d_col = d_col / spots.col_width
    blobs = spots.weight * np.exp(-0.5 * (d_row**2 + d_col**2))
    return 0.05 + blobs.sum(axis=-1)

  def trial(self, subject: int, session: int, gesture: int, trial: int,
            num_frames: int, displacement: tuple[int, int] | None = None) -> np.ndarray:
    """One trial, float32 ``(num_frames, H, W)``.

    ``displacement = (dr, dc)`` replaces the session's random sub-electrode array
    displacement by a whole-electrode one: the activity moves by ``dr`` rows and
    ``dc`` columns (columns wrapping), so the session's activation pattern is the
    undisplaced one shifted as `hdsemg_jax.preprocessing.grid_shift.shift_grid`
    shifts frames, apart from what enters at the row edges (the array sees new
    skin there, not a fill value). Channel gains stay with the electrodes.
    ``None`` (default) keeps the random displacement, bit for bit as before.
    """
    session_rng = self._rng(_SESSION, subject, session)
    row_shift = session_rng.uniform(-0.8, 0.8)
    col_shift = session_rng.choice([-1, 1]) * session_rng.uniform(0.25, 0.5)
    if displacement is not None:
      # Drawn above all the same, so the gains below keep their random streams.
      row_shift, col_shift = float(displacement[0]), float(displacement[1])
    gain = (self.channel_gain(_SUBJECT, subject, 10_000, spread=0.25)
            * self.channel_gain(_SESSION, subject, session, 10_000, spread=0.2))

    rng = self._rng(_TRIAL, subject, session, gesture, trial)
    spots = self.subject_spots(subject, gesture)
    activation = self.activation_map(
        spots, row_shift + rng.uniform(-0.15, 0.15), col_shift + rng.uniform(-0.15, 0.15))
    effort = rng.uniform(0.7, 1.3)

    t = np.arange(num_frames) / self.sampling_rate_hz
    drift = 1.0 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t + rng.uniform(0, 2 * np.pi))

    # Band-limited, spatially smeared source activity with unit variance.
    warmup = 200  # Lets the causal filter settle before the kept frames.
    white = rng.normal(size=(num_frames + warmup, *self.grid_shape))
    smeared = ndimage.gaussian_filter(white, sigma=(0, 0.8, 0.8), mode=('nearest', 'nearest', 'wrap'))
    sos = signal.butter(4, self.band_hz, btype='bandpass', fs=self.sampling_rate_hz, output='sos')
    source = signal.sosfilt(sos, smeared, axis=0)[warmup:]
    source /= source.std() + 1e-12

    emg = (self.amplitude * effort * drift[:, None, None]) * (gain * activation) * source
    emg += self.sensor_noise * rng.normal(size=emg.shape)
    return emg.astype(np.float32)
