"""PNG figure of accuracy against electrode shift (`hdsemg_jax.evaluation.robustness`).

``accuracy_vs_shift(results, path)`` draws, for one or more series (e.g. models or
adaptation methods), per-frame accuracy (solid) and each majority-vote window's
accuracy (dashed, one shade per window) against the shift. When every shift moves
along one axis only, the x axis is that shift in electrodes; otherwise each
``(dr, dc)`` is a labelled tick, in the order given.

Drawn on an explicit Agg canvas (`matplotlib.figure.Figure`), so the global
backend is neither read nor changed.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

Results = Sequence[Mapping[str, Any]]


def _x_axis(shifts: list[tuple[int, int]]) -> tuple[np.ndarray, str, list[str] | None]:
  """x positions, axis label and tick labels (None: numeric axis) for ``shifts``."""
  rows_move = any(r for r, _ in shifts)
  cols_move = any(c for _, c in shifts)
  if not cols_move:
    return np.array([r for r, _ in shifts], float), 'shift (rows, electrodes)', None
  if not rows_move:
    return np.array([c for _, c in shifts], float), 'shift (columns, electrodes)', None
  return np.arange(len(shifts), dtype=float), 'shift (rows, columns)', [
      f'{r},{c}' for r, c in shifts]


def accuracy_vs_shift(results: Results | Mapping[str, Results], path: str | os.PathLike,
                      title: str = 'Accuracy against electrode shift') -> str:
  """Writes the figure of ``results`` to ``path`` (PNG) and returns the path.

  Args:
    results: `robustness.shift_robustness` output, or a mapping series name ->
      such output (all series over the same shifts in the same order).
    path: the PNG to write (its folder must exist).
    title: the figure's title.

  Raises:
    ValueError: no results, or series over different shifts.
  """
  series = dict(results) if isinstance(results, Mapping) else {'': list(results)}
  if not series or not all(series.values()):
    raise ValueError('accuracy_vs_shift: no results to draw.')
  shift_lists = {name: [tuple(int(v) for v in r['shift']) for r in rs]
                 for name, rs in series.items()}
  shifts = next(iter(shift_lists.values()))
  if any(s != shifts for s in shift_lists.values()):
    raise ValueError('accuracy_vs_shift: every series must cover the same shifts in the same '
                     f'order; got {shift_lists}.')
  order = np.arange(len(shifts))
  x, xlabel, ticks = _x_axis(shifts)
  if ticks is None:
    order = np.argsort(x, kind='stable')  # A numeric axis draws left to right.

  figure = Figure(figsize=(7.0, 4.2), dpi=120)
  FigureCanvasAgg(figure)
  ax = figure.add_subplot(1, 1, 1)
  colours = [f'C{i}' for i in range(10)]
  for i, (name, rs) in enumerate(series.items()):
    colour = colours[i % len(colours)]
    prefix = f'{name}: ' if name else ''
    frame = np.array([r['frame_accuracy'] for r in rs])
    ax.plot(x[order], 100 * frame[order], '-o', color=colour, label=f'{prefix}per frame')
    windows = sorted(rs[0]['vote_accuracy'], key=int)
    for j, w in enumerate(windows):
      vote = np.array([r['vote_accuracy'][w] for r in rs])
      alpha = 1.0 - 0.6 * j / max(len(windows), 1)
      ax.plot(x[order], 100 * vote[order], '--s', color=colour, alpha=alpha, markersize=4,
              label=f'{prefix}vote {w}')
  if ticks is not None:
    ax.set_xticks(x)
    ax.set_xticklabels(ticks, rotation=45, ha='right')
  else:
    ax.set_xticks(np.unique(x))
  ax.set_xlabel(xlabel)
  ax.set_ylabel('accuracy (%)')
  ax.set_ylim(0, 100)
  ax.grid(alpha=0.3)
  ax.set_title(title)
  ax.legend(fontsize='small', loc='lower left')
  figure.tight_layout()
  path = os.fspath(path)
  figure.savefig(path)
  return path
