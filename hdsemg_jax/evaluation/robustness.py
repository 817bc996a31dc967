"""Robustness to electrode shifts: a trained model scored on its test trials shifted on the grid.

`shift_robustness(predict, trials, shifts, ...)` shifts every test frame by each
``(dr, dc)`` in ``shifts`` (`hdsemg_jax.preprocessing.grid_shift.shift_grid`:
circular along the axis that wraps round the forearm, a translation with zero
fill otherwise) and scores the predictions exactly as an unshifted evaluation
does (`evaluate.predict_trials` and `evaluate.score`), so the row for ``(0, 0)``
equals the plain scores. A curve of accuracy against shift tells how far an
array may slip before the model fails; `hdsemg_jax.reporting.robustness_plot`
draws it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Sequence

import jax
import numpy as np

from hdsemg_jax.data.trials import Trial
from hdsemg_jax.evaluation import evaluate
from hdsemg_jax.preprocessing import grid_shift


def parse_shifts(value: Any, key: str = 'eval.shifts') -> list[tuple[int, int]]:
  """Shifts as ``[(dr, dc), ...]`` from ``((dr, dc), ...)`` or strings ``'dr:dc'``.

  Strings suit a command line (``--config.eval.shifts=0:0,1:0,-1:0``); the order
  is kept and repeats are dropped. Raises ValueError naming ``key``.
  """
  if isinstance(value, str):
    value = [v for v in value.split(',') if v.strip()]
  out: list[tuple[int, int]] = []
  for item in value or ():
    try:
      if isinstance(item, str):
        rows, cols = item.split(':')
      else:
        rows, cols = item
      shift = (int(rows), int(cols))
      if shift != (float(rows), float(cols)):
        raise ValueError
    except (TypeError, ValueError):
      raise ValueError(f"{key}: {item!r} is not a shift; expected (rows, columns) or 'rows:columns', "
                       "e.g. '1:0'.") from None
    if shift not in out:
      out.append(shift)
  return out


def shift_range(max_rows: int, max_cols: int) -> list[tuple[int, int]]:
  """Every shift with ``|dr| <= max_rows`` and ``|dc| <= max_cols``, rows major."""
  return [(r, c) for r in range(-max_rows, max_rows + 1) for c in range(-max_cols, max_cols + 1)]


def shift_trials(trials: Sequence[Trial], shift: Sequence[int],
                 wrap_axis: int | None) -> list[Trial]:
  """The trials with every frame shifted by ``shift`` (labels and identities unchanged)."""
  return [dataclasses.replace(t, emg=grid_shift.shift_grid(t.emg, shift, wrap_axis))
          for t in trials]


def shift_robustness(predict: Callable[[np.ndarray], jax.Array], trials: Sequence[Trial],
                     shifts: Iterable[Sequence[int]], vote_windows: Sequence[int],
                     num_classes: int, wrap_axis: int | None,
                     batch_size: int) -> list[dict[str, Any]]:
  """Scores of ``predict`` on ``trials`` shifted by each shift.

  Args:
    predict: frames ``(B, H, W)`` -> classes ``(B,)``, as `evaluate.predict_frames` calls it.
    trials: the test trials (frames labelled -1 are neither run nor scored).
    shifts: ``(dr, dc)`` pairs; `parse_shifts` reads config values.
    vote_windows: majority-vote windows (frames), as ``eval.vote_windows``.
    num_classes: classes of the dataset.
    wrap_axis: `DatasetSpec.wrap_axis`.
    batch_size: frames per `predict` call (``eval.batch_size``).

  Returns:
    One dict per shift, in order: ``shift`` ``[dr, dc]`` plus everything
    `evaluate.score` returns (``frame_accuracy``, ``balanced_accuracy``,
    ``vote_accuracy`` keyed by window as a string, ``confusion_matrix``).
  """
  results = []
  for shift in shifts:
    shift = (int(shift[0]), int(shift[1]))
    moved = shift_trials(trials, shift, wrap_axis)
    predictions = evaluate.predict_trials(predict, moved, batch_size)
    scores = evaluate.score(predictions, moved, num_classes, vote_windows)
    results.append({'shift': list(shift), **scores})
  return results


def mean_shift_scores(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
  """Per shift, the rows' ``shift_scores`` accuracies averaged over folds and seeds.

  Every row must hold the same shifts in the same order (one run's rows do).
  """
  out = []
  for i, first in enumerate(rows[0]['shift_scores']):
    scores = [r['shift_scores'][i] for r in rows]
    out.append({'shift': first['shift'],
                'frame_accuracy': float(np.mean([s['frame_accuracy'] for s in scores])),
                'vote_accuracy': {w: float(np.mean([s['vote_accuracy'][w] for s in scores]))
                                  for w in first['vote_accuracy']}})
  return out
