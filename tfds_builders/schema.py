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

import dataclasses

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


@dataclasses.dataclass(frozen=True)
class GridGeometry:
  """How a builder's electrode grid lies on the forearm: facts from its documentation.

  A builder states it as its class attribute ``GRID_GEOMETRY``, which the library
  reads from the code (`hdsemg_jax.data.trials.read_builder`), so datasets
  prepared before the geometry was recorded load with it, unchanged and unrebuilt.
  New builds also copy it into the metadata (``wrap_axis``,
  ``electrode_spacing_mm``) so the prepared files describe themselves.

  Attributes:
    wrap_axis: the grid axis (0 rows, 1 columns) whose electrodes go round the
      forearm and close on themselves, so that a rotation of the array is a
      circular shift along it; ``None`` when neither does or the sources do not say.
    electrode_spacing_mm: centre-to-centre distance of neighbouring electrodes
      along rows and along columns, ``(between rows, between columns)``;
      ``None`` when the sources do not say.
  """
  wrap_axis: int | None = None
  electrode_spacing_mm: tuple[float, float] | None = None

  def __post_init__(self):
    if self.wrap_axis not in (None, 0, 1):
      raise ValueError(f'wrap_axis={self.wrap_axis!r}: expected None, 0 (rows) or 1 (columns).')
    if self.electrode_spacing_mm is not None and len(self.electrode_spacing_mm) != 2:
      raise ValueError(f'electrode_spacing_mm={self.electrode_spacing_mm!r}: expected '
                       '(between rows, between columns) or None.')

  def metadata(self) -> dict:
    """The JSON-ready metadata entries of this geometry."""
    spacing = self.electrode_spacing_mm
    return {'wrap_axis': self.wrap_axis,
            'electrode_spacing_mm': None if spacing is None else [float(v) for v in spacing]}


def trial_metadata(*, class_names: list[str], grid_shape: tuple[int, int],
                   sampling_rate_hz: float, geometry: GridGeometry | None = None,
                   **extra) -> tfds.core.MetadataDict:
  """Dataset-level metadata the library reads: class names, grid, sampling rate, geometry."""
  return tfds.core.MetadataDict(
      class_names=list(class_names),
      grid_shape=list(grid_shape),
      sampling_rate_hz=float(sampling_rate_hz),
      **(geometry.metadata() if geometry is not None else {}),
      **extra,
  )
