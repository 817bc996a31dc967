"""One experiment: a dataset, a protocol's folds, a model, several seeds.

``train_and_evaluate(config, workdir)`` trains a model per fold and seed on the
fold's training trials, scores the final model on its test trials (test data
never selects anything) and writes ``config.json``, ``results.jsonl`` and
``results.md`` into ``workdir``.

Runs are preemption-safe. Training states are checkpointed under
``checkpoints/<fold>/seed_<n>/`` and every finished model is kept under
``models/<fold>/seed_<n>/``. Rerunning the same command on the same workdir skips
the (fold, seed) pairs whose rows are already in ``results.jsonl`` and continues
the others from their latest checkpoint; the results equal those of an
uninterrupted run (``train_seconds`` aside). A workdir written with another
config is refused unless ``allow_config_change`` is set.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import sys
import time
from typing import Any, Sequence

import ml_collections
import numpy as np
from absl import logging

from hdsemg_jax import checkpointing, inference, models, protocols, provenance
from hdsemg_jax.data import trials as trials_lib
from hdsemg_jax.data.trials import DatasetSpec, Trial
from hdsemg_jax.evaluation import evaluate
from hdsemg_jax.preprocessing import filters
from hdsemg_jax.reporting import results, tables
from hdsemg_jax.training import steps, trainer

TABLE_METRICS = ('frame_accuracy', 'vote_accuracy/150')


def load_data(config: ml_collections.ConfigDict) -> tuple[DatasetSpec, list[Trial]]:
  """Reads the configured dataset (preparing it on first use) and conditions its signals."""
  spec, trials = trials_lib.load(config.dataset.name, config.dataset.data_dir,
                                 config.dataset.manual_dir)
  return spec, filters.apply_filters(trials, config.dataset.filters, spec.sampling_rate_hz)


def training_frames(trials: Sequence[Trial], stride: int) -> tuple[np.ndarray, np.ndarray]:
  """Usable frames of ``trials`` (every ``stride``-th of each trial) and their labels."""
  if stride < 1:
    raise ValueError(f'train.frame_stride must be >= 1; got {stride}.')
  xs, ys = [], []
  for t in trials:
    keep = np.flatnonzero(t.label >= 0)[::stride]
    xs.append(t.emg[keep])
    ys.append(t.label[keep])
  return np.concatenate(xs), np.concatenate(ys)


def model_kwargs(model_config: ml_collections.ConfigDict) -> dict[str, Any]:
  kwargs = model_config.to_dict()
  kwargs.pop('name')
  return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def describe_folds(spec: DatasetSpec, trials: Sequence[Trial],
                   folds: Sequence[protocols.Fold]) -> str:
  """The fold table as text: what ``--dry_run`` prints."""
  lines = [f'{spec.name} ({"synthetic" if spec.synthetic else "recorded"}), '
           f'{len(trials)} trials, {len(folds)} folds']
  for fold in folds:
    lines.append(f'fold {fold.id}:')
    lines.append(f'  train ({len(fold.train)}): {" ".join(fold.train)}')
    lines.append(f'  test  ({len(fold.test)}): {" ".join(fold.test)}')
  return '\n'.join(lines)


def run_fold_seed(config: ml_collections.ConfigDict, spec: DatasetSpec, trials: Sequence[Trial],
                  fold: protocols.Fold, seed: int) -> dict[str, Any]:
  """Trains and scores one (fold, seed); returns its results row."""
  train_trials = trials_lib.select(trials, fold.train)
  test_trials = trials_lib.select(trials, fold.test)
  frames, labels = training_frames(train_trials, config.train.frame_stride)
  model = models.build(config.model.name, spec.num_classes, seed=seed,
                       **model_kwargs(config.model))
  start = time.perf_counter()
  graphdef, state = trainer.fit(model, frames, labels, config.train, seed,
                                name=f'fold {fold.id} seed {seed}')
  train_seconds = time.perf_counter() - start
  predict = steps.make_predict(graphdef)
  predictions = evaluate.predict_trials(lambda x: predict(state, x), test_trials,
                                        config.eval.batch_size)
  scores = evaluate.score(predictions, test_trials, spec.num_classes, config.eval.vote_windows)
  return {
      'dataset': spec.name,
      'dataset_version': spec.version,
      'synthetic': spec.synthetic,
      'protocol': config.protocol.name,
      'model': config.model.name,
      'fold': fold.id,
      'seed': seed,
      **scores,
      'num_params': models.num_params(model),
      'num_train_frames': int(len(frames)),
      'train_seconds': round(train_seconds, 3),
      'split': {role: d['trials'] for role, d in fold.describe(trials).items()},
      'split_detail': fold.describe(trials),
      'protocol_subjects': config.protocol.subjects,
      'protocol_folds': config.protocol.folds,
  }


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> list[dict[str, Any]]:
  """Runs every configured fold and seed; returns the results rows."""
  spec, trials = load_data(config)
  folds = protocols.make_folds(trials, config.protocol)
  os.makedirs(workdir, exist_ok=True)
  results.write_json(os.path.join(workdir, results.CONFIG_FILE), config.to_dict())
  rows = []
  total = len(folds) * len(config.seeds)
  for fold in folds:
    for seed in config.seeds:
      logging.info('[%d/%d] fold %s, seed %d', len(rows) + 1, total, fold.id, seed)
      row = run_fold_seed(config, spec, trials, fold, int(seed))
      results.append_row(workdir, row)
      rows.append(row)
      logging.info('fold %s seed %d: frame accuracy %.3f, vote accuracy %s', fold.id, seed,
                   row['frame_accuracy'], row['vote_accuracy'])
  table = tables.run_report(
      rows, title=f'{config.model.name} on {spec.name}, {config.protocol.name}',
      synthetic=spec.synthetic, metrics=TABLE_METRICS)
  results.write_atomic(os.path.join(workdir, results.TABLE_FILE), table)
  print(table)
  return rows
