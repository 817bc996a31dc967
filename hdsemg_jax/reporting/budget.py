"""Accuracy against the training frames a network saw: the budget curve of a suite's runs.

A point is one run (one model label on one protocol, e.g.
``all_convnet@step-s16``): its training frames seen per fold and seed,
``steps per epoch x batch x epochs`` with steps = usable training frames after
``train.frame_stride`` // batch (the last partial batch is dropped), against each
metric's mean ± sample std over folds of the per-fold seed means, as the suite's
table has them. Points of one learning-rate schedule (``train.lr_schedule``) make
one curve per protocol. Where a curve flattens, more compute buys nothing.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import numpy as np

from hdsemg_jax.classical import models as classical_models
from hdsemg_jax.reporting import compare, formatting, results

METRICS = ('decision_accuracy/1', 'decision_accuracy/150')


@dataclasses.dataclass(frozen=True)
class BudgetPoint:
  """One run's training budget and what it scored (values in [0, 1])."""
  protocol: str
  label: str
  schedule: str
  frame_stride: int
  epochs: int
  batch_size: int
  frames_seen: float  # Mean over folds (and seeds) of the training frames seen.
  train_seconds: float  # Median over the run's rows.
  values: dict[str, tuple[float, float]]  # metric -> (mean, std) over folds.
  folds: int


def frames_seen(row: results.ResultRow, epochs: int, batch_size: int) -> int:
  """Training frames one (fold, seed) saw: whole batches of its strided frames, per epoch."""
  return int(row['num_train_frames']) // batch_size * batch_size * epochs


def budget_points(runs: Sequence[compare.Run],
                  metrics: Sequence[str] = METRICS) -> list[BudgetPoint]:
  """A point per network run (classical and chance runs have no training budget), sorted by
  protocol, schedule and frames seen."""
  points = []
  for run in runs:
    train = run.config.get('train', {})
    if classical_models.is_classical(str(run.config.get('model', {}).get('name'))):
      continue
    epochs, batch = int(train['epochs']), int(train['batch_size'])
    values, folds = {}, 0
    for metric in metrics:
      per_fold = compare.fold_seed_values(run, metric)
      folds = len(per_fold)
      means = np.array([np.mean(list(seeds.values())) for seeds in per_fold.values()])
      values[metric] = (float(np.mean(means)),
                        float(np.std(means, ddof=1)) if means.size > 1 else float('nan'))
    points.append(BudgetPoint(
        protocol=run.protocol or str(run.config['protocol']['name']), label=run.label,
        schedule=str(train.get('lr_schedule', 'step')),
        frame_stride=int(train['frame_stride']), epochs=epochs, batch_size=batch,
        frames_seen=float(np.mean([frames_seen(r, epochs, batch) for r in run.rows])),
        train_seconds=float(np.median([float(r.get('train_seconds', np.nan))
                                       for r in run.rows])),
        values=values, folds=folds))
  return sorted(points, key=lambda p: (p.protocol, p.schedule, p.frames_seen))


def budget_markdown(points: Sequence[BudgetPoint], title: str = '') -> str:
  """The points as one Markdown table: budget, cost, and each metric in %."""
  metrics = list(points[0].values) if points else list(METRICS)
  header = ['protocol (folds)', 'schedule', 'frame stride', 'epochs', 'frames seen / run',
            'train s / run', *[f'{m} (%)' for m in metrics]]
  body = [[f'{p.protocol} ({p.folds})', p.schedule, str(p.frame_stride), str(p.epochs),
           f'{p.frames_seen:,.0f}', f'{p.train_seconds:.1f}',
           *[f'{100 * p.values[m][0]:.1f}' + (f' ± {100 * p.values[m][1]:.1f}'
                                              if np.isfinite(p.values[m][1]) else '')
             for m in metrics]] for p in points]
  lines = [f'# {title}', ''] if title else []
  lines += ['Mean ± sample std over folds of the per-fold seed means; frames seen: per fold '
            'and seed (whole batches x epochs); train s: median per fold and seed.', '']
  lines += formatting.markdown_table(header, body)
  return '\n'.join(lines) + '\n'


def budget_figure(points: Sequence[BudgetPoint], title: str = '') -> Any:
  """Each metric against frames seen (log axis), a panel per protocol, a line per schedule."""
  from matplotlib import ticker  # Only reports with a figure need matplotlib.
  from matplotlib.figure import Figure
  protocols = sorted({p.protocol for p in points})
  metrics = list(points[0].values) if points else list(METRICS)
  figure = Figure(figsize=(4.5 * max(len(protocols), 1), 3.6), layout='constrained')
  axes = figure.subplots(1, max(len(protocols), 1), squeeze=False)[0]
  for ax, protocol in zip(axes, protocols):
    schedules = sorted({p.schedule for p in points if p.protocol == protocol})
    for schedule, (style, marker) in zip(schedules, (('-', 'o'), ('--', 's'), (':', '^'))):
      line = [p for p in points if p.protocol == protocol and p.schedule == schedule]
      x = [p.frames_seen for p in line]
      for k, metric in enumerate(metrics):  # A colour per metric, a line style per schedule.
        mean = np.array([100 * p.values[metric][0] for p in line])
        std = np.nan_to_num(np.array([100 * p.values[metric][1] for p in line]))
        ax.errorbar(x, mean, yerr=std, color=f'C{k}', linestyle=style, marker=marker,
                    capsize=3, label=f'{schedule}, {metric.replace("decision_accuracy/", "@")}')
    ax.set_xscale('log')
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f'{v / 1000:g}k'))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel('training frames seen per run')
    ax.set_ylabel('accuracy (%)')
    ax.set_title(protocol)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  if title:
    figure.suptitle(title)
  return figure


def write_budget_report(points: Sequence[BudgetPoint], out_dir: str,
                        title: str = '') -> dict[str, str]:
  """``budget_curve.md`` and ``budget_curve.png`` in ``out_dir``, each written whole."""
  if not points:
    raise ValueError(f'no finished network runs under {out_dir} for a budget curve.')
  paths = {'markdown': os.path.join(out_dir, 'budget_curve.md'),
           'figure': os.path.join(out_dir, 'budget_curve.png')}
  results.write_atomic(paths['markdown'], budget_markdown(points, title))
  figure = budget_figure(points, title)
  partial = paths['figure'] + '.partial'
  figure.savefig(partial, dpi=120, format='png')
  os.replace(partial, paths['figure'])
  return paths
