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
"""

from __future__ import annotations

from absl import flags
from ml_collections import config_flags

from experiments import cli

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
  setup = run_setup.resolve(_CONFIG.value)  # Refuses a bad config before anything is written.
  if _DRY_RUN.value:
    print(run_setup.describe(setup, _WORKDIR.value))
    return
  experiment.run(setup, _WORKDIR.value, allow_config_change=_ALLOW_CONFIG_CHANGE.value)


if __name__ == '__main__':
  cli.run(main)
