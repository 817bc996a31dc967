"""Label-free electrode-shift alignment: undo a displaced array before a model sees it.

A model trained on one session keeps a statistic of its training inputs; on a new
session whose array sits a few electrodes away, `estimate_shift` tries every
whole-electrode shift within ``max_shift`` and picks the one under which the new
session's statistic best matches the kept one; `align` applies it to the new
frames (it is `grid_shift.shift_grid`).

Like AdaBN this is **transductive**: it reads the unlabelled inputs of the test
trials before scoring them. It never reads a label, and it only moves electrodes
(no parameter of the model changes).

Two statistics, both from per-electrode RMS about each recording's own mean (DC
offsets, e.g. flexemg's ~35 mV ADC offset, stay with the hardware and are not
activity), in log units (a channel's gain becomes an additive offset):

* `coactivation` (the one to keep with a model): over short windows of
  consecutive frames, the correlation between every two electrodes of their log
  RMS, after removing each window's mean over the grid (overall effort). Which
  electrodes rise and fall together is a property of the muscles under them, and
  a correlation is unchanged by any per-channel gain. On `synthetic_hdsemg/shifted`
  (session 1 against each of the 6 displaced sessions, ``max_shift=(3, 4)``) it
  finds every imposed shift.
* `activation_map`: the z-scored mean log RMS map ``(H, W)``, where activity is
  on average. Simple and easy to plot, but channel gains that differ between
  sessions pull it towards the wrong shift (on the same data: 1 of 6 right).

Either statistic is compared by Pearson correlation over the electrodes that the
two grids share: along the grid axis that wraps round the forearm shifts are
circular and every electrode is compared; along another axis the electrodes a
translation vacates are left out rather than compared as fill.
"""

from __future__ import annotations

import itertools
from typing import Sequence, Union

import numpy as np

from hdsemg_jax.preprocessing import grid_shift

# Frames per window of `coactivation`: 25 ms at 1 kHz, short enough for many windows
# per trial; the log RMS of a short window is noisy but the noise averages out.
WINDOW = 25
# Two shifts whose scores differ by less than this are tied (float noise).
_TIE_TOLERANCE = 1e-9

Frames = Union[np.ndarray, Sequence[np.ndarray]]


def _recordings(frames) -> list[np.ndarray]:
  """``frames`` as a list of float64 ``(N, H, W)`` arrays of one grid shape."""
  arrays = [frames] if hasattr(frames, 'ndim') else list(frames)
  out, shape = [], None
  for x in arrays:
    x = np.asarray(x, np.float64)
    if x.ndim != 3:
      raise ValueError(f'frames of shape {x.shape}: expected (N, H, W).')
    if shape is not None and x.shape[1:] != shape:
      raise ValueError(f'frames of grid {x.shape[1:]} among frames of grid {shape}.')
    shape = x.shape[1:]
    out.append(x)
  return out


def _log(rms: np.ndarray) -> np.ndarray:
  # A floor far below any live channel keeps a dead (flat) electrode finite.
  floor = 1e-3 * float(np.median(rms)) + 1e-30
  return np.log(np.maximum(rms, floor))


def _zscore(x: np.ndarray) -> np.ndarray:
  std = x.std()
  return (x - x.mean()) / std if std > 0 else np.zeros_like(x)


def activation_map(frames: Frames) -> np.ndarray:
  """The z-scored mean log RMS map of ``frames``: float64 ``(H, W)``, mean 0, std 1 over the grid.

  Args:
    frames: ``(N, H, W)``, or a sequence of such arrays (one per recording, e.g.
      per trial); each is centred on its own per-electrode mean before the RMS is
      pooled. Labels are never needed.

  Raises:
    ValueError: no frame, frames not ``(N, H, W)``, or grid shapes that differ.
  """
  arrays = _recordings(frames)
  count = sum(len(x) for x in arrays)
  if not count:
    raise ValueError('activation_map: no frames.')
  power = sum(np.sum((x - x.mean(axis=0))**2, axis=0) for x in arrays if len(x))
  return _zscore(_log(np.sqrt(power / count)))


def coactivation(frames: Frames, window: int = WINDOW) -> np.ndarray:
  """How the electrodes' activity co-varies: float64 ``(H, W, H, W)``, a correlation matrix.

  Each recording is centred on its per-electrode mean and cut into consecutive
  ``window``-frame windows (a shorter tail is dropped); per window the log RMS of
  every electrode, minus its mean over the grid. Entry ``[r1, c1, r2, c2]`` is the
  correlation across windows of electrodes ``(r1, c1)`` and ``(r2, c2)``: unchanged
  by per-channel gains and by the overall effort level.

  Args:
    frames: ``(N, H, W)``, or a sequence of such arrays (one per recording, e.g.
      per trial), each in time order. Labels are never needed.
    window: frames per window (``adapt.align.window``).

  Raises:
    ValueError: ``window`` < 2, fewer than 3 windows in all, or bad shapes.
  """
  if int(window) != window or window < 2:
    raise ValueError(f'window={window!r}: expected a whole number of frames >= 2.')
  window = int(window)
  features = []
  for x in _recordings(frames):
    n = len(x) // window
    if not n:
      continue
    x = x - x.mean(axis=0)
    rms = np.sqrt(np.mean(x[:n * window].reshape(n, window, *x.shape[1:])**2, axis=1))
    features.append(rms)
  if sum(len(f) for f in features) < 3:
    raise ValueError(f'coactivation: fewer than 3 windows of {window} frames.')
  f = _log(np.concatenate(features))
  height, width = f.shape[1:]
  f = f.reshape(len(f), height * width)
  f = f - f.mean(axis=1, keepdims=True)  # Overall effort: every electrode at once.
  f = f - f.mean(axis=0)
  f = f / (np.linalg.norm(f, axis=0) + 1e-30)
  return (f.T @ f).reshape(height, width, height, width)


def _check_max_shift(max_shift: Sequence[int], grid_shape: tuple[int, int],
                     wrap_axis: int | None) -> tuple[int, int]:
  grid_shift.check_wrap_axis(wrap_axis)
  if len(max_shift) != 2 or any(int(m) != m or m < 0 for m in max_shift):
    raise ValueError(f'max_shift={max_shift!r}: expected two whole numbers >= 0 (rows, columns).')
  for axis, m in enumerate(max_shift):
    # A translation must leave at least 2 electrodes in common, or no correlation exists.
    if axis != wrap_axis and m > grid_shape[axis] - 2:
      raise ValueError(f'max_shift={tuple(max_shift)!r}: {int(m)} {grid_shift.GRID_AXES[axis]} '
                       f'leaves fewer than 2 of the {grid_shape[axis]} in common.')
  return int(max_shift[0]), int(max_shift[1])


def candidate_shifts(max_shift: Sequence[int], grid_shape: tuple[int, int],
                     wrap_axis: int | None) -> list[tuple[int, int]]:
  """Every distinct shift within ``±max_shift``, in the order ties are broken.

  Along ``wrap_axis`` shifts that coincide modulo the axis length are one shift,
  kept as its smallest |value| (the positive one when both signs are as small).
  Order: smallest ``|dr| + |dc|`` first, then lexicographic ``(dr, dc)``.
  """
  limits = _check_max_shift(max_shift, grid_shape, wrap_axis)
  per_axis = []
  for axis, m in enumerate(limits):
    values = list(range(-m, m + 1))
    if axis == wrap_axis:
      size = grid_shape[axis]
      canonical = {}
      for v in sorted(values, key=lambda v: (abs(v), -v)):
        canonical.setdefault(v % size, v)
      values = sorted(canonical.values())
    per_axis.append(values)
  return sorted(itertools.product(*per_axis), key=lambda s: (abs(s[0]) + abs(s[1]), s))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
  a, b = a - a.mean(), b - b.mean()
  denominator = np.sqrt(np.sum(a * a) * np.sum(b * b))
  return float(np.sum(a * b) / denominator) if denominator > 0 else -np.inf


def shift_scores(source: np.ndarray, target: np.ndarray, max_shift: Sequence[int],
                 wrap_axis: int | None) -> dict[tuple[int, int], float]:
  """How well ``target`` shifted by each candidate shift matches ``source``.

  Both are `activation_map` ``(H, W)`` or both `coactivation` ``(H, W, H, W)``
  statistics. The score is the Pearson correlation over the electrodes the two
  share (for co-activations: over the pairs of distinct shared electrodes). Keys
  are in `candidate_shifts` order.
  """
  source = np.asarray(source, np.float64)
  target = np.asarray(target, np.float64)
  if source.shape != target.shape or source.ndim not in (2, 4) or (
      source.ndim == 4 and source.shape[:2] != source.shape[2:]):
    raise ValueError(f'statistics of shapes {source.shape} and {target.shape}: expected both '
                     '(H, W) or both (H, W, H, W).')
  grid = source.shape[:2]
  distinct = ~np.eye(grid[0] * grid[1], dtype=bool).reshape(*grid, *grid)
  scores = {}
  for shift in candidate_shifts(max_shift, grid, wrap_axis):
    # Shifting a grid of ones with fill 0 marks which electrodes still hold target values.
    shared = grid_shift.shift_grid(np.ones(grid), shift, wrap_axis) > 0
    if source.ndim == 2:
      moved, mask = grid_shift.shift_grid(target, shift, wrap_axis), shared
    else:
      # Both electrodes of a pair move: shift the last two axes, then the first two.
      moved = grid_shift.shift_grid(target, shift, wrap_axis)
      moved = np.moveaxis(grid_shift.shift_grid(np.moveaxis(moved, (0, 1), (2, 3)), shift,
                                                wrap_axis), (2, 3), (0, 1))
      mask = shared[:, :, None, None] & shared[None, None] & distinct
    scores[shift] = _pearson(source[mask], moved[mask])
  return scores


def estimate_shift(source: np.ndarray, target_frames: Frames, max_shift: Sequence[int],
                   wrap_axis: int | None, window: int = WINDOW) -> tuple[int, int]:
  """The shift ``(dr, dc)`` that `align` should apply to ``target_frames`` to match ``source``.

  Args:
    source: the statistic kept from the training frames: `coactivation`
      (recommended) or `activation_map`; the target's is computed the same way.
    target_frames: unlabelled frames of the new recording(s), as the statistic
      takes them (a sequence of trials, each in time order). Only inputs are read,
      never labels.
    max_shift: ``(rows, columns)``, the largest |shift| tried along each axis.
    wrap_axis: the grid axis that wraps round the forearm (0, 1) or ``None``.
    window: frames per window when ``source`` is a `coactivation`.

  Returns:
    The candidate with the highest `shift_scores`; ties (within 1e-9) go to the
    smallest ``|dr| + |dc|``, then to the lexicographically smallest ``(dr, dc)``.
    Python ints; ``(0, 0)`` when nothing beats no shift.
  """
  source = np.asarray(source)
  target = (coactivation(target_frames, window) if source.ndim == 4
            else activation_map(target_frames))
  scores = shift_scores(source, target, max_shift, wrap_axis)
  best = max(scores.values())
  # scores is in tie-break order, so the first within tolerance of the best wins.
  return next(s for s, v in scores.items() if v >= best - _TIE_TOLERANCE)


def align(frames, shift: Sequence[int], wrap_axis: int | None, fill: grid_shift.Fill = 0.0):
  """``frames`` (``(..., H, W)``, NumPy or JAX) shifted by ``shift``: `grid_shift.shift_grid`."""
  return grid_shift.shift_grid(frames, shift, wrap_axis, fill)
