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

import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where results are written.')
_DRY_RUN = flags.DEFINE_bool('dry_run', False, 'Print the folds and their trials, then exit.')
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    'allow_config_change', False,
    'Continue a workdir whose config.json differs from --config (the differences are logged).')
flags.mark_flags_as_required(['config'])


def _fail(message: str) -> None:
  sys.stderr.write(f'error: {message}\n')
  sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with config errors as one clean line instead of a traceback."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    _fail(f'{e}\nPass --helpshort or --helpfull to see help on flags.')
  except (AttributeError, KeyError) as e:
    # ml_collections raises these for an override of a key the config does not have; the
    # message is the key and maybe a suggestion, quoted and escaped once or twice over.
    text = str(e.args[0] if e.args else e)
    name = (re.findall(r'[A-Za-z_][A-Za-z0-9_]*', text) or ['?'])[0]
    hint = re.search(r'Did you mean [^\\]*?\?', text)
    culprits = [a for a in argv[1:] if a.startswith('--config.') and name in a.split('=')[0]]
    _fail(f'unknown config key {name!r} in {" ".join(culprits) or "the config"}: '
          + (hint.group(0) if hint else 'check its spelling against the config file.'))
  except (TypeError, ValueError) as e:
    # A config file assigning a value of the wrong type to a typed key, for instance.
    _fail(f'invalid config: {e}')
  raise AssertionError('unreachable')


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  # Imported after the flags: JAX has not started, so the CPU's device split can still be set
  # (run_setup.resolve does it before any computation).
  from hdsemg_jax import process_setup
  from hdsemg_jax.run import experiment, setup as run_setup
  process_setup.enable_compilation_cache()
  process_setup.quiet_library_logs()
  try:
    if _DRY_RUN.value:
      print(run_setup.describe(run_setup.resolve(_CONFIG.value)))
      return
    if not _WORKDIR.value:
      raise ValueError('--workdir is required (where results are written).')
    experiment.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                                  allow_config_change=_ALLOW_CONFIG_CHANGE.value)
  except (ValueError, OSError) as e:
    logging.error('%s', e)
    raise SystemExit(f'error: {e}') from None


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
