"""Trials as the library sees them: arrays plus their identity, read from TFDS.

Datasets are read with `tfds` data sources (array_record), so no TensorFlow is
needed. A trial's identity is ``(subject, session, part, trial)``, written as
``"subject-session-part-trial"`` in results.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Iterable, Sequence

import numpy as np

from tfds_builders import prepare as tfds_prepare

DatasetError = tfds_prepare.DatasetError


@dataclasses.dataclass(frozen=True)
class Trial:
  """One recorded trial: ``emg`` (T, H, W) float32 and per-frame ``label`` (T,) int32."""
  subject: int
  session: int
  part: str
  trial: int
  emg: np.ndarray = dataclasses.field(repr=False, compare=False)
  label: np.ndarray = dataclasses.field(repr=False, compare=False)
  # 1-based rank of this trial among the trials of its gesture in its (subject, session, part);
  # CapgMyo-style protocols split on it (odd repetitions train, even ones test).
  repetition: int = 0

  @property
  def id(self) -> str:
    return f'{self.subject}-{self.session}-{self.part}-{self.trial}'

  @property
  def gesture(self) -> int:
    """The most common usable label (-1 if none): the gesture of a one-gesture trial."""
    usable = self.label[self.label >= 0]
    return int(np.bincount(usable).argmax()) if usable.size else -1


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """What the model and protocols need to know about a dataset.

  ``wrap_axis`` (0 rows, 1 columns, ``None``) is the grid axis that goes round the
  forearm, along which electrode shifts are circular (`preprocessing.grid_shift`);
  ``electrode_spacing_mm`` is ``(between rows, between columns)``, ``None`` where
  the dataset's sources do not say. Both come from the builder's
  ``GRID_GEOMETRY`` (`tfds_builders.schema.GridGeometry`).
  """
  name: str
  version: str
  class_names: tuple[str, ...]
  grid_shape: tuple[int, int]
  sampling_rate_hz: float
  synthetic: bool
  wrap_axis: int | None = None
  electrode_spacing_mm: tuple[float, float] | None = None

  @property
  def num_classes(self) -> int:
    return len(self.class_names)


def number_repetitions(trials: Iterable[Trial]) -> list[Trial]:
  """Sorts trials by identity and fills in ``repetition``."""
  trials = sorted(trials, key=lambda t: (t.subject, t.session, t.part, t.trial))
  counters = collections.Counter()
  numbered = []
  for t in trials:
    group = (t.subject, t.session, t.part, t.gesture)
    counters[group] += 1
    numbered.append(dataclasses.replace(t, repetition=counters[group]))
  return numbered


def read_builder(builder) -> tuple[DatasetSpec, list[Trial]]:
  """Reads every trial of a prepared builder (all of its splits).

  The grid geometry comes from the builder's code (``GRID_GEOMETRY``) first: it
  documents the sensor, not the data, and datasets prepared before it was recorded
  hold none in their metadata. A builder without it falls back to its metadata
  (``wrap_axis``, ``electrode_spacing_mm``), else ``None``.
  """
  meta = builder.info.metadata or {}
  for key in ('class_names', 'grid_shape', 'sampling_rate_hz'):
    if key not in meta:
      raise DatasetError(f'{builder.info.full_name}: dataset metadata lacks {key!r}; '
                         'is this a builder of this project?')
  geometry = getattr(builder, 'GRID_GEOMETRY', None)
  if geometry is not None:
    wrap_axis, spacing = geometry.wrap_axis, geometry.electrode_spacing_mm
  else:
    wrap_axis, spacing = meta.get('wrap_axis'), meta.get('electrode_spacing_mm')
  if wrap_axis not in (None, 0, 1):
    raise DatasetError(f'{builder.info.full_name}: wrap_axis={wrap_axis!r}; expected None, 0 '
                       '(rows) or 1 (columns).')
  spec = DatasetSpec(
      name=builder.info.full_name.rsplit('/', 1)[0],
      version=str(builder.info.version),
      class_names=tuple(meta['class_names']),
      grid_shape=tuple(int(n) for n in meta['grid_shape']),
      sampling_rate_hz=float(meta['sampling_rate_hz']),
      synthetic=bool(meta.get('synthetic', False)),
      wrap_axis=None if wrap_axis is None else int(wrap_axis),
      electrode_spacing_mm=None if spacing is None else tuple(float(v) for v in spacing),
  )
  trials = []
  for split, source in builder.as_data_source().items():
    del split
    for i in range(len(source)):
      ex = source[i]
      part = ex['part']
      trials.append(Trial(
          subject=int(ex['subject']), session=int(ex['session']),
          part=part.decode() if isinstance(part, bytes) else str(part),
          trial=int(ex['trial']),
          emg=np.asarray(ex['emg'], np.float32), label=np.asarray(ex['label'], np.int32)))
  return spec, number_repetitions(trials)


def load(name: str, data_dir: str | None = None,
         manual_dir: str | None = None) -> tuple[DatasetSpec, list[Trial]]:
  """Prepares (first time only) and reads the dataset ``name``, e.g. ``'synthetic_hdsemg/small'``."""
  builder = tfds_prepare.prepare(name, data_dir=data_dir, manual_dir=manual_dir)
  return read_builder(builder)


def select(trials: Sequence[Trial], ids: Iterable[str]) -> list[Trial]:
  """The trials whose ids are in ``ids``, in ``trials`` order."""
  wanted = set(ids)
  return [t for t in trials if t.id in wanted]
