"""A scored model's results row: its scores, costs and everything that identifies it.

`score_seed` scores one trained seed of a fold (per frame and with the vote's
windows; under ``eval.shifts`` and online replay where asked) and saves the
model; `classical_row` fits and scores a classical model on a fold. Both return
a `reporting.results.ResultRow` built by `_row`, the one place a row's fields
are named.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from flax import nnx

from hdsemg_jax import classical, protocols, provenance, saved_model
from hdsemg_jax.data import frames as frames_lib
from hdsemg_jax.data import trials as trials_lib
from hdsemg_jax.evaluation import cost, evaluate, online, robustness
from hdsemg_jax.protocols import Fold
from hdsemg_jax.reporting.results import ResultRow
from hdsemg_jax.run import recipe
from hdsemg_jax.run.setup import RunSetup
from hdsemg_jax.training import steps


def score_seed(setup: RunSetup, fold: Fold, seed: int, trained: recipe.Trained, index: int,
               model_dir: str | None = None) -> ResultRow:
  """Scores seed ``trained.states[index]`` on the fold's test trials; returns its row.

  With ``model_dir``, the final model is saved there for `hdsemg_jax.load_model`.
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
  if model_dir is not None:
    saved_model.save_model(
        model_dir, state,
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
      'num_total_params': trained.num_total_params,
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
  """The fold's unfiltered test trials replayed through the streaming decoder (eval.online).

  Where the dataset has a 'rest' class, false activations during rest are counted too.
  """
  ev, spec = setup.settings.eval, setup.spec
  predict = steps.make_predict(trained.graphdef)
  names = [name.lower() for name in spec.class_names]
  return online.online_scores(
      lambda x: predict(state.params, state.batch_stats, x),
      trials_lib.select(setup.raw_trials, fold.test), setup.conditioning, ev.vote_windows,
      ev.online_chunk, spec.num_classes,
      rest_class=names.index('rest') if 'rest' in names else None)


def classical_row(setup: RunSetup, fold: Fold) -> ResultRow:
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
      'num_total_params': scores['num_params'],  # Coefficients and intercepts only.
      'num_train_frames': int(sum((t.label >= 0).sum() for t in train_trials)),
      'num_finetune_frames': 0,
      'align_shift': None if shift is None else list(shift),
  })


def _row(setup: RunSetup, fold: Fold, seed: int, fields: dict[str, Any]) -> ResultRow:
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
      # The process's peaks so far (evaluation.cost.peak_memory): an upper bound for this row.
      **cost.peak_memory(),
      'parallel': plan.mode,
      'num_devices': plan.num_devices,
      'num_cpu_devices': setup.devices.num_cpu_devices,
      'seed_parallel': settings.seed_parallel,
      'split': {role: d['trials'] for role, d in split.items()},
      'split_detail': split,
      'split_id': protocols.split_id(spec.name, spec.version, fold),
      'protocol_subjects': _as_list(settings.protocol.subjects),
      'protocol_folds': _as_list(settings.protocol.folds),
      'provenance': provenance.collect(_row_settings(setup.config), spec.name, spec.version),
  }


def _row_settings(config: Any) -> dict[str, Any]:
  """The config a row's numbers depend on: without ``protocol.folds``, which only says which
  folds a run (or a task of it) covers, so a fold's row hashes alike however it was run."""
  settings = config.to_dict()
  settings['protocol'] = {k: v for k, v in settings['protocol'].items() if k != 'folds'}
  return settings


def _as_list(values: Sequence[Any] | None) -> list[Any] | None:
  # As JSON has it, so that returned rows equal the rows read back.
  return None if values is None else list(values)
