"""A run's directory: where each file lives, and what a rerun finds there to resume.

Layout::

  config.json           the resolved config (`CONFIG_FILE`)
  results.jsonl         one row per (fold, seed), appended as each finishes
  results.md, *.png     the tables and figures of the rows
  curves.jsonl          per-epoch training curves; tensorboard/<fold>/seed_<n>/
  checkpoints/<fold>/seed_<n>/            training checkpoints (seeds_<a>-<b>/ when
  checkpoints_finetune/<fold>/seed_<n>/   several seeds train together)
  models/<fold>/seed_<n>/                 the final, scored model

Resuming (`open_run`): a workdir written with another config is refused with the
differing keys listed, unless allowed; the rows already in ``results.jsonl`` are
returned by (fold, seed) so that those pairs are skipped. A row is appended as one
``write`` of a whole line and fsynced, but a kill inside that call can still leave
a torn last line; it is dropped here (its pair simply runs again).
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from absl import logging

from hdsemg_jax import config as config_lib
from hdsemg_jax.config import ConfigError
from hdsemg_jax.reporting import results

CONFIG_FILE = results.CONFIG_FILE
RESULTS_FILE = results.RESULTS_FILE
TABLE_FILE = results.TABLE_FILE
CHECKPOINT_DIR = 'checkpoints'
FINETUNE_CHECKPOINT_DIR = 'checkpoints_finetune'
MODEL_DIR = 'models'
CURVES_FILE = 'curves.jsonl'
TENSORBOARD_DIR = 'tensorboard'


def _fold_dir(fold_id: str) -> str:
  return fold_id.replace(os.sep, '_')


def pair_dir(workdir: str, kind: str, fold_id: str, seed: int) -> str:
  """``workdir/<kind>/<fold>/seed_<n>``: where a (fold, seed)'s checkpoints or model live."""
  return os.path.join(workdir, kind, _fold_dir(fold_id), f'seed_{seed}')


def group_dir(workdir: str, kind: str, fold_id: str, seeds: Sequence[int]) -> str:
  """``workdir/<kind>/<fold>/seeds_<a>-<b>-...``: the checkpoints of seeds trained together."""
  return os.path.join(workdir, kind, _fold_dir(fold_id),
                      'seeds_' + '-'.join(str(s) for s in seeds))


def model_dir(workdir: str, fold_id: str, seed: int) -> str:
  """Where the final model of a (fold, seed) is saved (`hdsemg_jax.saved_model`)."""
  return pair_dir(workdir, MODEL_DIR, fold_id, seed)


def check_writable(workdir: str) -> None:
  """Fails early, before any work, if ``workdir`` cannot be created or written."""
  path = os.path.abspath(workdir)
  while not os.path.exists(path):
    path = os.path.dirname(path)
  if not os.path.isdir(path) or not os.access(path, os.W_OK | os.X_OK):
    what = 'is not a folder' if not os.path.isdir(path) else 'is not writable'
    raise ConfigError(f'workdir {workdir} cannot be written: {path} {what}.')


def check_config(workdir: str, config_dict: Mapping[str, Any], allow_config_change: bool) -> None:
  """Refuses a workdir holding a run of another config (unless allowed); records the config."""
  path = os.path.join(workdir, CONFIG_FILE)
  has_rows = os.path.exists(os.path.join(workdir, RESULTS_FILE))
  if os.path.exists(path):
    stored = results.read_json(path, 'the stored config')
    diffs = config_lib.differences(stored, config_dict)
    if diffs:
      message = (f'{workdir} holds a run of another config ({path}); differing keys:\n  '
                 + '\n  '.join(diffs))
      if not allow_config_change:
        raise ConfigError(message + '\nUse a new workdir, or pass --allow_config_change to '
                         'continue this one with the new config.')
      logging.warning('%s\ncontinuing with the new config (--allow_config_change).', message)
  elif has_rows and not allow_config_change:
    raise ConfigError(f'{workdir} holds {RESULTS_FILE} but no {CONFIG_FILE}, so its config is '
                     'unknown; pass --allow_config_change to continue it anyway.')
  results.write_json(path, dict(config_dict))


def finished_rows(workdir: str) -> dict[tuple[str, int], dict[str, Any]]:
  """The rows already in ``results.jsonl``, by (fold, seed); a torn last line is dropped."""
  path = os.path.join(workdir, RESULTS_FILE)
  if not os.path.exists(path):
    return {}
  with open(path, 'rb') as f:
    data = f.read()
  if data and not data.endswith(b'\n'):
    keep = data.rfind(b'\n') + 1
    logging.warning('%s: dropping a partially written last row (%d bytes).', path,
                    len(data) - keep)
    with open(path, 'r+b') as f:
      f.truncate(keep)
      os.fsync(f.fileno())
  done: dict[tuple[str, int], dict[str, Any]] = {}
  for row in results.read_rows(path):
    key = (row.get('fold'), row.get('seed'))
    if key in done:
      raise ValueError(f'{path}: two rows for fold {key[0]} seed {key[1]}; remove one.')
    done[key] = row
  return done


def open_run(workdir: str, config_dict: Mapping[str, Any],
             allow_config_change: bool = False) -> dict[tuple[str, int], dict[str, Any]]:
  """Reopens ``workdir`` (created by the run's lock) for ``config_dict``; its finished rows."""
  check_config(workdir, config_dict, allow_config_change)
  return finished_rows(workdir)
