"""Which windows a windowed classifier decides, and how they are scored.

The windows are exactly those of majority voting (`hdsemg_jax.evaluation.voting`),
so a network's w-frame vote and a classifier's w-frame decision are scored over
the same set of windows. Within each segment ``[start, stop)`` of consecutive
usable frames with one label (`voting.segments`):

* if the segment has at least ``w`` frames, one window ends at every frame
  ``e`` with ``e >= start + w - 1``: the frames ``[e - w + 1, e]``;
* a segment shorter than ``w`` is one window over the whole segment.

No window crosses a label change or an unusable (-1) frame. A window's true
label is its segment's; accuracy is correct windows over all windows, pooled
over the segments of all trials, as for the vote.

Training windows follow the same rule on the training trials (each window's
label is its segment's), every ``stride``-th of each trial in order.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hdsemg_jax.evaluation import voting


def windows(labels: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
  """``(starts, stops)`` (stop exclusive) of every decided window of one trial, in order."""
  if int(window) < 1:
    raise ValueError(f'eval.vote_windows must be positive; got {window}.')
  w = int(window)
  starts, stops = [], []
  for start, stop in voting.segments(labels):
    if stop - start < w:
      starts.append(np.array([start]))
      stops.append(np.array([stop]))
    else:
      ends = np.arange(start + w, stop + 1)
      starts.append(ends - w)
      stops.append(ends)
  if not starts:
    return np.zeros(0, np.int64), np.zeros(0, np.int64)
  return np.concatenate(starts).astype(np.int64), np.concatenate(stops).astype(np.int64)


def training_windows(labels: np.ndarray, window: int,
                     stride: int) -> tuple[np.ndarray, np.ndarray]:
  """Every ``stride``-th window of `windows` (the first one included)."""
  if int(stride) < 1:
    raise ValueError(f'model.train_window_stride must be >= 1; got {stride}.')
  starts, stops = windows(labels, window)
  return starts[::int(stride)], stops[::int(stride)]


def window_labels(labels: np.ndarray, starts: np.ndarray) -> np.ndarray:
  """The true label of each window (its segment's, read at its first frame)."""
  return np.asarray(labels)[np.asarray(starts, np.int64)]


def accuracy(decisions: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> float:
  """Correct windows over all windows, pooled over trials (NaN if there are none)."""
  correct = sum(int(np.sum(np.asarray(d) == np.asarray(y))) for d, y in
                zip(decisions, labels, strict=True))
  total = sum(np.asarray(y).size for y in labels)
  return correct / total if total else float('nan')
