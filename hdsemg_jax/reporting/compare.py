"""Several runs side by side: a row per fold, a column per run, paired differences.

Each run is a workdir with ``config.json`` and ``results.jsonl``. A cell is the
mean ± sample std (ddof=1) over seeds of one metric for one fold; the summary row
is the mean ± sample std over folds of those per-fold means. Comparing two runs
pairs them by fold: the difference of their per-fold seed means, its mean over
folds and a Wilcoxon signed-rank test's two-sided p-value. Runs are only
comparable on the same folds and seeds; anything else is an error naming it.

`combine_runs` puts several protocols and models in one table (a benchmark):
rows are protocol x fold, columns are models (runs labelled by model, grouped
by protocol), cells the mean ± sample std over seeds (a single value for
models with one seed or with deterministic, seed-free rows: the classical
baselines), a mean-over-folds row per protocol, and a paired two-sided Wilcoxon
signed-rank test over folds of a reference model against each other model,
per protocol and over all protocols' folds together. It also gathers each
model's costs and the accuracy of each model against the frames behind a
decision (`write_combined_report`: Markdown, CSV and a PNG figure).

Metrics are ``frame_accuracy``, ``balanced_accuracy``, ``vote_accuracy/W`` or
``decision_accuracy/W``: the accuracy of decisions made from W frames of
signal (a classifier's W-frame window; a network's W-frame majority vote, so
a network row without ``decision_accuracy`` is read from ``vote_accuracy``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from typing import Any, Callable, Hashable, Sequence

import numpy as np
from scipy import stats

from hdsemg_jax.reporting import results, tables

REPORT_STEM = 'report'


@dataclasses.dataclass(frozen=True)
class Run:
  """One workdir's results, labelled by a value of its config.

  ``protocol`` is the table row group of `combine_runs`; empty: read from the run
  (`run_protocol`).
  """
  path: str
  label: str
  config: dict[str, Any]
  rows: list[dict[str, Any]]
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
  with open(config_path) as f:
    try:
      config = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f'{config_path}: malformed config ({e.msg}).') from None
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


def metric_getter(metric: str) -> Callable[[dict[str, Any]], float]:
  """Reads ``metric`` from a row: `tables.metric_getter`'s metrics or ``decision_accuracy/W``.

  A row without ``decision_accuracy`` (a network's) is read from its
  ``vote_accuracy``: a network decides from W frames by voting over them.
  """
  if metric.startswith(DECISION_METRIC):
    window = metric[len(DECISION_METRIC):]

    def get(row: dict[str, Any]) -> float:
      table = row.get('decision_accuracy')
      return (table if table is not None else row['vote_accuracy'])[window]
    return get
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


def check_matching(runs: Sequence[Run], per_run: Sequence[dict[Hashable, dict[int, float]]]) -> None:
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


def _pct(values: Sequence[float] | np.ndarray) -> str:
  return tables.mean_std([float(v) for v in values])


def _diff_name(c: Comparison) -> str:
  return f'{c.pair[1]} − {c.pair[0]}'


def table_cells(c: Comparison) -> tuple[list[str], list[list[str]]]:
  """Header and body (per fold, then the summary) as display strings, accuracies in %."""
  header = ['fold', *c.labels]
  if c.pair:
    header.append(f'{_diff_name(c)} (pp)')
  body = []
  for i, fold in enumerate(c.folds):
    line = [str(fold), *[_pct(c.values[label][fold]) for label in c.labels]]
    if c.pair:
      line.append(f'{100 * c.diffs[i]:+.1f}')
    body.append(line)
  summary = ['mean ± std (folds)', *[_pct(c.fold_means(label)) for label in c.labels]]
  if c.pair:
    p = 'n/a' if math.isnan(c.p_value) else f'{c.p_value:.3g}'
    summary.append(f'{100 * float(np.mean(c.diffs)):+.1f} (Wilcoxon p = {p})')
  body.append(summary)
  return header, body


def _seed_note(c: Comparison) -> str:
  counts = sorted({len(s) for s in c.seeds.values()})
  return (f'{len(c.folds)} folds, {"/".join(map(str, counts))} seeds per fold; cells are '
          f'mean ± sample std over seeds of {c.metric} (%).')


def to_markdown(c: Comparison, title: str = '') -> str:
  header, body = table_cells(c)
  lines = [f'# {title}\n'] if title else []
  lines.append(_seed_note(c) + '\n')
  lines.append('| ' + ' | '.join(header) + ' |')
  lines.append('|' + '---|' * len(header))
  for i, line in enumerate(body):
    if i == len(body) - 1:
      line = [f'**{line[0]}**', *line[1:]]
    lines.append('| ' + ' | '.join(line) + ' |')
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

  def stats_of(v: np.ndarray) -> list[Any]:
    std = float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
    return [float(np.mean(v)), std, len(v)]

  for i, fold in enumerate(c.folds):
    line: list[Any] = [fold]
    for label in c.labels:
      line += stats_of(c.values[label][fold])
    if c.pair:
      line += [float(c.diffs[i]), '']
    writer.writerow(line)
  line = ['mean over folds']
  for label in c.labels:
    line += stats_of(c.fold_means(label))
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


# --- Several protocols and models in one table -------------------------------------------------

# Protocols whose folds are another protocol's, so their runs share its table rows.
PROTOCOL_GROUPS = {'intra_session_pretrain': 'intra_session'}
COMBINED_STEM = 'comparison'
# Cost columns: (row key, heading); flops_per_decision is added for the metric's window.
COSTS = (('num_params', 'parameters'), ('flops_per_frame', 'FLOPs / frame'),
         ('flops_per_decision', 'FLOPs / decision'), ('train_seconds', 'train s / run'),
         ('inference_seconds_per_frame', 'inference µs / frame'))


def run_protocol(run: Run) -> str:
  """The row group of ``run``: its ``protocol``, else its config's or rows' protocol name."""
  if run.protocol:
    return run.protocol
  try:
    name = str(config_value(run.config, 'protocol.name'))
  except KeyError:
    names = {str(r.get('protocol', '')) for r in run.rows}
    if len(names) != 1 or not next(iter(names)):
      raise ValueError(f'run {run.path}: no protocol in config.json or a single one in its rows.'
                       ) from None
    name = names.pop()
  return PROTOCOL_GROUPS.get(name, name)


def group_runs(runs: Sequence[Run]) -> list[Run]:
  """Runs with their row group set; a run of a grouped protocol (e.g. intra_session_pretrain)
  gets ``+pretrain`` appended to its label, so it is a column of its own beside the others."""
  out = []
  for run in runs:
    protocol = run_protocol(run)
    label = run.label
    if not run.protocol:
      try:
        name = str(config_value(run.config, 'protocol.name'))
      except KeyError:
        name = protocol
      if name != protocol and name.startswith(protocol + '_'):
        label = f'{label}+{name[len(protocol) + 1:]}'
    out.append(dataclasses.replace(run, protocol=protocol, label=label))
  return out


@dataclasses.dataclass(frozen=True)
class Combined:
  """A benchmark table: per protocol, fold and model, the metric over seeds; tests; costs."""
  metric: str
  models: list[str]
  protocols: list[str]
  folds: dict[str, list[Hashable]]  # Per protocol, in order of first appearance.
  values: dict[str, dict[str, dict[Hashable, np.ndarray]]]  # protocol -> model -> fold -> seeds.
  single: set[str]  # Models shown as one value per cell (seed-free rows).
  reference: str | None
  # protocol (or 'all') -> model -> (reference - model per paired fold, Wilcoxon p).
  tests: dict[str, dict[str, tuple[np.ndarray, float]]]
  costs: dict[str, dict[str, float]]  # model -> cost key -> median over its rows.
  # protocol -> model -> {window: (mean over folds, sample std over folds)} of decision accuracy.
  curves: dict[str, dict[str, dict[int, tuple[float, float]]]]

  def fold_means(self, protocol: str, model: str) -> np.ndarray:
    cells = self.values[protocol][model]
    return np.array([float(np.mean(cells[f])) for f in self.folds[protocol]])


def _window(metric: str) -> int | None:
  tail = metric.rsplit('/', 1)[-1]
  return int(tail) if '/' in metric and tail.isdigit() else None


def _check_split_ids(protocol: str, fold: Hashable,
                     rows_by_model: dict[str, list[dict[str, Any]]]) -> None:
  """One ``split_id`` per cell, and per fold among the models run with the same protocol.

  A row's ``split_id`` hashes the dataset version and its fold's trials per role,
  so rows of one fold and protocol must agree; a grouped protocol (e.g.
  intra_session_pretrain) has other training trials, hence another id.
  """
  by_protocol: dict[str, dict[str, str]] = {}
  for model, rows in rows_by_model.items():
    ids = {str(r['split_id']) for r in rows if r.get('split_id') is not None}
    if len(ids) > 1:
      raise ValueError(f'{model} on {protocol} fold {fold}: rows carry different split_id '
                       f'values ({", ".join(sorted(ids))}); they come from different data or '
                       'splits and cannot share a cell. Rerun them in one workdir.')
    for row in rows:
      if row.get('split_id') is not None:
        by_protocol.setdefault(str(row.get('protocol', protocol)), {})[model] = str(
            row['split_id'])
  for name, ids in by_protocol.items():
    if len(set(ids.values())) > 1:
      found = ', '.join(f'{m}: {i}' for m, i in ids.items())
      raise ValueError(f'{name} fold {fold}: the models carry different split_id values '
                       f'({found}); they were not run on the same data and split and cannot '
                       'share a table row.')


def _check_same_test_trials(protocol: str, fold: Hashable,
                            rows_by_model: dict[str, list[dict[str, Any]]]) -> None:
  tests: dict[tuple[str, ...], str] = {}
  for model, rows in rows_by_model.items():
    for row in rows:
      test = (row.get('split') or {}).get('test')
      if test is not None:
        tests.setdefault(tuple(test), model)
  if len(tests) > 1:
    raise ValueError(f'{protocol} fold {fold}: models were tested on different trials ('
                     + ' vs '.join(tests.values()) + '); they cannot share a table row.')


def _row_windows(row: dict[str, Any]) -> dict[int, float]:
  table = row.get('decision_accuracy')
  table = table if table is not None else row.get('vote_accuracy') or {}
  return {int(w): float(v) for w, v in table.items() if str(w).isdigit()}


def _cost_value(row: dict[str, Any], key: str, window: int | None) -> float | None:
  value = row.get(key)
  if key == 'flops_per_decision':
    if isinstance(value, dict):
      value = value.get(str(window)) if window is not None else None
    elif value is None and window is not None and row.get('flops_per_frame') is not None:
      # A network decides from w frames by running each of them once (the vote is not counted).
      value = window * float(row['flops_per_frame'])
  return None if value is None else float(value)


def combine_runs(runs: Sequence[Run], metric: str = 'decision_accuracy/150',
                 reference: str | None = 'all_convnet') -> Combined:
  """The benchmark of ``runs``: one column per run label, rows grouped by `run_protocol`.

  Within a protocol every model must have the same folds (a model may be absent
  from a protocol altogether); the rows of one fold must carry one ``split_id``
  per protocol name (`_check_split_ids`), and the models compared in one row
  must have been tested on the same trials. ``reference`` (None: no
  tests) is compared with every other model by the paired Wilcoxon test over the
  folds both ran, per protocol and over all protocols.
  """
  if not runs:
    raise ValueError('no runs to compare.')
  runs = group_runs(runs)
  window = _window(metric)
  models: list[str] = list(dict.fromkeys(r.label for r in runs))
  protocols: list[str] = list(dict.fromkeys(r.protocol for r in runs))
  if reference is not None and reference not in models:
    raise ValueError(f'reference model {reference!r} is not among the runs '
                     f'({", ".join(models)}).')
  seen: dict[tuple[str, str], str] = {}
  for run in runs:
    key = (run.protocol, run.label)
    if key in seen:
      raise ValueError(f'two runs of {run.label} on {run.protocol}: {seen[key]} and {run.path}; '
                       'give them different labels.')
    seen[key] = run.path

  values: dict[str, dict[str, dict[Hashable, np.ndarray]]] = {p: {} for p in protocols}
  folds: dict[str, list[Hashable]] = {}
  for protocol in protocols:
    members = [r for r in runs if r.protocol == protocol]
    per_run = [fold_seed_values(r, metric) for r in members]
    # Same folds; seeds may differ (networks run several, seed-free models one).
    for run, v in zip(members[1:], per_run[1:]):
      missing = [f for f in per_run[0] if f not in v]
      extra = [f for f in v if f not in per_run[0]]
      if missing or extra:
        raise ValueError(f'{protocol}: run {run.label} ({run.path}) has folds {extra} that run '
                         f'{members[0].label} ({members[0].path}) lacks, and lacks folds '
                         f'{missing}; compare runs of the same folds.')
    folds[protocol] = list(per_run[0])
    for run, v in zip(members, per_run):
      values[protocol][run.label] = {f: np.array([v[f][s] for s in sorted(v[f])])
                                     for f in folds[protocol]}
    for fold in folds[protocol]:
      fold_rows = {r.label: [x for x in r.rows if x.get('fold') == fold] for r in members}
      _check_split_ids(protocol, fold, fold_rows)
      _check_same_test_trials(protocol, fold, fold_rows)

  single = {m for m in models
            if all(row.get('decision_rule') == 'window' for r in runs if r.label == m
                   for row in r.rows)}

  tests: dict[str, dict[str, tuple[np.ndarray, float]]] = {}
  if reference is not None:
    pooled: dict[str, list[float]] = {}
    for protocol in protocols:
      cells = values[protocol]
      if reference not in cells:
        continue
      tests[protocol] = {}
      for model in models:
        if model == reference or model not in cells:
          continue
        diffs = np.array([float(np.mean(cells[reference][f]) - np.mean(cells[model][f]))
                          for f in folds[protocol]])
        tests[protocol][model] = (diffs, paired_test(diffs))
        pooled.setdefault(model, []).extend(diffs.tolist())
    if len(tests) > 1:
      tests['all'] = {m: (np.array(d), paired_test(np.array(d))) for m, d in pooled.items()}

  costs: dict[str, dict[str, float]] = {}
  for model in models:
    rows = [row for r in runs if r.label == model for row in r.rows]
    costs[model] = {}
    for key, _ in COSTS:
      found = [v for v in (_cost_value(row, key, window) for row in rows) if v is not None]
      if found:
        costs[model][key] = float(np.median(found))

  curves: dict[str, dict[str, dict[int, tuple[float, float]]]] = {}
  for protocol in protocols:
    curves[protocol] = {}
    for run in (r for r in runs if r.protocol == protocol):
      by_fold: dict[Hashable, list[dict[int, float]]] = {}
      for row in run.rows:
        by_fold.setdefault(row.get('fold'), []).append(_row_windows(row))
      common = sorted(set.intersection(*(set(w) for rs in by_fold.values() for w in rs)))
      curve = {}
      for w in common:
        # Seeds averaged within a fold first, so the spread is between folds, as in the table.
        means = [float(np.mean([r[w] for r in rs])) for rs in by_fold.values()]
        curve[w] = (float(np.mean(means)),
                    float(np.std(means, ddof=1)) if len(means) > 1 else 0.0)
      curves[protocol][run.label] = curve
  return Combined(metric=metric, models=models, protocols=protocols, folds=folds, values=values,
                  single=single, reference=reference, tests=tests, costs=costs, curves=curves)


def _cell(c: Combined, model: str, values: np.ndarray) -> str:
  if model in c.single:
    return tables.mean_std([float(np.mean(values))])
  return _pct(values)


def _p(p: float) -> str:
  return 'n/a' if math.isnan(p) else f'{p:.3g}'


def combined_cells(c: Combined) -> tuple[list[str], list[list[str]]]:
  """Header and body of the benchmark table as display strings, accuracies in %."""
  header = ['protocol', 'fold', *c.models]
  body = []
  for protocol in c.protocols:
    cells = c.values[protocol]
    for fold in c.folds[protocol]:
      body.append([protocol, str(fold), *[_cell(c, m, cells[m][fold]) if m in cells else '—'
                                          for m in c.models]])
    body.append([protocol, '**mean ± std (folds)**',
                 *[_pct(c.fold_means(protocol, m)) if m in cells else '—' for m in c.models]])
    if protocol in c.tests:
      line = [protocol, f'{c.reference} − model (pp), Wilcoxon p']
      for m in c.models:
        if m in c.tests[protocol]:
          diffs, p = c.tests[protocol][m]
          line.append(f'{100 * float(np.mean(diffs)):+.1f} (p = {_p(p)})')
        else:
          line.append('ref.' if m == c.reference and m in cells else '—')
      body.append(line)
  if 'all' in c.tests:
    line = ['all', f'{c.reference} − model (pp), Wilcoxon p']
    for m in c.models:
      if m in c.tests['all']:
        diffs, p = c.tests['all'][m]
        line.append(f'{100 * float(np.mean(diffs)):+.1f} (p = {_p(p)}, {len(diffs)} folds)')
      else:
        line.append('ref.' if m == c.reference else '—')
    body.append(line)
  return header, body


def _number(value: float | None, key: str) -> str:
  if value is None or math.isnan(value):
    return '—'
  if key == 'inference_seconds_per_frame':
    return f'{1e6 * value:.3g}'
  if key == 'train_seconds':
    return f'{value:.1f}'
  return f'{value:,.0f}' if value >= 1000 else f'{value:.3g}'


def cost_cells(c: Combined) -> tuple[list[str], list[list[str]]]:
  """Header and body of the cost table: one line per model, medians over its rows."""
  window = _window(c.metric)
  header = ['model']
  for key, name in COSTS:
    header.append(f'{name} ({window} frames)' if key == 'flops_per_decision' and window else name)
  body = [[m, *[_number(c.costs[m].get(key), key) for key, _ in COSTS]] for m in c.models]
  return header, body


def _markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(line) + ' |' for line in body]
  return lines


def combined_markdown(c: Combined, title: str = '') -> str:
  lines = [f'# {title}\n'] if title else []
  seeds = sorted({len(v) for p in c.values.values() for m, f in p.items() if m not in c.single
                  for v in f.values()})
  note = (f'Cells: mean ± sample std over seeds ({"/".join(map(str, seeds)) or "no"} seeds per '
          f'network fold) of {c.metric} (%)')
  if c.single:
    note += f'; one value for the seed-free models ({", ".join(sorted(c.single))})'
  note += ('. "mean ± std (folds)": over the per-fold means.')
  if c.reference:
    note += (f' Tests: {c.reference} − model of per-fold means, in percentage points, paired by '
             'fold; two-sided Wilcoxon signed-rank test over folds.')
  lines.append(note + '\n')
  lines += _markdown_table(*combined_cells(c))
  lines.append('\n## Cost\n')
  lines.append('Medians over each model\'s results rows. FLOPs / decision: a classical model\'s '
               'feature extraction plus linear model for one window; a network\'s forward pass '
               'per frame times the frames behind the decision. Train seconds: per fold and seed '
               '(for seed-parallel runs, all seeds of a fold).\n')
  lines += _markdown_table(*cost_cells(c))
  return '\n'.join(lines) + '\n'


def combined_csv(c: Combined) -> str:
  """Numbers in long form: a line per protocol, fold (or summary) and model; then the tests."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  writer.writerow(['kind', 'protocol', 'fold', 'model', 'metric', 'mean', 'std', 'n',
                   'reference_minus_model', 'p_value'])

  def stats_of(v: np.ndarray) -> list[Any]:
    return [float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else math.nan, len(v)]

  for protocol in c.protocols:
    for m, cells in c.values[protocol].items():
      for fold in c.folds[protocol]:
        writer.writerow(['fold', protocol, fold, m, c.metric, *stats_of(cells[fold]), '', ''])
      writer.writerow(['mean_over_folds', protocol, '', m, c.metric,
                       *stats_of(c.fold_means(protocol, m)), '', ''])
  for protocol, tests in c.tests.items():
    for m, (diffs, p) in tests.items():
      writer.writerow(['wilcoxon', protocol, '', m, c.metric, '', '', len(diffs),
                       float(np.mean(diffs)), p])
  for m in c.models:
    for key, _ in COSTS:
      if key in c.costs[m]:
        writer.writerow(['cost', '', '', m, key, c.costs[m][key], '', '', '', ''])
  return out.getvalue()


def decision_figure(c: Combined, title: str = '') -> Any:
  """Accuracy against frames behind a decision: a panel per protocol, a line per model."""
  from matplotlib.figure import Figure  # Only the figure needs matplotlib.

  n = len(c.protocols)
  fig = Figure(figsize=(4.5 * n + 1.5, 4.2))
  axes = fig.subplots(1, n, squeeze=False)[0]
  for ax, protocol in zip(axes, c.protocols):
    windows: set[int] = set()
    for model, curve in c.curves[protocol].items():
      if not curve:
        continue
      xs = sorted(curve)
      windows.update(xs)
      # One colour per model across panels, whichever models a protocol has.
      ax.errorbar(xs, [100 * curve[w][0] for w in xs], yerr=[100 * curve[w][1] for w in xs],
                  marker='o', capsize=3, label=model, color=f'C{c.models.index(model) % 10}')
    ax.set_xscale('log')
    if windows:
      ax.set_xticks(sorted(windows), [str(w) for w in sorted(windows)])
      ax.minorticks_off()
    ax.set_xlabel('frames behind a decision')
    ax.set_ylabel('accuracy (%)')
    ax.set_title(protocol, fontsize=10)
    ax.grid(True, alpha=0.3)
  handles, labels = axes[0].get_legend_handles_labels()
  for ax in axes[1:]:
    for h, label in zip(*ax.get_legend_handles_labels()):
      if label not in labels:
        handles.append(h)
        labels.append(label)
  fig.legend(handles, labels, loc='center right', fontsize=8)
  fig.suptitle((title + '\n' if title else '') + 'mean over folds, error bars: sample std over '
               'folds (networks: majority vote; classical: one window)', fontsize=9)
  fig.tight_layout(rect=(0, 0, 1 - 1.3 / fig.get_figwidth(), 1))
  return fig


def write_combined_report(c: Combined, out_dir: str, title: str = '',
                          figure: bool = True) -> dict[str, str]:
  """Writes ``comparison.md``, ``comparison.csv`` and ``comparison.png`` atomically."""
  os.makedirs(out_dir, exist_ok=True)
  paths = {}
  for ext, text in (('md', combined_markdown(c, title)), ('csv', combined_csv(c))):
    paths[ext] = os.path.join(out_dir, f'{COMBINED_STEM}.{ext}')
    results.write_atomic(paths[ext], text)
  if figure:
    paths['png'] = os.path.join(out_dir, f'{COMBINED_STEM}.png')
    tmp = f'{paths["png"]}.tmp{os.getpid()}.png'
    decision_figure(c, title).savefig(tmp, dpi=120)
    os.replace(tmp, paths['png'])
  return paths
