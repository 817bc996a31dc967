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

import sys
from typing import Any

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
    # ml_collections raises these for an override of a key the config does not have.
    name = str(e).strip('"\'')
    culprits = [a for a in argv[1:] if a.startswith('--config.') and name in a.split('=')[0]]
    _fail(f'unknown config key {name!r} in {" ".join(culprits) or "the config"}; '
          'check its spelling against the config file.')
  except (TypeError, ValueError) as e:
    # A config file assigning a value of the wrong type to a typed key, for instance.
    _fail(f'invalid config: {e}')
  raise AssertionError('unreachable')


def _type_name(value: Any) -> str:
  return type(value).__name__


def _compatible(default: Any, value: Any) -> bool:
  if default is None or value is None:
    return True  # Placeholders and optional keys: any value of the key's own declared type.
  if isinstance(default, bool) or isinstance(value, bool):
    return isinstance(default, bool) and isinstance(value, bool)
  if isinstance(default, float):
    return isinstance(value, (int, float))
  if isinstance(default, (tuple, list)):
    if not isinstance(value, (tuple, list)):
      return False
    element_types = {type(d) for d in default}
    return len(element_types) != 1 or all(
        _compatible(default[0], v) for v in value)
  return isinstance(value, type(default))


def check_types(config: Any, default: Any, prefix: str = 'config') -> None:
  """Every key the default config has must hold a value of the default's type."""
  for key, ref in default.items():
    if key not in config:
      continue
    value = config[key]
    if hasattr(ref, 'items'):
      if hasattr(value, 'items'):
        check_types(value, ref, f'{prefix}.{key}')
      continue
    if not _compatible(ref, value):
      want = _type_name(ref) + (f' of {_type_name(ref[0])}' if isinstance(ref, tuple) and ref
                                else '')
      raise ValueError(f'{prefix}.{key}={value!r} has the wrong type: expected {want}.')


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  from experiments.configs import default
  from hdsemg_jax import experiment, runtime  # Imported after flags: JAX is not started yet.
  runtime.enable_compilation_cache()
  config = _CONFIG.value
  try:
    check_types(config, default.get_config())
    if _DRY_RUN.value:
      spec, trials = experiment.load_data(config)
      from hdsemg_jax import protocols
      print(experiment.describe_folds(spec, trials, protocols.make_folds(trials, config.protocol)))
      return
    if not _WORKDIR.value:
      raise ValueError('--workdir is required (where results are written).')
    # Before any JAX computation: the CPU's device count is fixed once JAX starts.
    settings = runtime.configure_devices(config)
    logging.info('devices: %s', settings)
    experiment.train_and_evaluate(config, _WORKDIR.value,
                                  allow_config_change=_ALLOW_CONFIG_CHANGE.value)
  except (ValueError, OSError) as e:
    logging.error('%s', e)
    raise SystemExit(f'error: {e}') from None


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
