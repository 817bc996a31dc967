"""Several runs side by side: a row per fold, a column per run, paired differences.

Each run is a workdir with ``config.json`` and ``results.jsonl``. A cell is the
mean ± sample std (ddof=1) over seeds of one metric for one fold; the summary row
is the mean ± sample std over folds of those per-fold means. Comparing two runs
pairs them by fold: the difference of their per-fold seed means, its mean over
folds and a Wilcoxon signed-rank test's two-sided p-value. Runs are only
comparable on the same folds and seeds; anything else is an error naming it.
Several protocols and models in one table (a benchmark) are `benchmark`'s.

Metrics are ``frame_accuracy``, ``balanced_accuracy``, ``vote_accuracy/W`` or
``decision_accuracy/W``: the accuracy of decisions made from W frames of
signal (a classifier's W-frame window; a network's W-frame majority vote, so
a network row without ``decision_accuracy`` is read from ``vote_accuracy``:
`results.decision_values`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from typing import Any, Callable, Hashable, Sequence

import numpy as np
from scipy import stats

from hdsemg_jax.reporting import formatting, results, tables

REPORT_STEM = 'report'


@dataclasses.dataclass(frozen=True)
class Run:
  """One workdir's results, labelled by a value of its config.

  ``protocol`` is the table row group of `benchmark.combine_runs`; empty: read from the
  run (`benchmark.run_protocol`).
  """
  path: str
  label: str
  config: dict[str, Any]
  rows: list[results.ResultRow]
  protocol: str = ''


@dataclasses.dataclass(frozen=True)
class Comparison:
  """Per-fold, per-seed values of one metric for several runs (same folds and seeds)."""
  metric: str
  labels: list[str]
  folds: list[Hashable]
  seeds: dict[Hashable, list[int]]  # Per fold.
  values: dict[str, dict[Hashable, np.ndarray]]  # label -> fold -> values over seeds.
  pair: tuple[str, str] | None = None  # (A, B): differences are B - A.
  diffs: np.ndarray | None = None  # Per fold, in the order of ``folds``.
  p_value: float | None = None

  def fold_means(self, label: str) -> np.ndarray:
    return np.array([float(np.mean(self.values[label][f])) for f in self.folds])


def config_value(config: dict[str, Any], dotted: str) -> Any:
  """``config['a']['b']`` for ``'a.b'``; a missing key is a KeyError naming the path."""
  value: Any = config
  for part in dotted.split('.'):
    if not isinstance(value, dict) or part not in value:
      raise KeyError(dotted)
    value = value[part]
  return value


def load_run(path: str, label_key: str = 'model.name') -> Run:
  """Reads a workdir's ``config.json`` and ``results.jsonl``; labels it by ``label_key``."""
  config_path = os.path.join(path, results.CONFIG_FILE)
  rows_path = os.path.join(path, results.RESULTS_FILE)
  for p in (config_path, rows_path):
    if not os.path.isfile(p):
      raise ValueError(f'run {path}: {os.path.basename(p)} not found.')
  config = results.read_json(config_path, 'the run config')
  try:
    label = config_value(config, label_key)
  except KeyError:
    raise ValueError(f'run {path}: config.json has no key {label_key!r} (--label_key).') from None
  rows = results.read_rows(rows_path)
  if not rows:
    raise ValueError(f'run {path}: {results.RESULTS_FILE} has no rows.')
  return Run(path=path, label=str(label), config=config, rows=rows)


def unique_labels(runs: Sequence[Run]) -> list[Run]:
  """Runs with distinct labels: a label shared by several runs gets its directory appended."""
  counts: dict[str, int] = {}
  for run in runs:
    counts[run.label] = counts.get(run.label, 0) + 1
  out = []
  for run in runs:
    if counts[run.label] > 1:
      run = dataclasses.replace(run, label=f'{run.label} ({os.path.normpath(run.path)})')
    out.append(run)
  if len({r.label for r in out}) != len(out):
    raise ValueError('two runs have the same label and directory: '
                     + ', '.join(r.label for r in out))
  return out


DECISION_METRIC = 'decision_accuracy/'


def metric_getter(metric: str) -> Callable[[results.ResultRow], float]:
  """Reads ``metric`` from a row: `tables.metric_getter`'s metrics or ``decision_accuracy/W``.

  A row without ``decision_accuracy`` (a network's) is read from its
  ``vote_accuracy`` (`results.decision_values`).
  """
  if metric.startswith(DECISION_METRIC):
    window = metric[len(DECISION_METRIC):]
    return lambda row: results.decision_values(row)[window]
  try:
    return tables.metric_getter(metric)
  except ValueError:
    raise ValueError(f'unknown metric {metric!r} (frame_accuracy, balanced_accuracy, '
                     'vote_accuracy/W, decision_accuracy/W).') from None


def fold_seed_values(run: Run, metric: str) -> dict[Hashable, dict[int, float]]:
  """fold -> seed -> metric of one run, folds in the order they first appear."""
  get = metric_getter(metric)
  values: dict[Hashable, dict[int, float]] = {}
  for row in run.rows:
    fold, seed = row.get('fold'), row.get('seed')
    if fold is None or seed is None:
      raise ValueError(f'run {run.path}: a results row lacks fold or seed.')
    try:
      value = float(get(row))
    except (KeyError, TypeError):
      windows = sorted((row.get('vote_accuracy') or {}), key=_window_order)
      raise ValueError(f'run {run.path}: fold {fold} seed {seed} has no {metric} '
                       f'(vote windows: {", ".join(windows) or "none"}).') from None
    seeds = values.setdefault(fold, {})
    if seed in seeds:
      # A rerun appended to the same workdir; which row counts would be a silent choice.
      raise ValueError(f'run {run.path}: fold {fold} seed {seed} appears more than once.')
    seeds[seed] = value
  return values


def _window_order(window: str) -> tuple[int, str]:
  return (int(window), window) if window.isdigit() else (1 << 30, window)


def check_matching(runs: Sequence[Run],
                   per_run: Sequence[dict[Hashable, dict[int, float]]]) -> None:
  """Raises naming the first fold or seed that one run has and another lacks."""
  for (a, va), (b, vb) in ((x, y) for x in zip(runs, per_run) for y in zip(runs, per_run)):
    if a is b:
      continue
    extra = [f for f in va if f not in vb]
    if extra:
      raise ValueError(f'run {a.label} ({a.path}) has folds {extra} that run {b.label} '
                       f'({b.path}) lacks; compare runs of the same folds.')
    for fold in va:
      extra_seeds = sorted(s for s in va[fold] if s not in vb[fold])
      if extra_seeds:
        raise ValueError(f'run {a.label} ({a.path}) has seeds {extra_seeds} in fold {fold} '
                         f'that run {b.label} ({b.path}) lacks; compare runs of the same seeds.')


def paired_test(diffs: np.ndarray) -> float:
  """Two-sided Wilcoxon signed-rank p-value; NaN where the test is undefined (all zero)."""
  if len(diffs) == 0 or np.all(diffs == 0):
    return math.nan
  try:
    return float(stats.wilcoxon(diffs).pvalue)
  except ValueError:
    return math.nan


def compare_runs(runs: Sequence[Run], metric: str = 'vote_accuracy/150',
                 pair: tuple[str, str] | None = None) -> Comparison:
  """The comparison table's numbers; ``pair=(A, B)`` adds B - A per fold and a p-value."""
  if not runs:
    raise ValueError('no runs to compare.')
  runs = unique_labels(runs)
  for label in pair or ():
    if label not in {r.label for r in runs}:
      raise ValueError(f'--compare names run {label!r}, which is not among the runs '
                       f'({", ".join(r.label for r in runs)}).')
  per_run = [fold_seed_values(run, metric) for run in runs]
  check_matching(runs, per_run)
  folds = list(per_run[0])
  seeds = {f: sorted(per_run[0][f]) for f in folds}
  values = {run.label: {f: np.array([v[f][s] for s in seeds[f]]) for f in folds}
            for run, v in zip(runs, per_run)}
  comparison = Comparison(metric=metric, labels=[r.label for r in runs], folds=folds, seeds=seeds,
                          values=values)
  if pair is None:
    return comparison
  diffs = comparison.fold_means(pair[1]) - comparison.fold_means(pair[0])
  return dataclasses.replace(comparison, pair=tuple(pair), diffs=diffs,
                             p_value=paired_test(diffs))


def _diff_name(c: Comparison) -> str:
  return f'{c.pair[1]} − {c.pair[0]}'


def table_cells(c: Comparison) -> tuple[list[str], list[list[str]]]:
  """Header and body (per fold, then the summary) as display strings, accuracies in %."""
  header = ['fold', *c.labels]
  if c.pair:
    header.append(f'{_diff_name(c)} (pp)')
  body = []
  for i, fold in enumerate(c.folds):
    line = [str(fold), *[formatting.pct(c.values[label][fold]) for label in c.labels]]
    if c.pair:
      line.append(f'{100 * c.diffs[i]:+.1f}')
    body.append(line)
  summary = ['mean ± std (folds)', *[formatting.pct(c.fold_means(label)) for label in c.labels]]
  if c.pair:
    summary.append(f'{100 * float(np.mean(c.diffs)):+.1f} '
                   f'(Wilcoxon p = {formatting.p_value(c.p_value)})')
  body.append(summary)
  return header, body


def _seed_note(c: Comparison) -> str:
  counts = sorted({len(s) for s in c.seeds.values()})
  return (f'{len(c.folds)} folds, {"/".join(map(str, counts))} seeds per fold; cells are '
          f'mean ± sample std over seeds of {c.metric} (%).')


def to_markdown(c: Comparison, title: str = '') -> str:
  """The comparison as Markdown: a note on folds and seeds, the table, the test's note."""
  header, body = table_cells(c)
  lines = [f'# {title}\n'] if title else []
  lines.append(_seed_note(c) + '\n')
  summary = [f'**{body[-1][0]}**', *body[-1][1:]]
  lines += formatting.markdown_table(header, [*body[:-1], summary])
  if c.pair:
    lines.append(f'\nPaired by fold: {_diff_name(c)} of per-fold seed means, in percentage '
                 'points; two-sided Wilcoxon signed-rank test over folds.')
  return '\n'.join(lines) + '\n'


def to_csv(c: Comparison) -> str:
  """Numbers, not display strings: per run the mean, sample std and count over seeds."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  header = ['fold']
  for label in c.labels:
    header += [f'{label} mean', f'{label} std', f'{label} n']
  if c.pair:
    header += [f'{c.pair[1]} - {c.pair[0]}', 'p_value']  # ASCII: spreadsheets mangle U+2212.
  writer.writerow(header)
  for i, fold in enumerate(c.folds):
    line: list[Any] = [fold]
    for label in c.labels:
      line += formatting.stats_of(c.values[label][fold])
    if c.pair:
      line += [float(c.diffs[i]), '']
    writer.writerow(line)
  line = ['mean over folds']
  for label in c.labels:
    line += formatting.stats_of(c.fold_means(label))
  if c.pair:
    line += [float(np.mean(c.diffs)), c.p_value]
  writer.writerow(line)
  return out.getvalue()


_LATEX_ESCAPES = {'\\': r'\textbackslash{}', '&': r'\&', '%': r'\%', '$': r'\$', '#': r'\#',
                  '_': r'\_', '{': r'\{', '}': r'\}', '~': r'\textasciitilde{}',
                  '^': r'\textasciicircum{}'}


def _tex(text: str) -> str:
  text = ''.join(_LATEX_ESCAPES.get(ch, ch) for ch in text)
  return text.replace('±', r'$\pm$').replace('−', '$-$')


def to_latex(c: Comparison) -> str:
  """The table as a LaTeX ``tabular``, its seed note a comment above it."""
  header, body = table_cells(c)
  lines = [r'\begin{tabular}{l' + 'r' * (len(header) - 1) + '}', r'\hline',
           ' & '.join(_tex(h) for h in header) + r' \\', r'\hline']
  for i, line in enumerate(body):
    if i == len(body) - 1:
      lines.append(r'\hline')
    lines.append(' & '.join(_tex(x) for x in line) + r' \\')
  lines += [r'\hline', r'\end{tabular}']
  return f'% {_tex(_seed_note(c))}\n' + '\n'.join(lines) + '\n'


def write_report(c: Comparison, out_dir: str, title: str = '') -> dict[str, str]:
  """Writes ``report.md``, ``report.csv`` and ``report.tex`` atomically; returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  paths = {}
  for ext, text in (('md', to_markdown(c, title)), ('csv', to_csv(c)), ('tex', to_latex(c))):
    paths[ext] = os.path.join(out_dir, f'{REPORT_STEM}.{ext}')
    results.write_atomic(paths[ext], text)
  return paths
