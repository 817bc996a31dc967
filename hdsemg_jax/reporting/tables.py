"""Markdown tables of a run: a row per fold, a column per seed, means and stds."""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

METRICS: dict[str, Callable[[dict[str, Any]], float]] = {
    'frame_accuracy': lambda r: r['frame_accuracy'],
    'balanced_accuracy': lambda r: r['balanced_accuracy'],
}


def metric_getter(metric: str) -> Callable[[dict[str, Any]], float]:
  """Reads ``metric`` from a row: a top-level name or ``vote_accuracy/W``."""
  if metric in METRICS:
    return METRICS[metric]
  if metric.startswith('vote_accuracy/'):
    window = metric.split('/', 1)[1]
    return lambda r: r['vote_accuracy'][window]
  raise ValueError(f'unknown metric {metric!r} (frame_accuracy, balanced_accuracy, '
                   'vote_accuracy/W).')


def mean_std(values: Sequence[float]) -> str:
  """``mean ± sample std`` in percent; the std is omitted for a single value."""
  values = [v for v in values if not math.isnan(v)]
  if not values:
    return 'n/a'
  mean = 100 * float(np.mean(values))
  if len(values) == 1:
    return f'{mean:.1f}'
  return f'{mean:.1f} ± {100 * float(np.std(values, ddof=1)):.1f}'


def seed_fold_table(rows: Sequence[dict[str, Any]], metric: str) -> str:
  """Folds as rows, seeds as columns, mean ± std over seeds (last column) and folds (last row)."""
  get = metric_getter(metric)
  folds = list(dict.fromkeys(r['fold'] for r in rows))
  seeds = sorted({r['seed'] for r in rows})
  cell = {(r['fold'], r['seed']): get(r) for r in rows}
  header = ['fold', *[f'seed {s}' for s in seeds], 'mean ± std (seeds)']
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for fold in folds:
    values = [cell.get((fold, s), math.nan) for s in seeds]
    shown = ['' if math.isnan(v) else f'{100 * v:.1f}' for v in values]
    lines.append(f'| {fold} | ' + ' | '.join(shown) + f' | {mean_std(values)} |')
  per_seed = [mean_std([cell[(f, s)] for f in folds if (f, s) in cell]) for s in seeds]
  fold_means = [float(np.mean([cell[(f, s)] for s in seeds if (f, s) in cell])) for f in folds]
  lines.append('| **mean ± std (folds)** | ' + ' | '.join(per_seed) + f' | {mean_std(fold_means)} |')
  return '\n'.join(lines)


def mixed_config_note(rows: Sequence[dict[str, Any]]) -> str:
  """A warning naming the (fold, seed)s of each config when ``rows`` come from several.

  A run continued with ``--allow_config_change`` holds rows of more than one
  config; its table must say so. Empty when all rows share one config hash.
  """
  by_hash: dict[str, list[str]] = {}
  for r in rows:
    config_hash = (r.get('provenance') or {}).get('config_hash', '?')
    by_hash.setdefault(config_hash, []).append(f'{r["fold"]}/seed {r["seed"]}')
  if len(by_hash) < 2:
    return ''
  groups = '; '.join(f'config {h[:12]}: {", ".join(pairs)}' for h, pairs in by_hash.items())
  return (f'**Rows of {len(by_hash)} different configs** (the run was continued with '
          f'--allow_config_change; compare them with care): {groups}.\n\n')


def run_report(rows: Sequence[dict[str, Any]], *, title: str, synthetic: bool,
               metrics: Sequence[str]) -> str:
  """The ``results.md`` of a run: one table per metric, accuracies in percent."""
  data_note = ('**Synthetic data** (`synthetic_hdsemg`): these numbers say nothing about real '
               'recordings.\n\n' if synthetic else '')
  parts = [f'# {title}\n', data_note, mixed_config_note(rows)]
  for metric in metrics:
    parts.append(f'## {metric} (%)\n\n{seed_fold_table(rows, metric)}\n')
  return '\n'.join(parts)
