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
from hdsemg_jax.reporting import plots, results, tables
from hdsemg_jax.training import steps, trainer

TABLE_METRICS = ('frame_accuracy', 'vote_accuracy/150')
CHECKPOINT_DIR = 'checkpoints'
MODEL_DIR = 'models'

# Fault injection for the preemption tests: HDSEMG_FAULT=POINT[:N] kills this process with
# SIGKILL at the N-th (default first) time it reaches POINT, as a preemption would.
FAULT_ENV = 'HDSEMG_FAULT'
FAULT_POINTS = ('after_checkpoint', 'during_eval', 'after_row')
_fault_counts: collections.Counter = collections.Counter()


def _fault_spec() -> tuple[str, int] | None:
  spec = os.environ.get(FAULT_ENV)
  if not spec:
    return None
  point, _, count = spec.partition(':')
  if point not in FAULT_POINTS or not (count or '1').isdigit():
    raise ValueError(f'{FAULT_ENV}={spec!r}: expected POINT[:N] with POINT one of '
                     f'{", ".join(FAULT_POINTS)}.')
  return point, int(count or 1)


def fault_point(name: str) -> None:
  """Kills the process here if ``$HDSEMG_FAULT`` asks for it (tests only)."""
  spec = _fault_spec()
  if spec is None or spec[0] != name:
    return
  _fault_counts[name] += 1
  if _fault_counts[name] == spec[1]:
    print(f'HDSEMG_FAULT: killed at {name}:{spec[1]}', file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


class _Checkpoints(checkpointing.TrainCheckpoints):
  """Training checkpoints with the ``after_checkpoint`` fault point."""

  def save(self, state) -> None:
    super().save(state)
    fault_point('after_checkpoint')


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


def pair_dir(workdir: str, kind: str, fold_id: str, seed: int) -> str:
  """``workdir/<kind>/<fold>/seed_<n>``: where a (fold, seed)'s checkpoints or model live."""
  return os.path.join(workdir, kind, fold_id.replace(os.sep, '_'), f'seed_{seed}')


def run_fold_seed(config: ml_collections.ConfigDict, spec: DatasetSpec, trials: Sequence[Trial],
                  fold: protocols.Fold, seed: int, workdir: str | None = None) -> dict[str, Any]:
  """Trains and scores one (fold, seed); returns its results row.

  With ``workdir``, training resumes from and writes checkpoints there, and the
  final model is saved for `hdsemg_jax.load_model`.
  """
  train_trials = trials_lib.select(trials, fold.train)
  test_trials = trials_lib.select(trials, fold.test)
  frames, labels = training_frames(train_trials, config.train.frame_stride)
  # The grid comes from the data; models that need it (geng_convnet) take it, others ignore it.
  kwargs = {**model_kwargs(config.model), 'grid_shape': spec.grid_shape}
  model = models.build(config.model.name, spec.num_classes, seed=seed, **kwargs)
  num_params = models.num_params(model)
  checkpoints = None
  if workdir is not None:
    checkpoints = _Checkpoints(pair_dir(workdir, CHECKPOINT_DIR, fold.id, seed))
  checkpoint_config = config.get('checkpoint') or ml_collections.ConfigDict()
  start = time.perf_counter()
  try:
    graphdef, state = trainer.fit(model, frames, labels, config.train, seed,
                                  name=f'fold {fold.id} seed {seed}', checkpoints=checkpoints,
                                  every_steps=int(checkpoint_config.get('every_steps', 0)))
  finally:
    if checkpoints is not None:
      checkpoints.close()
  train_seconds = time.perf_counter() - start
  predict = steps.make_predict(graphdef)

  def predict_batch(x: np.ndarray):
    out = predict(state, x)
    fault_point('during_eval')
    return out

  predictions = evaluate.predict_trials(predict_batch, test_trials, config.eval.batch_size)
  scores = evaluate.score(predictions, test_trials, spec.num_classes, config.eval.vote_windows)
  if workdir is not None:
    inference.save_model(
        pair_dir(workdir, MODEL_DIR, fold.id, seed), state,
        inference.ModelInfo(model=config.model.name, model_kwargs=kwargs,
                            num_classes=spec.num_classes, grid_shape=spec.grid_shape,
                            class_names=spec.class_names, dataset=spec.name,
                            dataset_version=spec.version, fold=fold.id, seed=seed,
                            eval_batch_size=int(config.eval.batch_size)))
  return {
      'dataset': spec.name,
      'dataset_version': spec.version,
      'synthetic': spec.synthetic,
      'protocol': config.protocol.name,
      'model': config.model.name,
      'fold': fold.id,
      'seed': seed,
      **scores,
      'num_params': num_params,
      'num_train_frames': int(len(frames)),
      'train_seconds': round(train_seconds, 3),
      'split': {role: d['trials'] for role, d in fold.describe(trials).items()},
      'split_detail': fold.describe(trials),
      'protocol_subjects': config.protocol.subjects,
      'protocol_folds': config.protocol.folds,
      'provenance': provenance.collect(config.to_dict(), spec.name, spec.version),
  }


def check_writable(workdir: str) -> None:
  """Fails early, before any work, if ``workdir`` cannot be created or written."""
  path = os.path.abspath(workdir)
  while not os.path.exists(path):
    path = os.path.dirname(path)
  if not os.path.isdir(path) or not os.access(path, os.W_OK | os.X_OK):
    what = 'is not a folder' if not os.path.isdir(path) else 'is not writable'
    raise ValueError(f'workdir {workdir} cannot be written: {path} {what}.')


def _flatten(value: Any, prefix: str = '') -> dict[str, Any]:
  if isinstance(value, dict):
    out = {}
    for k, v in value.items():
      out.update(_flatten(v, f'{prefix}{k}.'))
    return out
  return {prefix[:-1]: value}


def config_differences(stored: dict[str, Any], new: dict[str, Any]) -> list[str]:
  """``'key: stored -> new'`` for every key whose value differs, is missing or is new."""
  a, b = _flatten(stored), _flatten(json.loads(json.dumps(new)))
  missing = object()
  lines = []
  for key in sorted(set(a) | set(b)):
    old, now = a.get(key, missing), b.get(key, missing)
    if old != now:
      show = lambda v: '(absent)' if v is missing else json.dumps(v)  # noqa: E731
      lines.append(f'{key}: {show(old)} -> {show(now)}')
  return lines


def check_config(workdir: str, config_dict: dict[str, Any], allow_config_change: bool) -> None:
  """Refuses a workdir holding a run of another config (unless allowed); records the config."""
  path = os.path.join(workdir, results.CONFIG_FILE)
  has_rows = os.path.exists(os.path.join(workdir, results.RESULTS_FILE))
  if os.path.exists(path):
    try:
      with open(path) as f:
        stored = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
      raise ValueError(f'{path}: cannot read the stored config ({e}).') from None
    diffs = config_differences(stored, config_dict)
    if diffs:
      message = (f'{workdir} holds a run of another config ({path}); differing keys:\n  '
                 + '\n  '.join(diffs))
      if not allow_config_change:
        raise ValueError(message + '\nUse a new workdir, or pass --allow_config_change to '
                         'continue this one with the new config.')
      logging.warning('%s\ncontinuing with the new config (--allow_config_change).', message)
  elif has_rows and not allow_config_change:
    raise ValueError(f'{workdir} holds {results.RESULTS_FILE} but no {results.CONFIG_FILE}, so '
                     'its config is unknown; pass --allow_config_change to continue it anyway.')
  results.write_json(path, config_dict)


def finished_rows(workdir: str) -> dict[tuple[str, int], dict[str, Any]]:
  """The rows already in ``results.jsonl``, by (fold, seed); a torn last line is dropped."""
  path = os.path.join(workdir, results.RESULTS_FILE)
  if not os.path.exists(path):
    return {}
  with open(path, 'rb') as f:
    data = f.read()
  if data and not data.endswith(b'\n'):
    # A kill during `append_row` leaves a partial last line; its pair simply runs again.
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


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       allow_config_change: bool = False) -> list[dict[str, Any]]:
  """Runs every configured fold and seed not already finished; returns the results rows."""
  _fault_spec()  # A misspelt fault point is an error, not a run without the fault.
  check_writable(workdir)
  spec, trials = load_data(config)
  folds = protocols.make_folds(trials, config.protocol)
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise ValueError(f'workdir {workdir} cannot be created: {e}.') from None
  check_config(workdir, config.to_dict(), allow_config_change)
  done = finished_rows(workdir)
  rows = []
  total = len(folds) * len(config.seeds)
  for fold in folds:
    for seed in config.seeds:
      seed = int(seed)
      if (fold.id, seed) in done:
        logging.info('[%d/%d] fold %s, seed %d: already in %s, skipped', len(rows) + 1, total,
                     fold.id, seed, results.RESULTS_FILE)
        rows.append(done[(fold.id, seed)])
        continue
      logging.info('[%d/%d] fold %s, seed %d', len(rows) + 1, total, fold.id, seed)
      row = run_fold_seed(config, spec, trials, fold, seed, workdir)
      results.append_row(workdir, row)
      fault_point('after_row')
      rows.append(row)
      logging.info('fold %s seed %d: frame accuracy %.3f, vote accuracy %s', fold.id, seed,
                   row['frame_accuracy'], row['vote_accuracy'])
  table = tables.run_report(
      rows, title=f'{config.model.name} on {spec.name}, {config.protocol.name}',
      synthetic=spec.synthetic, metrics=TABLE_METRICS)
  results.write_atomic(os.path.join(workdir, results.TABLE_FILE), table)
  plots.write_plots(rows, workdir, f'{config.model.name} on {spec.name}, {config.protocol.name}'
                    + (' (synthetic data)' if spec.synthetic else ''))
  print(table)
  return rows
