"""Frames out of trials: what training sees and what adaptation reads."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hdsemg_jax.data.trials import Trial


def training_frames(trials: Sequence[Trial], stride: int) -> tuple[np.ndarray, np.ndarray]:
  """Usable frames of ``trials`` (every ``stride``-th of each trial) and their labels."""
  if stride < 1:
    raise ValueError(f'train.frame_stride must be >= 1; got {stride}.')
  xs, ys = [], []
  for t in trials:
    keep = np.flatnonzero(t.label >= 0)[::stride]
    xs.append(t.emg[keep])
    ys.append(t.label[keep])
  return np.concatenate(xs), np.concatenate(ys)


def target_frames(trials: Sequence[Trial]) -> np.ndarray:
  """Every usable frame (``label >= 0``) of ``trials``; labels select, they are not returned."""
  return np.concatenate([t.emg[t.label >= 0] for t in trials])
