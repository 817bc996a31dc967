r"""A network's accuracy against its training budget: a suite of budgets, then the curve.

  python -m experiments.budget_curve --config=experiments/configs/budget_curve.py:flexemg \
      --config.dataset.manual_dir=../shared/data/flexemg --workdir=workdirs/budget_flexemg

The config is a suite (`experiments/configs/budget_curve.py`): one model at several
budgets as ``<model>@<variant>`` labels. This runs (or resumes) it exactly as
`experiments.compare_models` does, with the same ``--workers``/``--executor``
flags, writes its comparison, then ``budget_curve.{md,png}`` in the workdir
(`hdsemg_jax.reporting.budget`): each metric against the training frames seen.
"""

from __future__ import annotations

import dataclasses
import os

from absl import flags
from ml_collections import config_flags

from experiments import cli, launch_flags

_CONFIG = config_flags.DEFINE_config_file('config', 'experiments/configs/budget_curve.py',
                                          'Budget suite config (experiments/configs/'
                                          'budget_curve.py:DATASET).', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Suite folder: one sub-workdir per budget, the '
                               'comparison and the curve.')
_DRY_RUN = flags.DEFINE_bool('dry_run', False, 'Print every run it would make, then exit.')
_KEEP_GOING = flags.DEFINE_bool('keep_going', False, 'Run the others when a run fails.')


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise cli.UsageError(f'unexpected arguments: {argv[1:]}')
  from experiments import suite
  from hdsemg_jax.reporting import budget, compare, results
  config, workdir = _CONFIG.value, _WORKDIR.value
  outcome = suite.command(config, workdir, dry_run=_DRY_RUN.value, keep_going=_KEEP_GOING.value,
                          commands=(cli.command_line(),))
  if outcome is None:
    return
  specs = suite.plan(config, workdir)
  runs = [dataclasses.replace(compare.load_run(s.workdir), label=s.label, protocol=s.protocol)
          for s in specs if os.path.isfile(os.path.join(s.workdir, results.RESULTS_FILE))]
  metrics = tuple(dict.fromkeys(('decision_accuracy/1', str(config.suite.metric))))
  points = budget.budget_points(runs, metrics)
  paths = budget.write_budget_report(points, workdir,
                                     f'{config.dataset.name}: accuracy against budget')
  print(budget.budget_markdown(points))
  print('wrote ' + ', '.join(paths.values()))
  undone = launch_flags.report_outcome(outcome)
  if undone:
    cli.fail('unfinished:\n  ' + '\n  '.join(undone), cli.FAILED_EXIT)


if __name__ == '__main__':
  cli.run(main)
