"""One experiment: a dataset, a protocol's folds, a model, several seeds.

``train_and_evaluate(config, workdir)`` resolves the config once
(`run.setup.resolve`: typed settings, data, folds; a refused config writes
nothing), trains a model per fold and seed on the fold's training
trials with the recipe of `training.recipe` (train or pre-train, fine-tune,
AdaBN, as ``config.adapt`` and the protocol ask), scores the final model on its
test trials (test data never selects anything), and writes ``config.json``,
``results.jsonl``, ``results.md`` and the figures into ``workdir``
(`hdsemg_jax.workdir` has the layout).

Runs are preemption-safe: training states are checkpointed, every finished model
is kept, and rerunning the same command on the same workdir skips the (fold, seed)
pairs whose rows are already in ``results.jsonl`` and continues the others from
their latest checkpoint; the results equal those of an uninterrupted run
(``train_seconds`` aside). A workdir written with another config is refused unless
``allow_config_change`` is set, and a workdir that another live run holds is
refused at once (`run_lock`).

With ``config.seed_parallel`` the seeds of a fold train together in one vmapped
program, checkpointed as one stacked state; a resumed fold runs all its seeds
again from that checkpoint (a finished one restores at its final step) and scores
those without a row; ``train_seconds`` is then the time of all the fold's seeds
together. On several hosts, process 0 writes the results.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterator, Sequence

import jax
import ml_collections
from absl import logging
from flax import nnx

from hdsemg_jax import checkpointing, classical, protocols, provenance, saved_model
from hdsemg_jax import workdir as workdir_lib
from hdsemg_jax.data import frames as frames_lib
from hdsemg_jax.data import trials as trials_lib
from hdsemg_jax.evaluation import cost, evaluate, online, robustness
from hdsemg_jax.protocols import Fold
from hdsemg_jax.reporting import curves, plots, results, robustness_plot, tables
from hdsemg_jax.run import lock as run_lock
from hdsemg_jax.run import recipe
from hdsemg_jax.run import setup as run_setup
from hdsemg_jax.run.setup import RunSetup
from hdsemg_jax.training import steps

TABLE_METRICS = ('frame_accuracy', 'vote_accuracy/150')
SHIFT_PLOT = 'shift_robustness.png'


def _is_primary() -> bool:
  # On several hosts every process runs the same program; one writes the files.
  return jax.process_index() == 0


class _Outputs:
  """Where one fold's seeds checkpoint and write curves (nowhere without a workdir)."""

  def __init__(self, workdir: str | None, fold: Fold, seeds: Sequence[int]):
    self.workdir, self.fold, self.seeds = workdir, fold, list(seeds)
    writes = workdir is not None and _is_primary()
    self.curves = {s: curves.CurveWriter(
        os.path.join(workdir, workdir_lib.CURVES_FILE),
        workdir_lib.pair_dir(workdir, workdir_lib.TENSORBOARD_DIR, fold.id, s), fold.id, s)
        for s in self.seeds} if writes else {}

  def checkpoints_for(self, phase: str, key: str) -> checkpointing.TrainCheckpoints | None:
    if self.workdir is None:
      return None
    kind = workdir_lib.CHECKPOINT_DIR if phase == 'train' else workdir_lib.FINETUNE_CHECKPOINT_DIR
    where = (workdir_lib.pair_dir(self.workdir, kind, key, self.seeds[0]) if len(self.seeds) == 1
             else workdir_lib.group_dir(self.workdir, kind, key, self.seeds))
    return checkpointing.TrainCheckpoints(where)

  def on_epoch_for(self, seed: int, phase: str):
    return self.curves[seed].on_epoch(phase) if seed in self.curves else None

  def close(self) -> None:
    for writer in self.curves.values():
      writer.close()


def train_seeds(setup: RunSetup, fold: Fold, seeds: Sequence[int],
                workdir: str | None = None) -> recipe.Trained:
  """`recipe.train_fold` with checkpoints and curves in ``workdir`` (if given)."""
  outputs = _Outputs(workdir, fold, seeds)
  try:
    return recipe.train_fold(setup, fold, seeds, checkpoints_for=outputs.checkpoints_for,
                             on_epoch_for=outputs.on_epoch_for if outputs.curves else None)
  finally:
    outputs.close()


def score_seed(setup: RunSetup, fold: Fold, seed: int, trained: recipe.Trained, index: int,
               workdir: str | None = None) -> dict[str, Any]:
  """Scores seed ``trained.states[index]`` on the fold's test trials; returns its row.

  With ``workdir``, the final model is saved for `hdsemg_jax.load_model`.
  """
  spec, plan, ev = setup.spec, setup.plan, setup.settings.eval
  state = trained.states[index]
  test_trials = trained.test_trials
  predict = plan.predictor(trained.graphdef, state)
  predictions = evaluate.predict_trials(predict, test_trials, ev.batch_size)
  scores = evaluate.score(predictions, test_trials, spec.num_classes, ev.vote_windows)
  extra: dict[str, Any] = {}
  if ev.shifts:
    extra['shift_scores'] = robustness.shift_robustness(
        predict, test_trials, list(ev.shifts), ev.vote_windows, spec.num_classes,
        spec.wrap_axis, ev.batch_size)
  if ev.online:
    extra['online'] = online_scores(setup, fold, trained, state)
  model = nnx.merge(trained.graphdef, state.params, state.batch_stats)
  sample = frames_lib.target_frames(test_trials)[:ev.batch_size]
  if workdir is not None and _is_primary():
    saved_model.save_model(
        workdir_lib.model_dir(workdir, fold.id, seed), state,
        saved_model.ModelInfo(model=setup.settings.model.name,
                              model_kwargs=dict(setup.settings.model.network_kwargs),
                              num_classes=spec.num_classes, grid_shape=spec.grid_shape,
                              class_names=spec.class_names, dataset=spec.name,
                              dataset_version=spec.version, fold=fold.id, seed=seed,
                              eval_batch_size=ev.batch_size, conditioning=setup.conditioning))
  return _row(setup, fold, seed, {
      **scores,
      # A network decides per frame and votes over w frames: its decisions are its votes.
      'decision_accuracy': dict(scores['vote_accuracy']),
      'decision_rule': 'vote',
      'seed_independent': False,
      'num_params': trained.num_params,
      'flops_per_frame': cost.model_forward_flops(model, spec.grid_shape),
      'inference_seconds_per_frame': cost.seconds_per_frame(predict, sample,
                                                            batch_size=ev.batch_size),
      'num_train_frames': trained.num_train_frames,
      'num_finetune_frames': trained.num_finetune_frames,
      # With seed_parallel, the time of all the fold's seeds trained together.
      'train_seconds': round(trained.train_seconds, 3),
      'align_shift': None if trained.align_shift is None else list(trained.align_shift),
      **extra,
  })


def online_scores(setup: RunSetup, fold: Fold, trained: recipe.Trained,
                  state: Any) -> dict[str, Any]:
  """The fold's unfiltered test trials replayed through the streaming decoder (eval.online)."""
  ev = setup.settings.eval
  predict = steps.make_predict(trained.graphdef)
  return online.online_scores(
      lambda x: predict(state.params, state.batch_stats, x),
      trials_lib.select(setup.raw_trials, fold.test), setup.conditioning, ev.vote_windows,
      ev.online_chunk, setup.spec.num_classes)


def classical_row(setup: RunSetup, fold: Fold) -> dict[str, Any]:
  """Fits and scores a classical model (`hdsemg_jax.classical`) on one fold: its one row.

  Seeds never change it, so it is the row of the first seed (``seed_independent``).
  """
  settings = setup.settings
  train_trials = trials_lib.select(setup.trials, fold.train)
  test_trials, shift = trials_lib.select(setup.trials, fold.test), None
  if settings.adapt.aligns:
    test_trials, shift = recipe.align(setup, fold, test_trials)
  scores = classical.fit_and_score(train_trials, test_trials, setup.spec.num_classes,
                                   settings.model.classical, settings.eval.vote_windows)
  return _row(setup, fold, settings.seeds[0], {
      **scores,
      'seed_independent': True,
      'num_train_frames': int(sum((t.label >= 0).sum() for t in train_trials)),
      'num_finetune_frames': 0,
      'align_shift': None if shift is None else list(shift),
  })


def _row(setup: RunSetup, fold: Fold, seed: int, fields: dict[str, Any]) -> dict[str, Any]:
  """A results row: what was scored (``fields``) and everything that identifies it."""
  settings, spec, plan = setup.settings, setup.spec, setup.plan
  augment = settings.augment
  split = fold.describe(setup.trials)
  return {
      'dataset': spec.name,
      'dataset_version': spec.version,
      'synthetic': spec.synthetic,
      'protocol': settings.protocol.name,
      'model': settings.model.name,
      'fold': fold.id,
      'seed': seed,
      'adapt_method': settings.adapt.method,
      # As JSON has it, so that returned rows equal the rows read back.
      'augment': {**dataclasses.asdict(augment), 'max_shift': list(augment.max_shift)},
      **fields,
      'parallel': plan.mode,
      'num_devices': plan.num_devices,
      'num_cpu_devices': setup.devices.num_cpu_devices,
      'seed_parallel': settings.seed_parallel,
      'split': {role: d['trials'] for role, d in split.items()},
      'split_detail': split,
      'split_id': protocols.split_id(spec.name, spec.version, fold),
      'protocol_subjects': _as_list(settings.protocol.subjects),
      'protocol_folds': _as_list(settings.protocol.folds),
      'provenance': provenance.collect(setup.config.to_dict(), spec.name, spec.version),
  }


def _as_list(values: Sequence[Any] | None) -> list[Any] | None:
  # As JSON has it, so that returned rows equal the rows read back.
  return None if values is None else list(values)


def run_fold(setup: RunSetup, fold: Fold, workdir: str | None = None,
             skip: Sequence[int] = ()) -> Iterator[tuple[int, dict[str, Any]]]:
  """``(seed, row)`` of every seed of one fold not in ``skip``, as each is scored.

  With ``config.seed_parallel``, all seeds (``skip`` included, so that their
  shared checkpoint is found; a finished one restores at its final step) train
  together in one vmapped program first; otherwise each trains in turn.
  """
  seeds = list(setup.settings.run_seeds)
  pending = [s for s in seeds if s not in set(skip)]
  if not pending:
    return
  if setup.settings.model.is_classical:
    yield seeds[0], classical_row(setup, fold)
    return
  if setup.settings.seed_parallel and len(seeds) > 1:
    trained = train_seeds(setup, fold, seeds, workdir)
    for seed in pending:
      yield seed, score_seed(setup, fold, seed, trained, seeds.index(seed), workdir)
    return
  for seed in pending:
    trained = train_seeds(setup, fold, [seed], workdir)
    yield seed, score_seed(setup, fold, seed, trained, 0, workdir)


def _title(setup: RunSetup) -> str:
  return f'{setup.settings.model.name} on {setup.spec.name}, {setup.settings.protocol.name}'


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       allow_config_change: bool = False) -> list[dict[str, Any]]:
  """Runs every configured fold and seed not already finished; returns the results rows.

  The config is checked and resolved first (`run_setup.resolve`, on a copy): the
  resolved device values are what ``config.json`` records and what a resumed run
  is compared against. A config the run refuses raises `hdsemg_jax.config.ConfigError`
  before anything is written.
  """
  return run(run_setup.resolve(config), workdir, allow_config_change=allow_config_change)


def run(setup: RunSetup, workdir: str, *,
        allow_config_change: bool = False) -> list[dict[str, Any]]:
  """`train_and_evaluate` of a config already resolved (`run_setup.resolve`)."""
  workdir_lib.check_writable(workdir)
  logging.info('parallel=%s on %d device(s) (%d process(es)), num_cpu_devices=%d, '
               'seed_parallel=%s', setup.devices.parallel, setup.devices.num_devices,
               setup.devices.num_processes, setup.devices.num_cpu_devices,
               setup.settings.seed_parallel)
  # Every write to the workdir happens under the lock (per host; see run_lock), which
  # creates the workdir.
  with run_lock.hold(workdir, process_index=jax.process_index()):
    done = workdir_lib.open_run(workdir, setup.config.to_dict(), allow_config_change)
    rows = _run_folds(setup, workdir, done)
    table = tables.run_report(rows, title=_title(setup), synthetic=setup.spec.synthetic,
                              metrics=TABLE_METRICS)
    if _is_primary():
      _write_report(setup, rows, table, workdir)
  print(table)
  return rows


def _write_report(setup: RunSetup, rows: Sequence[dict[str, Any]], table: str,
                  workdir: str) -> None:
  results.write_atomic(os.path.join(workdir, workdir_lib.TABLE_FILE), table)
  plots.write_plots(rows, workdir, _title(setup), class_names=setup.spec.class_names,
                    synthetic=setup.spec.synthetic, sampling_rate_hz=setup.spec.sampling_rate_hz)
  if all(r.get('shift_scores') for r in rows):
    robustness_plot.accuracy_vs_shift(
        robustness.mean_shift_scores(rows), os.path.join(workdir, SHIFT_PLOT),
        f'{_title(setup)}: accuracy against electrode shift\n(mean over folds and seeds)')


def _run_folds(setup: RunSetup, workdir: str,
               done: dict[tuple[str, int], dict[str, Any]]) -> list[dict[str, Any]]:
  rows: list[dict[str, Any]] = []
  seeds = list(setup.settings.run_seeds)
  total = len(setup.folds) * len(seeds)
  for fold in setup.folds:
    skip = [s for s in seeds if (fold.id, s) in done]
    fold_rows = {s: done[(fold.id, s)] for s in skip}
    for seed in skip:
      logging.info('[%d/%d] fold %s, seed %d: already in %s, skipped',
                   len(rows) + seeds.index(seed) + 1, total, fold.id, seed,
                   workdir_lib.RESULTS_FILE)
    if len(skip) < len(seeds):
      logging.info('[%d/%d] fold %s, seed(s) %s', len(rows) + 1, total, fold.id,
                   ', '.join(str(s) for s in seeds if s not in skip))
    for seed, row in run_fold(setup, fold, workdir, skip=skip):
      if _is_primary():
        results.append_row(workdir, row)
      fold_rows[seed] = row
      logging.info('fold %s seed %d: frame accuracy %.3f, vote accuracy %s', fold.id, seed,
                   row['frame_accuracy'], row['vote_accuracy'])
    rows.extend(fold_rows[s] for s in seeds)
  return rows
