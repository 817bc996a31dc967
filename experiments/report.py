r"""Combines runs into one table (and figures): folds as rows, runs as columns.

  python -m experiments.report /tmp/run_a /tmp/run_b --metric=vote_accuracy/150 \
      --label_key=model.name --compare=all_convnet,geng_convnet --out=/tmp/report

Prints the Markdown table and writes report.md, report.csv, report.tex and PNG
figures into --out (default: the first run's directory).

With --combine, runs of several protocols and models make one benchmark table
(rows: protocol x fold, columns: models, a paired Wilcoxon test of --reference
against each other model, costs) and comparison.md, comparison.csv and
comparison.png (accuracy against the frames behind a decision), and comparison.json (the
benchmark as one JSON document, `hdsemg_jax.reporting.document`) with report.html (one
self-contained page to sort and filter it, offline):

  python -m experiments.report --combine workdirs/suite/*/* \
      --metric=decision_accuracy/150 --reference=all_convnet --out=workdirs/suite

Given the folder of a suite or of a run split into tasks (one that holds
``launch.json``: `experiments.compare_models`, or `experiments.main` with
``--executor``/``--workers``/``--fold_groups``), --combine rebuilds what that command
writes at its end from whatever tasks have finished (rows of split runs gathered,
the suite's comparison with its own metric and reference), e.g. while a SLURM job
array is still running:

  python -m experiments.report --combine workdirs/compare_flexemg
"""

from __future__ import annotations

import os

from absl import flags

from experiments import cli

_METRIC = flags.DEFINE_string('metric', 'vote_accuracy/150',
                              'frame_accuracy, balanced_accuracy, vote_accuracy/W or '
                              'decision_accuracy/W (networks: their W-frame vote).')
_LABEL_KEY = flags.DEFINE_string('label_key', 'model.name',
                                 'Dotted config.json key whose value labels each run.')
_COMPARE = flags.DEFINE_string('compare', None,
                               'A,B: add the per-fold differences B - A and a paired test.')
_OUT = flags.DEFINE_string('out', None, 'Output folder; default: the first run directory.')
_PLOTS = flags.DEFINE_bool('plots', True, 'Also write PNG figures.')
_COMBINE = flags.DEFINE_bool('combine', False,
                             'One benchmark table of several protocols and models.')
_REFERENCE = flags.DEFINE_string('reference', 'all_convnet',
                                 'With --combine: the model tested against each other one '
                                 '(empty: no tests).')


def rebuild(workdir: str) -> None:
  """--combine of a launch's folder: gathers its runs, then the suite's report (if a suite)."""
  from experiments import suite
  from hdsemg_jax.run import launch
  record, runs, missing = launch.gather_plan(workdir)
  for run, pairs in missing.items():
    if pairs:
      print(f'{run}: {len(pairs)} (fold, seed) pair(s) not finished yet')
  if record.get('kind') != 'suite':
    from hdsemg_jax import workdir as workdir_lib
    for run in runs:
      table = os.path.join(run.workdir, workdir_lib.TABLE_FILE)
      if os.path.isfile(table):
        print(f'{run.name}: {table}')
    return
  _, markdown, paths = suite.report(record, runs, workdir,
                                    tuple(record.get('commands', ())) + (cli.command_line(),))
  print(markdown)
  print('wrote ' + ', '.join(paths.values()))


def combine(run_dirs) -> None:
  from hdsemg_jax.run import launch
  if len(run_dirs) == 1 and os.path.isfile(os.path.join(run_dirs[0], launch.PLAN_FILE)):
    rebuild(run_dirs[0])
    return
  from hdsemg_jax.reporting import benchmark, compare, report_page  # After flags: scipy is slow.
  runs = [compare.load_run(d, _LABEL_KEY.value) for d in run_dirs]
  combined = benchmark.combine_runs(runs, _METRIC.value, _REFERENCE.value or None)
  title = f'{", ".join(combined.models)}: {_METRIC.value}'
  out_dir = _OUT.value or run_dirs[0]
  paths = benchmark.write_combined_report(combined, out_dir, title, figure=_PLOTS.value)
  paths.update(report_page.publish(combined, runs, out_dir, title, (cli.command_line(),)))
  print(benchmark.combined_markdown(combined, title))
  print('wrote ' + ', '.join(paths.values()))


def main(argv) -> None:
  run_dirs = argv[1:]
  if not run_dirs:
    raise cli.UsageError('give at least one run directory.')
  if _COMBINE.value:
    combine(run_dirs)
    return
  from hdsemg_jax.reporting import compare, plots  # After flags: matplotlib and scipy are slow.
  pair = None
  if _COMPARE.value:
    pair = tuple(s.strip() for s in _COMPARE.value.split(','))
    if len(pair) != 2 or not all(pair):
      raise cli.UsageError(f'--compare takes two run labels A,B; got {_COMPARE.value!r}.')
  runs = compare.unique_labels([compare.load_run(d, _LABEL_KEY.value) for d in run_dirs])
  comparison = compare.compare_runs(runs, _METRIC.value, pair)
  out_dir = _OUT.value or run_dirs[0]
  title = ' vs '.join(comparison.labels) + f': {_METRIC.value}'
  paths = compare.write_report(comparison, out_dir, title)
  if _PLOTS.value:
    # Each row labelled by its run, so runs of one model (e.g. two learning rates) stay apart.
    rows = [{**row, '_run': run.label} for run in runs for row in run.rows]
    paths.update({p: p for p in plots.write_plots(rows, out_dir, ' vs '.join(comparison.labels),
                                                  series_key=lambda r: r['_run'])})
  print(compare.to_markdown(comparison, title))
  print('wrote ' + ', '.join(paths.values()))


if __name__ == '__main__':
  cli.run(main)
