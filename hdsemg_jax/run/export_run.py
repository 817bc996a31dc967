"""Exports a finished run's saved model, checked on real frames of its fold's test set.

  export_run(run_dir, 'S01-s1', 0, 'onnx', 'export/')

The model is read from the run directory (`saved_model`); the parity frames are
the fold's test trials, conditioned by the model's own `Conditioning` (the one
object the run trained with), so nothing re-reads or re-defaults the filter
settings. The fold's test trials come from its results row, or, for a model
without a row yet, from the run's stored config through `setup.folds_for_run`.
"""

from __future__ import annotations

import os
from typing import Sequence

import ml_collections
import numpy as np

from hdsemg_jax import config as config_lib
from hdsemg_jax import saved_model, workdir
from hdsemg_jax.data import trials as trials_lib
from hdsemg_jax.data.trials import Trial
from hdsemg_jax.deployment import export
from hdsemg_jax.reporting import results
from hdsemg_jax.run import setup as setup_lib


def _test_trial_ids(run_dir: str, config: ml_collections.ConfigDict, fold: str, seed: int,
                    trials: Sequence[Trial]) -> list[str]:
  """The fold's test trials: from its results row, else from the run's fold table."""
  rows_path = os.path.join(run_dir, results.RESULTS_FILE)
  if os.path.exists(rows_path):
    for row in results.read_rows(rows_path):
      if row.get('fold') == fold and row.get('seed') == seed and 'split' in row:
        return list(row['split']['test'])
  _, settings = setup_lib.check_config(config)
  folds = setup_lib.folds_for_run(trials, settings)
  for f in folds:
    if f.id == fold:
      return list(f.test)
  raise export.ExportError(f'fold {fold!r} is not a fold of the run in {run_dir} (folds: '
                           f'{", ".join(f.id for f in folds)}).')


def fold_test_frames(run_dir: str, fold: str, seed: int, model: saved_model.Model, *,
                     max_frames: int = export.DEFAULT_MAX_PARITY_FRAMES,
                     data_dir: str | None = None,
                     manual_dir: str | None = None) -> tuple[np.ndarray, str]:
  """Up to ``max_frames`` usable test frames of the fold, conditioned as the model's training
  frames were, evenly spread over the test set; and a description of them.

  The dataset is the model's, read where the run read it (``config.json``'s
  ``dataset.data_dir`` / ``manual_dir``, unless ``data_dir`` / ``manual_dir`` say).
  """
  stored = results.read_json(os.path.join(run_dir, results.CONFIG_FILE), 'the run config')
  config = ml_collections.ConfigDict(config_lib.upgrade_stored(stored))
  spec, trials = trials_lib.load(model.info.dataset, data_dir or config.dataset.data_dir,
                                 manual_dir or config.dataset.manual_dir)
  ids = _test_trial_ids(run_dir, config, fold, seed, trials)
  test = trials_lib.select(trials, ids)
  if not test:
    raise export.ExportError(f'none of fold {fold!r}\'s test trials ({", ".join(ids)}) are in '
                             f'{spec.name}.')
  test = model.info.conditioning.apply(test)
  frames = np.concatenate([t.emg[t.label >= 0] for t in test])
  if len(frames) > max_frames:
    frames = frames[np.unique(np.linspace(0, len(frames) - 1, max_frames).round().astype(int))]
  return frames, (f'{len(frames)} usable frames of the {len(test)} test trials of fold '
                  f'{fold} ({spec.name})')


def export_run(run_dir: str, fold: str, seed: int, fmt: str, out_dir: str, *,
               atol: float = export.DEFAULT_ATOL,
               max_parity_frames: int = export.DEFAULT_MAX_PARITY_FRAMES,
               data_dir: str | None = None, manual_dir: str | None = None,
               platforms: Sequence[str] | None = None) -> export.ExportResult:
  """Exports the saved model of ``fold`` and ``seed`` of the run in ``run_dir``.

  Parity is checked on the fold's test frames (`fold_test_frames`); see
  `export.export_model` for the rest and the errors.
  """
  model_dir = workdir.model_dir(run_dir, fold, int(seed))
  model = saved_model.load_model_dir(model_dir)
  frames, description = fold_test_frames(run_dir, fold, int(seed), model,
                                         max_frames=max_parity_frames, data_dir=data_dir,
                                         manual_dir=manual_dir)
  source = {'run_dir': os.path.abspath(run_dir), 'model_dir': os.path.abspath(model_dir)}
  return export.export_model(model, out_dir, fmt, frames, atol=atol, parity_source=description,
                             source=source, platforms=platforms)
