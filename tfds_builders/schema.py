"""The example schema every HD-sEMG builder of this project shares.

One example is one recorded trial:

* ``emg``: float32 ``(T, H, W)``, the frames in time order on the electrode grid.
* ``label``: int32 ``(T,)``, the 0-based class of each frame, ``-1`` for frames
  that must never be trained on or scored (class names live in the dataset info).
* ``subject``, ``session``, ``trial``: 1-based integers.
* ``part``: a short string naming a sub-recording of a session (e.g. flexemg's
  ``train``/``test`` folders), ``''`` where a dataset has none.

A trial's identity is ``(subject, session, part, trial)``.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

UNUSED_LABEL = -1


def trial_features(grid_shape: tuple[int, int], class_names: list[str]) -> tfds.features.FeaturesDict:
  """Returns the FeaturesDict of one trial for a ``grid_shape`` electrode grid."""
  height, width = grid_shape
  del class_names  # Kept in the dataset metadata; `label` holds -1 too, so no ClassLabel.
  return tfds.features.FeaturesDict({
      # BYTES encoding stores each array as one blob: several times faster to write than
      # TFDS's default value-by-value encoding, and decoded to the same arrays.
      'emg': tfds.features.Tensor(shape=(None, height, width), dtype=np.float32,
                                  encoding=tfds.features.Encoding.BYTES),
      'label': tfds.features.Tensor(shape=(None,), dtype=np.int32,
                                    encoding=tfds.features.Encoding.BYTES),
      'subject': np.int32,
      'session': np.int32,
      'trial': np.int32,
      'part': tfds.features.Text(),
  })


def trial_key(subject: int, session: int, part: str, trial: int) -> str:
  """The unique, deterministic example key of a trial."""
  return f'{subject:03d}-{session:03d}-{part or "-"}-{trial:03d}'


def trial_metadata(*, class_names: list[str], grid_shape: tuple[int, int],
                   sampling_rate_hz: float, **extra) -> tfds.core.MetadataDict:
  """Dataset-level metadata the library reads: class names, grid, sampling rate."""
  return tfds.core.MetadataDict(
      class_names=list(class_names),
      grid_shape=list(grid_shape),
      sampling_rate_hz=float(sampling_rate_hz),
      **extra,
  )
