"""PNG figures of results rows: per-fold accuracy, accuracy versus vote window, confusion.

``write_plots(rows, out_dir, title)`` draws, for the rows of one or more runs:

* ``per_fold.png``: per-fold mean over seeds of frame accuracy and the largest-window
  vote accuracy, error bars one sample std over seeds (none for a single seed);
* ``vote_windows.png``: accuracy versus majority-vote window (frames), mean over
  folds and seeds, error bars one sample std over the per-fold seed means;
* ``confusion_<protocol>.png``: confusion matrix summed over folds and seeds and
  row-normalised (each true class sums to 1), one per protocol.

Rows are grouped into series by ``series_key`` (default: the row's ``model``).
"""

from __future__ import annotations

import os
import re
import textwrap
from typing import Any, Callable, Sequence

import numpy as np
# Figures drawn on their own Agg canvas: no pyplot, so importing this module never changes
# the backend of a notebook or another program that has its own.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _figure(figsize: tuple[float, float]) -> tuple[Figure, Any]:
  fig = Figure(figsize=figsize)
  FigureCanvasAgg(fig)
  return fig, fig.add_subplot()


def _group(rows: Sequence[dict[str, Any]],
           key: Callable[[dict[str, Any]], Any]) -> dict[Any, list[dict[str, Any]]]:
  groups: dict[Any, list[dict[str, Any]]] = {}
  for row in rows:
    groups.setdefault(key(row), []).append(row)
  return groups


def _std(values: Sequence[float]) -> float:
  return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _windows(rows: Sequence[dict[str, Any]]) -> list[str]:
  """Vote windows present in every row, smallest first."""
  common = set.intersection(*(set(r.get('vote_accuracy') or {}) for r in rows)) if rows else set()
  return sorted(common, key=lambda w: (int(w), w) if w.isdigit() else (1 << 30, w))


def _safe(name: Any) -> str:
  return re.sub(r'[^A-Za-z0-9_.-]+', '_', str(name)).strip('_') or 'unnamed'


def _save(fig: Any, path: str) -> str:
  # Written beside and renamed, like the other results files: no half-written PNG on a kill.
  fig.tight_layout()
  tmp = f'{path}.tmp{os.getpid()}.png'
  fig.savefig(tmp, dpi=120)
  os.replace(tmp, path)
  return path


def plot_per_fold(rows: Sequence[dict[str, Any]], path: str, title: str,
                  series_key: Callable[[dict[str, Any]], Any]) -> str:
  windows = _windows(rows)
  metrics = [('frame accuracy', lambda r: r['frame_accuracy'])]
  if windows:
    w = windows[-1]
    metrics.append((f'vote accuracy ({w} frames)', lambda r, w=w: r['vote_accuracy'][w]))
  folds = list(dict.fromkeys(r['fold'] for r in rows))
  groups = _group(rows, series_key)
  series = [(g, name, get) for g in groups for name, get in metrics]
  fig, ax = _figure((max(6.0, 0.6 * len(folds) * len(series) ** 0.5 + 3), 4))
  width = 0.8 / len(series)
  x = np.arange(len(folds))
  for i, (g, name, get) in enumerate(series):
    by_fold = _group(groups[g], lambda r: r['fold'])
    means = [100 * np.mean([get(r) for r in by_fold.get(f, [])]) if f in by_fold else np.nan
             for f in folds]
    stds = [100 * _std([get(r) for r in by_fold[f]]) if f in by_fold else 0.0 for f in folds]
    label = name if len(groups) == 1 else f'{g}: {name}'
    ax.bar(x + (i - (len(series) - 1) / 2) * width, means, width, yerr=stds, capsize=2,
           label=label)
  ax.set_xticks(x, [str(f) for f in folds], rotation=90 if len(folds) > 12 else 0)
  ax.set_xlabel('fold')
  ax.set_ylabel('accuracy (%)')
  ax.set_ylim(0, 100)
  ax.set_title(f'{title}\nmean over seeds, error bars: sample std over seeds', fontsize=9)
  ax.legend(fontsize=7, loc='lower right')
  return _save(fig, path)


def plot_vote_windows(rows: Sequence[dict[str, Any]], path: str, title: str,
                      series_key: Callable[[dict[str, Any]], Any],
                      sampling_rate_hz: float | None = None) -> str | None:
  windows = [w for w in _windows(rows) if w.isdigit()]
  if not windows:
    return None
  fig, ax = _figure((6, 4.4))
  for g, group in _group(rows, series_key).items():
    by_fold = _group(group, lambda r: r['fold'])
    # Seeds averaged within a fold first, so the spread is between folds, as in the tables.
    fold_means = np.array([[np.mean([r['vote_accuracy'][w] for r in fold_rows]) for w in windows]
                           for fold_rows in by_fold.values()])
    std = (np.std(fold_means, axis=0, ddof=1) if len(fold_means) > 1
           else np.zeros(len(windows)))
    ax.errorbar([int(w) for w in windows], 100 * fold_means.mean(axis=0), yerr=100 * std,
                marker='o', capsize=3, label=str(g))
  ax.set_xscale('log')
  ax.set_xticks([int(w) for w in windows], windows)
  ax.minorticks_off()
  ax.set_xlabel('majority-vote window (frames)')
  if sampling_rate_hz:
    rate = float(sampling_rate_hz)
    top = ax.secondary_xaxis('top', functions=(lambda f: f * 1000.0 / rate,
                                               lambda ms: ms * rate / 1000.0))
    top.set_xticks([int(w) * 1000.0 / rate for w in windows],
                   [f'{int(w) * 1000.0 / rate:g}' for w in windows])
    top.minorticks_off()
    top.set_xlabel(f'window (ms at {rate:g} Hz)', fontsize=8)
  ax.set_ylabel('accuracy (%)')
  ax.set_title(f'{title}\nmean over folds, error bars: sample std over folds', fontsize=9)
  ax.legend(fontsize=7)
  return _save(fig, path)


def plot_confusion(rows: Sequence[dict[str, Any]], path: str, title: str,
                   class_names: Sequence[str] | None = None) -> str | None:
  matrices = [np.asarray(r['confusion_matrix'], float) for r in rows if r.get('confusion_matrix')]
  if not matrices or len({m.shape for m in matrices}) != 1:
    return None  # Nothing to draw, or runs of different class counts: no single matrix.
  total = np.sum(matrices, axis=0)
  norm = total / np.maximum(total.sum(axis=1, keepdims=True), 1)
  n = len(norm)
  names = list(class_names) if class_names is not None and len(class_names) == n else None
  wide = max(len(c) for c in names) if names else 2
  fig, ax = _figure((max(4.0, 0.35 * n + 2 + 0.06 * wide), max(3.5, 0.35 * n + 1.5 + 0.06 * wide)))
  image = ax.imshow(norm, vmin=0, vmax=1, cmap='Blues')
  fig.colorbar(image, ax=ax, fraction=0.046)
  if n <= 20:
    for i in range(n):
      for j in range(n):
        ax.text(j, i, f'{norm[i, j]:.2f}', ha='center', va='center', fontsize=6,
                color='white' if norm[i, j] > 0.5 else 'black')
  ticks = list(range(n) if n <= 20 or names else range(0, n, 5))
  ax.set_xticks(ticks, [names[i] for i in ticks] if names else ticks,
                rotation=45 if names else 0, ha='right' if names else 'center', fontsize=7)
  ax.set_yticks(ticks, [names[i] for i in ticks] if names else ticks, fontsize=7)
  ax.set_xlabel('predicted class')
  ax.set_ylabel('true class')
  ax.set_title(textwrap.fill(title, 40) + f'\nsummed over {len(matrices)} fold/seed runs, '
               'row-normalised', fontsize=8)
  return _save(fig, path)


def write_plots(rows: Sequence[dict[str, Any]], out_dir: str, title: str, *,
                series_key: Callable[[dict[str, Any]], Any] | None = None,
                prefix: str = '', class_names: Sequence[str] | None = None,
                synthetic: bool = False, sampling_rate_hz: float | None = None) -> list[str]:
  """Writes the PNGs of ``rows`` into ``out_dir``; returns the paths written.

  ``class_names`` label the confusion matrices; ``sampling_rate_hz`` adds the vote
  windows in milliseconds; ``synthetic`` marks every title.
  """
  if synthetic:
    title += ' (synthetic data)'
  if not rows:
    return []
  key = series_key or (lambda r: r.get('model', ''))
  os.makedirs(out_dir, exist_ok=True)
  paths = [plot_per_fold(rows, os.path.join(out_dir, f'{prefix}per_fold.png'), title, key)]
  paths.append(plot_vote_windows(rows, os.path.join(out_dir, f'{prefix}vote_windows.png'), title,
                                 key, sampling_rate_hz))
  groups = len({key(r) for r in rows})
  for protocol, group in _group(rows, lambda r: r.get('protocol', '')).items():
    for g, series_rows in _group(group, key).items():
      name = _safe(protocol) + (f'_{_safe(g)}' if groups > 1 else '')
      # The run's title already names its protocol and model where it has one.
      extra = [x for x in (protocol, g if groups > 1 else '') if x and str(x) not in title]
      paths.append(plot_confusion(
          series_rows, os.path.join(out_dir, f'{prefix}confusion_{name}.png'),
          ', '.join([title, *map(str, extra)]), class_names))
  return [p for p in paths if p]
