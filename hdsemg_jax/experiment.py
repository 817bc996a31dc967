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

Adaptation (``config.adapt``, inter-* protocols only): ``'adabn'`` re-estimates
the BatchNorm statistics on the unlabelled test frames before scoring (see
`hdsemg_jax.adaptation`); ``'finetune'`` pre-trains on the fold's training
trials, then fine-tunes on the fold's ``finetune`` trials (the first
``adapt.finetune_trials`` trials of each target gesture, removed from the test
set). The protocol ``intra_session_pretrain`` always fine-tunes. The fine-tune
phase checkpoints under ``checkpoints_finetune/<fold>/seed_<n>/`` and resumes as
pre-training does; ``intra_session_pretrain`` shares one pre-training checkpoint
per seed across its folds (``checkpoints/_pretrain/seed_<n>/``). The saved model
is the adapted one that was scored.

Training curves go to ``curves.jsonl`` (one line per fold, seed, phase and
epoch: loss and accuracy) and to TensorBoard event files under
``tensorboard/<fold>/seed_<n>/``. A resumed run appends the epochs it runs, so
an epoch interrupted part-way may appear twice: the last line counts.

Devices: ``config.parallel`` (``none``, ``pmap``, ``sharding``; ``auto``) and
``config.num_cpu_devices`` are resolved first (`runtime.configure_devices`);
config.json holds the resolved values, so a resume on another device setup is
refused like any other config change, and every row records ``parallel``,
``num_devices``, ``num_cpu_devices`` and ``seed_parallel``. With
``config.seed_parallel`` the seeds of a fold train together in one vmapped
program (`trainer.fit_seeds`), checkpointed as one stacked state under
``checkpoints/<fold>/seeds_<a>-<b>.../``; a resumed fold runs all its seeds
again from that checkpoint (a finished one restores at its final step) and
scores those without a row; ``train_seconds`` is then the time of all the
fold's seeds together. On several hosts, process 0 writes the results.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import signal
import sys
import time
from typing import Any, Iterator, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging

from flax import nnx

from hdsemg_jax import (adaptation, checkpointing, inference, models, protocols, provenance,
                        runtime)
from hdsemg_jax.data import trials as trials_lib
from hdsemg_jax.data.trials import DatasetSpec, Trial
from hdsemg_jax.evaluation import evaluate
from hdsemg_jax.preprocessing import filters
from hdsemg_jax.reporting import plots, results, tables
from hdsemg_jax.training import parallel, trainer

TABLE_METRICS = ('frame_accuracy', 'vote_accuracy/150')
CHECKPOINT_DIR = 'checkpoints'
FINETUNE_CHECKPOINT_DIR = 'checkpoints_finetune'
MODEL_DIR = 'models'
CURVES_FILE = 'curves.jsonl'
TENSORBOARD_DIR = 'tensorboard'
# Protocols whose test data is another session or subject: those that adaptation is for.
ADAPT_PROTOCOLS = ('inter_session', 'leave_one_subject_out')
PRETRAIN_PROTOCOL = 'intra_session_pretrain'
# Used when a config predates the ``adapt`` group.
ADAPT_DEFAULTS = dict(method='none', finetune_trials=1, finetune_layers=('all',),
                      finetune_epochs=4, finetune_learning_rate=0.01,
                      score_on_finetune_split=False)

# What runs from before the device keys existed did: one device, seeds in turn.
DEVICE_DEFAULTS = dict(parallel='none', num_cpu_devices='1', seed_parallel=False)

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


def adapt_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """``config.adapt`` with defaults for missing keys; an unknown method is an error."""
  adapt = ml_collections.ConfigDict({**ADAPT_DEFAULTS, **(config.get('adapt') or {})})
  if adapt.method not in adaptation.ADAPT_METHODS:
    raise ValueError(f'adapt.method={adapt.method!r} is not known (known: '
                     f'{", ".join(adaptation.ADAPT_METHODS)}).')
  protocol = config.protocol.name
  if adapt.method != 'none' and protocol not in ADAPT_PROTOCOLS:
    hint = (' (the target subject is fine-tuned on by the protocol itself)'
            if protocol == PRETRAIN_PROTOCOL else
            f'; for pre-training plus fine-tuning within a session use protocol.name='
            f'{PRETRAIN_PROTOCOL!r}')
    raise ValueError(f'adapt.method={adapt.method!r} applies to the protocols '
                     f'{", ".join(ADAPT_PROTOCOLS)}, not {protocol!r}; set adapt.method=none'
                     + hint + '.')
  return adapt


def make_folds(config: ml_collections.ConfigDict, trials: Sequence[Trial]) -> list[protocols.Fold]:
  """The protocol's folds, split for fine-tuning where ``config.adapt`` asks for it."""
  adapt = adapt_config(config)
  folds = protocols.make_folds(trials, config.protocol)
  if config.protocol.name in ADAPT_PROTOCOLS and (
      adapt.method == 'finetune' or adapt.score_on_finetune_split):
    folds = [protocols.split_for_finetune(f, trials, int(adapt.finetune_trials)) for f in folds]
  return folds


class _Curves:
  """Per-epoch loss and accuracy of one (fold, seed): ``curves.jsonl`` and TensorBoard."""

  def __init__(self, workdir: str, fold_id: str, seed: int):
    self.workdir, self.fold_id, self.seed = workdir, fold_id, seed
    self._writer = None

  def on_epoch(self, phase: str):
    def record(epoch: int, summary: dict[str, float]) -> None:
      line = {'fold': self.fold_id, 'seed': self.seed, 'phase': phase, 'epoch': epoch + 1,
              'loss': summary['loss'], 'accuracy': summary['accuracy']}
      with open(os.path.join(self.workdir, CURVES_FILE), 'a') as f:
        f.write(json.dumps(line) + '\n')
      if self._writer is None:
        from tensorboardX import SummaryWriter  # Only runs with a workdir need it.
        self._writer = SummaryWriter(pair_dir(self.workdir, TENSORBOARD_DIR, self.fold_id,
                                              self.seed))
      for key in ('loss', 'accuracy'):
        self._writer.add_scalar(f'{phase}/{key}', summary[key], epoch + 1)
      self._writer.flush()
    return record

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()


def describe_folds(spec: DatasetSpec, trials: Sequence[Trial],
                   folds: Sequence[protocols.Fold]) -> str:
  """The fold table as text: what ``--dry_run`` prints."""
  lines = [f'{spec.name} ({"synthetic" if spec.synthetic else "recorded"}), '
           f'{len(trials)} trials, {len(folds)} folds']
  for fold in folds:
    lines.append(f'fold {fold.id}:')
    lines.append(f'  train ({len(fold.train)}): {" ".join(fold.train)}')
    lines.append(f'  test  ({len(fold.test)}): {" ".join(fold.test)}')
    if fold.finetune:
      lines.append(f'  finetune ({len(fold.finetune)}): {" ".join(fold.finetune)}')
  return '\n'.join(lines)


def pair_dir(workdir: str, kind: str, fold_id: str, seed: int) -> str:
  """``workdir/<kind>/<fold>/seed_<n>``: where a (fold, seed)'s checkpoints or model live."""
  return os.path.join(workdir, kind, fold_id.replace(os.sep, '_'), f'seed_{seed}')


def group_dir(workdir: str, kind: str, fold_id: str, seeds: Sequence[int]) -> str:
  """``workdir/<kind>/<fold>/seeds_<a>-<b>-...``: the checkpoints of seeds trained together."""
  return os.path.join(workdir, kind, fold_id.replace(os.sep, '_'),
                      'seeds_' + '-'.join(str(s) for s in seeds))


def make_plan(config: ml_collections.ConfigDict) -> parallel.Plan:
  """The `parallel.Plan` of ``config.parallel`` (``'auto'`` resolved on the visible devices)."""
  return parallel.Plan.create(str(config.get('parallel', 'none')))


def _num_cpu_devices(config: ml_collections.ConfigDict) -> int:
  value = str(config.get('num_cpu_devices', 'auto'))
  return int(value) if value.isdigit() else len(jax.devices('cpu'))


def _is_primary() -> bool:
  # On several hosts every process runs the same program; one writes the files.
  return jax.process_index() == 0


@dataclasses.dataclass
class _Trained:
  """The outcome of training the seeds of one fold, before scoring."""
  graphdef: nnx.GraphDef
  states: list
  test_trials: list
  model_kwargs: dict
  num_params: int
  num_train_frames: int
  num_finetune_frames: int
  train_seconds: float


def train_seeds(config: ml_collections.ConfigDict, spec: DatasetSpec, trials: Sequence[Trial],
                fold: protocols.Fold, seeds: Sequence[int], workdir: str | None = None,
                plan: parallel.Plan | None = None) -> _Trained:
  """Trains (and adapts, per ``config.adapt``) ``seeds`` on one fold; several seeds at once.

  One seed trains alone (`trainer.fit`, checkpoints under ``<fold>/seed_<n>``);
  several are vmapped into one program (`trainer.fit_seeds`, one stacked
  checkpoint under ``<fold>/seeds_<a>-<b>...``). ``train_seconds`` covers
  pre-training, fine-tuning and AdaBN of all ``seeds``.
  """
  plan = plan or make_plan(config)
  seeds = [int(s) for s in seeds]
  adapt = adapt_config(config)
  train_trials = trials_lib.select(trials, fold.train)
  test_trials = trials_lib.select(trials, fold.test)
  frames, labels = training_frames(train_trials, config.train.frame_stride)
  # The grid comes from the data; models that need it (geng_convnet) take it, others ignore it.
  kwargs = {**model_kwargs(config.model), 'grid_shape': spec.grid_shape}
  built = [models.build(config.model.name, spec.num_classes, seed=seed, **kwargs)
           for seed in seeds]
  num_params = models.num_params(built[0])
  pretrain_protocol = config.protocol.name == PRETRAIN_PROTOCOL
  finetunes = bool(fold.finetune) and (adapt.method == 'finetune' or pretrain_protocol)
  checkpoint_config = config.get('checkpoint') or ml_collections.ConfigDict()
  every_steps = int(checkpoint_config.get('every_steps', 0))
  writes = workdir is not None and _is_primary()
  curves = [_Curves(workdir, fold.id, seed) for seed in seeds] if writes else None
  label = (f'fold {fold.id} seed {seeds[0]}' if len(seeds) == 1 else
           f'fold {fold.id} seeds {",".join(map(str, seeds))}')

  def checkpoints_at(kind: str, key: str):
    if workdir is None:
      return None
    where = (pair_dir(workdir, kind, key, seeds[0]) if len(seeds) == 1 else
             group_dir(workdir, kind, key, seeds))
    return _Checkpoints(where)

  def train(models_, frames, labels, train_config, phase: str, checkpoints, **kw):
    common = dict(name=label + (' (finetune)' if phase == 'finetune' else ''),
                  checkpoints=checkpoints, every_steps=every_steps, plan=plan, **kw)
    try:
      if len(seeds) == 1:
        graphdef, state = trainer.fit(
            models_[0], frames, labels, train_config, seeds[0],
            on_epoch=curves[0].on_epoch(phase) if curves is not None else None, **common)
        return graphdef, [state]
      return trainer.fit_seeds(
          models_, frames, labels, train_config, seeds,
          on_epoch=[c.on_epoch(phase) for c in curves] if curves is not None else None,
          **common)
    finally:
      if checkpoints is not None:
        checkpoints.close()

  start = time.perf_counter()
  num_finetune_frames = 0
  try:
    # Every fold of intra_session_pretrain pre-trains on the same trials: one shared
    # checkpoint per seed, which later folds restore at its final step instead of retraining.
    graphdef, states = train(
        built, frames, labels, config.train, 'pretrain' if finetunes else 'train',
        checkpoints_at(CHECKPOINT_DIR, '_pretrain' if pretrain_protocol else fold.id))
    if finetunes:
      ft_frames, ft_labels = training_frames(trials_lib.select(trials, fold.finetune),
                                             config.train.frame_stride)
      num_finetune_frames = int(len(ft_frames))
      # The whole fine-tune set in a batch if it is smaller than train.batch_size, rounded
      # down to a multiple of the device count (every device gets an equal share).
      ft_batch = min(int(config.train.batch_size),
                     len(ft_frames) // plan.num_devices * plan.num_devices)
      if ft_batch == 0:
        raise ValueError(f'fold {fold.id}: {len(ft_frames)} fine-tuning frames cannot be split '
                         f'over {plan.num_devices} devices; use fewer devices or more '
                         'adapt.finetune_trials.')
      ft_config = ml_collections.ConfigDict(dict(
          epochs=int(adapt.finetune_epochs), batch_size=ft_batch,
          learning_rate=float(adapt.finetune_learning_rate), momentum=config.train.momentum,
          weight_decay=config.train.weight_decay, lr_boundaries=()))
      trainable = adaptation.check_trainable(states[0].params, adapt.finetune_layers)
      pretrained = [nnx.merge(graphdef, s.params, s.batch_stats) for s in states]
      graphdef, states = train(pretrained, ft_frames, ft_labels, ft_config, 'finetune',
                               checkpoints_at(FINETUNE_CHECKPOINT_DIR, fold.id),
                               trainable=trainable)
    if adapt.method == 'adabn':
      target = adaptation.target_frames(test_trials)
      states = [adaptation.adabn_state(graphdef, s, target, int(config.eval.batch_size))
                for s in states]
  finally:
    for c in curves or ():
      c.close()
  return _Trained(graphdef=graphdef, states=states, test_trials=test_trials, model_kwargs=kwargs,
                  num_params=num_params, num_train_frames=int(len(frames)),
                  num_finetune_frames=num_finetune_frames,
                  train_seconds=time.perf_counter() - start)


def score_seed(config: ml_collections.ConfigDict, spec: DatasetSpec, trials: Sequence[Trial],
               fold: protocols.Fold, seed: int, trained: _Trained, index: int,
               workdir: str | None = None, plan: parallel.Plan | None = None) -> dict[str, Any]:
  """Scores seed ``trained.states[index]`` on the fold's test trials; returns its row.

  With ``workdir``, the final model is saved for `hdsemg_jax.load_model`.
  """
  plan = plan or make_plan(config)
  adapt = adapt_config(config)
  state = trained.states[index]
  predict = plan.predictor(trained.graphdef, state)

  def predict_batch(x: np.ndarray):
    out = predict(x)
    fault_point('during_eval')
    return out

  predictions = evaluate.predict_trials(predict_batch, trained.test_trials,
                                        config.eval.batch_size)
  scores = evaluate.score(predictions, trained.test_trials, spec.num_classes,
                          config.eval.vote_windows)
  if workdir is not None and _is_primary():
    inference.save_model(
        pair_dir(workdir, MODEL_DIR, fold.id, seed), state,
        inference.ModelInfo(model=config.model.name, model_kwargs=trained.model_kwargs,
                            num_classes=spec.num_classes, grid_shape=spec.grid_shape,
                            class_names=spec.class_names, dataset=spec.name,
                            dataset_version=spec.version, fold=fold.id, seed=seed,
                            eval_batch_size=int(config.eval.batch_size)))
  split = fold.describe(trials)
  return {
      'dataset': spec.name,
      'dataset_version': spec.version,
      'synthetic': spec.synthetic,
      'protocol': config.protocol.name,
      'model': config.model.name,
      'fold': fold.id,
      'seed': seed,
      **scores,
      'num_params': trained.num_params,
      'num_train_frames': trained.num_train_frames,
      'adapt_method': adapt.method,
      'num_finetune_frames': trained.num_finetune_frames,
      # With seed_parallel, the time of all the fold's seeds trained together.
      'train_seconds': round(trained.train_seconds, 3),
      'parallel': plan.mode,
      'num_devices': plan.num_devices,
      'num_cpu_devices': _num_cpu_devices(config),
      'seed_parallel': bool(config.get('seed_parallel', False)),
      'split': {role: d['trials'] for role, d in split.items()},
      'split_detail': split,
      'protocol_subjects': config.protocol.subjects,
      'protocol_folds': config.protocol.folds,
      'provenance': provenance.collect(config.to_dict(), spec.name, spec.version),
  }


def run_fold_seed(config: ml_collections.ConfigDict, spec: DatasetSpec, trials: Sequence[Trial],
                  fold: protocols.Fold, seed: int, workdir: str | None = None,
                  plan: parallel.Plan | None = None) -> dict[str, Any]:
  """Trains (and adapts, per ``config.adapt``) and scores one (fold, seed); returns its row.

  ``train_seconds`` covers pre-training, fine-tuning and AdaBN.

  With ``workdir``, training resumes from and writes checkpoints there, and the
  final model is saved for `hdsemg_jax.load_model`.
  """
  plan = plan or make_plan(config)
  trained = train_seeds(config, spec, trials, fold, [seed], workdir, plan)
  return score_seed(config, spec, trials, fold, int(seed), trained, 0, workdir, plan)


def run_fold(config: ml_collections.ConfigDict, spec: DatasetSpec, trials: Sequence[Trial],
             fold: protocols.Fold, seeds: Sequence[int], workdir: str | None = None,
             plan: parallel.Plan | None = None,
             skip: Sequence[int] = ()) -> Iterator[tuple[int, dict[str, Any]]]:
  """``(seed, row)`` of every seed of one fold not in ``skip``, as each is scored.

  With ``config.seed_parallel``, all ``seeds`` (``skip`` included, so that their
  shared checkpoint is found; a finished one restores at its final step) train
  together in one vmapped program first; otherwise each trains in turn.
  """
  plan = plan or make_plan(config)
  seeds = [int(s) for s in seeds]
  pending = [s for s in seeds if s not in set(skip)]
  if not pending:
    return
  if config.get('seed_parallel', False) and len(seeds) > 1:
    trained = train_seeds(config, spec, trials, fold, seeds, workdir, plan)
    for seed in pending:
      yield seed, score_seed(config, spec, trials, fold, seed, trained, seeds.index(seed),
                             workdir, plan)
    return
  for seed in pending:
    yield seed, run_fold_seed(config, spec, trials, fold, seed, workdir, plan)


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
  added = _flatten(json.loads(json.dumps({'adapt': ADAPT_DEFAULTS, **DEVICE_DEFAULTS})))
  missing = object()
  lines = []
  for key in sorted(set(a) | set(b)):
    old, now = a.get(key, missing), b.get(key, missing)
    if old is missing and key in added and now == added[key]:
      continue  # A key added after the stored run, at the value that run had in effect.
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
  """Runs every configured fold and seed not already finished; returns the results rows.

  ``config.parallel`` and ``config.num_cpu_devices`` are resolved first
  (`runtime.configure_devices`, on a copy of ``config``); the resolved values are
  what ``config.json`` records and what a resumed run is compared against.
  """
  _fault_spec()  # A misspelt fault point is an error, not a run without the fault.
  check_writable(workdir)
  config = config.copy_and_resolve_references()
  settings = runtime.configure_devices(config)
  plan = parallel.Plan.create(settings.parallel)
  plan.check_batch(int(config.train.batch_size), 'train.batch_size')
  plan.check_batch(int(config.eval.batch_size), 'eval.batch_size')
  logging.info('parallel=%s on %d device(s) (%d process(es)), num_cpu_devices=%d, '
               'seed_parallel=%s', settings.parallel, settings.num_devices,
               settings.num_processes, settings.num_cpu_devices,
               bool(config.get('seed_parallel', False)))
  spec, trials = load_data(config)
  folds = make_folds(config, trials)
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise ValueError(f'workdir {workdir} cannot be created: {e}.') from None
  check_config(workdir, config.to_dict(), allow_config_change)
  done = finished_rows(workdir)
  rows = []
  seeds = [int(s) for s in config.seeds]
  total = len(folds) * len(seeds)
  for fold in folds:
    skip = [s for s in seeds if (fold.id, s) in done]
    fold_rows = {s: done[(fold.id, s)] for s in skip}
    for seed in skip:
      logging.info('[%d/%d] fold %s, seed %d: already in %s, skipped',
                   len(rows) + seeds.index(seed) + 1, total, fold.id, seed, results.RESULTS_FILE)
    if len(skip) < len(seeds):
      logging.info('[%d/%d] fold %s, seed(s) %s', len(rows) + 1, total, fold.id,
                   ', '.join(str(s) for s in seeds if s not in skip))
    for seed, row in run_fold(config, spec, trials, fold, seeds, workdir, plan, skip=skip):
      if _is_primary():
        results.append_row(workdir, row)
      fault_point('after_row')
      fold_rows[seed] = row
      logging.info('fold %s seed %d: frame accuracy %.3f, vote accuracy %s', fold.id, seed,
                   row['frame_accuracy'], row['vote_accuracy'])
    rows.extend(fold_rows[s] for s in seeds)
  table = tables.run_report(
      rows, title=f'{config.model.name} on {spec.name}, {config.protocol.name}',
      synthetic=spec.synthetic, metrics=TABLE_METRICS)
  if _is_primary():
    results.write_atomic(os.path.join(workdir, results.TABLE_FILE), table)
    plots.write_plots(rows, workdir, f'{config.model.name} on {spec.name}, '
                      f'{config.protocol.name}' + (' (synthetic data)' if spec.synthetic else ''))
  print(table)
  return rows
