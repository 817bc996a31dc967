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


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise cli.UsageError(f'unexpected arguments: {argv[1:]}')
  from experiments import suite
  from hdsemg_jax import process_setup
  from hdsemg_jax.reporting import budget, compare, results
  process_setup.enable_compilation_cache()
  process_setup.quiet_library_logs()
  if not _WORKDIR.value:
    raise cli.UsageError('--workdir is required (the suite folder).')
  settings = launch_flags.settings(keep_going=False)
  if _DRY_RUN.value:
    print(suite.describe(suite.plan(_CONFIG.value, _WORKDIR.value)))
    return
  _, _, _, outcome = suite.run_suite(_CONFIG.value, _WORKDIR.value,
                                     commands=(cli.command_line(),), settings=settings)
  if outcome.job_id is not None and not settings.wait:
    print(f'submitted SLURM job array {outcome.job_id}; rerun this command for the curve.')
    return
  specs = suite.plan(_CONFIG.value, _WORKDIR.value)
  runs = [dataclasses.replace(compare.load_run(s.workdir), label=s.label, protocol=s.protocol)
          for s in specs if os.path.isfile(os.path.join(s.workdir, results.RESULTS_FILE))]
  metrics = tuple(dict.fromkeys(('decision_accuracy/1', str(_CONFIG.value.suite.metric))))
  points = budget.budget_points(runs, metrics)
  paths = budget.write_budget_report(points, _WORKDIR.value,
                                     f'{_CONFIG.value.dataset.name}: accuracy against budget')
  print(budget.budget_markdown(points))
  print('wrote ' + ', '.join(paths.values()))
  undone = launch_flags.report_outcome(outcome)
  if undone:
    cli.fail('unfinished:\n  ' + '\n  '.join(undone), cli.FAILED_EXIT)


if __name__ == '__main__':
  cli.run(main)
