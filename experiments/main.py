r"""Runs an experiment config.

  python -m experiments.main --config=experiments/configs/default.py --workdir=/tmp/run
  python -m experiments.main --config=experiments/configs/default.py --dry_run
"""

from __future__ import annotations

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where results are written.')
_DRY_RUN = flags.DEFINE_bool('dry_run', False, 'Print the folds and their trials, then exit.')
flags.mark_flags_as_required(['config'])


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  from hdsemg_jax import experiment, runtime  # Imported after flags: JAX starts here.
  runtime.enable_compilation_cache()
  config = _CONFIG.value
  try:
    if _DRY_RUN.value:
      spec, trials = experiment.load_data(config)
      from hdsemg_jax import protocols
      print(experiment.describe_folds(spec, trials, protocols.make_folds(trials, config.protocol)))
      return
    if not _WORKDIR.value:
      raise ValueError('--workdir is required (where results are written).')
    experiment.train_and_evaluate(config, _WORKDIR.value)
  except (ValueError, OSError) as e:
    logging.error('%s', e)
    raise SystemExit(f'error: {e}') from None


if __name__ == '__main__':
  app.run(main)
