"""Several protocols and models in one table (a benchmark), its costs and a figure.

`combine_runs` puts several protocols and models in one table: rows are protocol
x fold, columns are models (runs labelled by model, grouped by protocol), cells
the mean ± sample std over seeds (a single value for models with one seed or
with deterministic, seed-free rows: the classical baselines), a mean-over-folds
row per protocol, and a paired two-sided Wilcoxon signed-rank test over folds
of a reference model against each other model, per protocol and over all
protocols' folds together. It also gathers each model's costs and the accuracy
of each model against the frames behind a decision (`write_combined_report`:
Markdown, CSV and a PNG figure).

Runs are `compare.Run`s (`compare.load_run`); metrics are `compare.metric_getter`'s.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from typing import Any, Hashable, Sequence

import numpy as np

from hdsemg_jax.reporting import compare, formatting, results, tables
from hdsemg_jax.reporting.compare import Run

# Protocols whose folds are another protocol's, so their runs share its table rows.
PROTOCOL_GROUPS = {'intra_session_pretrain': 'intra_session'}
COMBINED_STEM = 'comparison'
# Cost columns: (row key, heading); flops_per_decision is added for the metric's window.
COSTS = (('num_params', 'parameters'), ('num_total_params', 'total values'),
         ('flops_per_frame', 'FLOPs / frame'),
         ('flops_per_decision', 'FLOPs / decision'), ('train_seconds', 'train s / run'),
         ('inference_seconds_per_frame', 'inference µs / frame'),
         ('peak_host_memory_bytes', 'peak host MiB'),
         ('peak_device_memory_bytes', 'peak device MiB'))


def run_protocol(run: Run) -> str:
  """The row group of ``run``: its ``protocol``, else its config's or rows' protocol name."""
  if run.protocol:
    return run.protocol
  try:
    name = str(compare.config_value(run.config, 'protocol.name'))
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
        name = str(compare.config_value(run.config, 'protocol.name'))
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
                     rows_by_model: dict[str, list[results.ResultRow]]) -> None:
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
                            rows_by_model: dict[str, list[results.ResultRow]]) -> None:
  tests: dict[tuple[str, ...], str] = {}
  for model, rows in rows_by_model.items():
    for row in rows:
      test = (row.get('split') or {}).get('test')
      if test is not None:
        tests.setdefault(tuple(test), model)
  if len(tests) > 1:
    raise ValueError(f'{protocol} fold {fold}: models were tested on different trials ('
                     + ' vs '.join(tests.values()) + '); they cannot share a table row.')


def _row_windows(row: results.ResultRow) -> dict[int, float]:
  return {int(w): float(v) for w, v in results.decision_values(row).items() if str(w).isdigit()}


def _cost_value(row: results.ResultRow, key: str, window: int | None) -> float | None:
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
  models, protocols = _check_runs(runs, reference)
  folds, values = _values(runs, protocols, metric)
  single = _seed_free(runs, models)
  tests = _tests(values, folds, models, reference)
  costs = _costs(runs, models, window)
  curves = _curves(runs, protocols)
  return Combined(metric=metric, models=models, protocols=protocols, folds=folds, values=values,
                  single=single, reference=reference, tests=tests, costs=costs, curves=curves)


def _check_runs(runs: Sequence[Run], reference: str | None) -> tuple[list[str], list[str]]:
  """The models and protocols of ``runs`` in order of first appearance.

  Raises if ``reference`` is not among the models or two runs share a protocol and label.
  """
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
  return models, protocols


def _values(runs: Sequence[Run], protocols: Sequence[str], metric: str
            ) -> tuple[dict[str, list[Hashable]], dict[str, dict[str, dict[Hashable, np.ndarray]]]]:
  """Per protocol its folds, and model -> fold -> the metric over seeds (seeds in order).

  Each protocol is checked in turn (`_protocol_values`, then `_check_fold_rows`),
  so the first error named is that of the first protocol with one.
  """
  folds: dict[str, list[Hashable]] = {}
  values: dict[str, dict[str, dict[Hashable, np.ndarray]]] = {}
  for protocol in protocols:
    members = [r for r in runs if r.protocol == protocol]
    folds[protocol], values[protocol] = _protocol_values(protocol, members, metric)
    _check_fold_rows(protocol, members, folds[protocol])
  return folds, values


def _protocol_values(protocol: str, members: Sequence[Run], metric: str
                     ) -> tuple[list[Hashable], dict[str, dict[Hashable, np.ndarray]]]:
  """The folds of one protocol's runs, which must be the same, and their values per run."""
  per_run = [compare.fold_seed_values(r, metric) for r in members]
  # Same folds; seeds may differ (networks run several, seed-free models one).
  for run, v in zip(members[1:], per_run[1:]):
    missing = [f for f in per_run[0] if f not in v]
    extra = [f for f in v if f not in per_run[0]]
    if missing or extra:
      raise ValueError(f'{protocol}: run {run.label} ({run.path}) has folds {extra} that run '
                       f'{members[0].label} ({members[0].path}) lacks, and lacks folds '
                       f'{missing}; compare runs of the same folds.')
  folds = list(per_run[0])
  values = {run.label: {f: np.array([v[f][s] for s in sorted(v[f])]) for f in folds}
            for run, v in zip(members, per_run)}
  return folds, values


def _check_fold_rows(protocol: str, members: Sequence[Run], folds: Sequence[Hashable]) -> None:
  """Per fold: one split per protocol name, and the same test trials for every model."""
  for fold in folds:
    fold_rows = {r.label: [x for x in r.rows if x.get('fold') == fold] for r in members}
    _check_split_ids(protocol, fold, fold_rows)
    _check_same_test_trials(protocol, fold, fold_rows)


def _seed_free(runs: Sequence[Run], models: Sequence[str]) -> set[str]:
  """The models whose every row decides from one window: deterministic, one value per cell."""
  return {m for m in models
          if all(row.get('decision_rule') == 'window' for r in runs if r.label == m
                 for row in r.rows)}


def _tests(values: dict[str, dict[str, dict[Hashable, np.ndarray]]],
           folds: dict[str, list[Hashable]], models: Sequence[str],
           reference: str | None) -> dict[str, dict[str, tuple[np.ndarray, float]]]:
  """``reference`` against each other model: per protocol, and over all when there are several.

  A test pairs the per-fold seed means, reference minus model, of the folds both ran.
  """
  tests: dict[str, dict[str, tuple[np.ndarray, float]]] = {}
  if reference is None:
    return tests
  pooled: dict[str, list[float]] = {}
  for protocol, cells in values.items():
    if reference not in cells:
      continue
    tests[protocol] = {}
    for model in models:
      if model == reference or model not in cells:
        continue
      diffs = np.array([float(np.mean(cells[reference][f]) - np.mean(cells[model][f]))
                        for f in folds[protocol]])
      tests[protocol][model] = (diffs, compare.paired_test(diffs))
      pooled.setdefault(model, []).extend(diffs.tolist())
  if len(tests) > 1:
    tests['all'] = {m: (np.array(d), compare.paired_test(np.array(d))) for m, d in pooled.items()}
  return tests


def _costs(runs: Sequence[Run], models: Sequence[str],
           window: int | None) -> dict[str, dict[str, float]]:
  """model -> cost key -> median over all its rows (keys no row has are left out)."""
  costs: dict[str, dict[str, float]] = {}
  for model in models:
    rows = [row for r in runs if r.label == model for row in r.rows]
    costs[model] = {}
    for key, _ in COSTS:
      found = [v for v in (_cost_value(row, key, window) for row in rows) if v is not None]
      if found:
        costs[model][key] = float(np.median(found))
  return costs


def _curves(runs: Sequence[Run], protocols: Sequence[str]
            ) -> dict[str, dict[str, dict[int, tuple[float, float]]]]:
  """protocol -> model -> `_curve` of its run."""
  return {protocol: {run.label: _curve(run) for run in runs if run.protocol == protocol}
          for protocol in protocols}


def _curve(run: Run) -> dict[int, tuple[float, float]]:
  """Window -> (mean, sample std) over folds of the decision accuracy, windows of every row."""
  by_fold: dict[Hashable, list[dict[int, float]]] = {}
  for row in run.rows:
    by_fold.setdefault(row.get('fold'), []).append(_row_windows(row))
  common = sorted(set.intersection(*(set(w) for rs in by_fold.values() for w in rs)))
  curve = {}
  for w in common:
    # Seeds averaged within a fold first, so the spread is between folds, as in the table.
    means = [float(np.mean([r[w] for r in rs])) for rs in by_fold.values()]
    curve[w] = (float(np.mean(means)), float(np.std(means, ddof=1)) if len(means) > 1 else 0.0)
  return curve


def _cell(c: Combined, model: str, values: np.ndarray) -> str:
  if model in c.single:
    return tables.mean_std([float(np.mean(values))])
  return formatting.pct(values)


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
                 *[formatting.pct(c.fold_means(protocol, m)) if m in cells else '—'
                   for m in c.models]])
    if protocol in c.tests:
      line = [protocol, f'{c.reference} − model (pp), Wilcoxon p']
      for m in c.models:
        if m in c.tests[protocol]:
          diffs, p = c.tests[protocol][m]
          line.append(f'{100 * float(np.mean(diffs)):+.1f} (p = {formatting.p_value(p)})')
        else:
          line.append('ref.' if m == c.reference and m in cells else '—')
      body.append(line)
  if 'all' in c.tests:
    line = ['all', f'{c.reference} − model (pp), Wilcoxon p']
    for m in c.models:
      if m in c.tests['all']:
        diffs, p = c.tests['all'][m]
        line.append(f'{100 * float(np.mean(diffs)):+.1f} '
                    f'(p = {formatting.p_value(p)}, {len(diffs)} folds)')
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
  if key.endswith('_memory_bytes'):
    return f'{value / 2**20:,.0f}'
  return f'{value:,.0f}' if value >= 1000 else f'{value:.3g}'


def cost_cells(c: Combined) -> tuple[list[str], list[list[str]]]:
  """Header and body of the cost table: one line per model, medians over its rows."""
  window = _window(c.metric)
  header = ['model']
  for key, name in COSTS:
    header.append(f'{name} ({window} frames)' if key == 'flops_per_decision' and window else name)
  body = [[m, *[_number(c.costs[m].get(key), key) for key, _ in COSTS]] for m in c.models]
  return header, body


def combined_markdown(c: Combined, title: str = '') -> str:
  """The benchmark as Markdown: a note on cells and tests, the table, then the cost table."""
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
  lines += formatting.markdown_table(*combined_cells(c))
  lines.append('\n## Cost\n')
  lines.append('Medians over each model\'s results rows. FLOPs / decision: a classical model\'s '
               'feature extraction plus linear model for one window; a network\'s forward pass '
               'per frame times the frames behind the decision. Train seconds: per fold and seed '
               '(for seed-parallel runs, all seeds of a fold).\n')
  lines += formatting.markdown_table(*cost_cells(c))
  return '\n'.join(lines) + '\n'


def combined_csv(c: Combined) -> str:
  """Numbers in long form: a line per protocol, fold (or summary) and model; then the tests."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  writer.writerow(['kind', 'protocol', 'fold', 'model', 'metric', 'mean', 'std', 'n',
                   'reference_minus_model', 'p_value'])
  for protocol in c.protocols:
    for m, cells in c.values[protocol].items():
      for fold in c.folds[protocol]:
        writer.writerow(['fold', protocol, fold, m, c.metric, *formatting.stats_of(cells[fold]),
                         '', ''])
      writer.writerow(['mean_over_folds', protocol, '', m, c.metric,
                       *formatting.stats_of(c.fold_means(protocol, m)), '', ''])
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
