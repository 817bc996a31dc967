r"""Runs an experiment config.

  python -m experiments.main --config=experiments/configs/default.py --workdir=/tmp/run
  python -m experiments.main --config=experiments/configs/default.py --dry_run

Rerunning the same command on the same workdir resumes it: finished folds and seeds
are skipped, unfinished ones continue from their latest checkpoint. A workdir of
another config is refused unless --allow_config_change is given.

Devices: --config.parallel=auto|none|pmap|sharding, --config.num_cpu_devices=auto|N
(the CPU split into N devices, e.g. to try the parallel modes on a laptop) and
--config.seed_parallel=true (a fold's seeds in one vmapped program); both device
settings are resolved here, before JAX starts, and recorded in config.json:

  python -m experiments.main --config=experiments/configs/tiny.py --workdir=/tmp/tiny4 \
      --config.num_cpu_devices=4 --config.parallel=pmap --config.seed_parallel=true

Split into tasks (`experiments.launch_flags`): ``--fold_groups=N`` runs the folds as N
tasks in ``<workdir>/tasks/``, on ``--workers=N`` local processes or as a SLURM job
array (``--executor=slurm``); then their rows are gathered into ``<workdir>`` and
its report written, as if one process had run them all:

  python -m experiments.main --config=experiments/configs/flexemg.py:leave_one_subject_out \
      --config.dataset.manual_dir=../shared/data/flexemg --workdir=/tmp/loso \
      --executor=slurm --fold_groups=3 --slurm.time_min=30

One run over several processes (``srun --ntasks=2 python -m experiments.main ...``):
JAX's SLURM detection starts `jax.distributed`, the devices of every process form
one mesh, process 0 writes the results (README, "Several hosts").
"""

from __future__ import annotations

import os

from absl import flags
from ml_collections import config_flags

from experiments import cli, launch_flags

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where results are written.')
_DRY_RUN = flags.DEFINE_bool('dry_run', False, 'Print what the run would do (model, steps, '
                             'devices, folds and their trials), then exit.')
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    'allow_config_change', False,
    'Continue a workdir whose config.json differs from --config (the differences are logged).')
flags.mark_flags_as_required(['config'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise cli.UsageError(f'unexpected arguments: {argv[1:]}')
  # Imported after the flags: JAX has not started, so the CPU's device split can still be set
  # (run.setup.resolve does it before any computation).
  from hdsemg_jax import process_setup
  from hdsemg_jax.run import experiment, setup as run_setup
  process_setup.enable_compilation_cache()
  process_setup.quiet_library_logs()
  if not _DRY_RUN.value and not _WORKDIR.value:
    raise cli.UsageError('--workdir is required (where results are written).')
  settings = launch_flags.settings()
  setup = run_setup.resolve(_CONFIG.value)  # Refuses a bad config before anything is written.
  if _DRY_RUN.value:
    print(run_setup.describe(setup, _WORKDIR.value))
    return
  if settings.in_process and settings.fold_groups == 1:
    experiment.run(setup, _WORKDIR.value, allow_config_change=_ALLOW_CONFIG_CHANGE.value)
    return
  if _ALLOW_CONFIG_CHANGE.value:
    raise cli.UsageError('--allow_config_change is for a run in this process only (no '
                         '--executor, --workers or --fold_groups).')
  from hdsemg_jax.run import launch
  # Each task resolves the devices ('auto') where it runs: the config as given, not `setup`'s.
  run = launch.Run(name='run', workdir=_WORKDIR.value, config=_CONFIG.value)
  outcome = launch.launch([run], _WORKDIR.value, settings, {'kind': 'experiment',
                                                            'commands': [cli.command_line()]})
  if outcome.job_id and not settings.wait:
    print(f'submitted SLURM job array {outcome.job_id}: {len(outcome.tasks)} task(s); rerun '
          'this command to gather them when they have finished.')
    return
  undone = launch_flags.report_outcome(outcome)
  if undone:
    cli.fail('unfinished:\n  ' + '\n  '.join(undone), cli.FAILED_EXIT)
  from hdsemg_jax import workdir as workdir_lib
  print(open(os.path.join(_WORKDIR.value, workdir_lib.TABLE_FILE)).read())


if __name__ == '__main__':
  cli.run(main)
