"""The epoch loop: on-device shuffling, compiled steps, progress lines.

`fit` trains one model, `fit_seeds` several seeds of one model in one vmapped
program; both run on the devices of a `parallel.Plan`, with the hyper-parameters
of a `TrainSettings`. A non-finite loss stops training with `TrainingDiverged`
before any later state is saved, so the last checkpoint is one from before the
divergence.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable, Protocol, Sequence

import jax
import numpy as np
from absl import logging
from flax import nnx

from hdsemg_jax.training import optimizer, parallel, state as state_lib, steps

# Distinct streams derived from one seed, so shuffling never depends on initialisation.
_SHUFFLE_STREAM = 2


@dataclasses.dataclass(frozen=True)
class TrainSettings:
  """One training phase's hyper-parameters (checked by whoever builds them).

  Attributes:
    epochs: passes over the training frames.
    batch_size: the global batch, split over the plan's devices.
    learning_rate: the initial learning rate.
    momentum: SGD momentum.
    weight_decay: L2 weight decay.
    lr_boundaries: fractions of the run at which the learning rate is divided by 10.
    lr_schedule: ``step`` (the drops at ``lr_boundaries``) or ``cosine``
      (`optimizer.LR_SCHEDULES`).
  """
  epochs: int
  batch_size: int
  learning_rate: float
  momentum: float
  weight_decay: float
  lr_boundaries: tuple[float, ...]
  lr_schedule: str = 'step'


class TrainingDiverged(RuntimeError):
  """The training loss became NaN or infinite; no state after it was saved."""


def epoch_batches(seed: int, epoch: int, num_examples: int, batch_size: int) -> jax.Array:
  """Frame indices of every full batch of ``epoch``, shape (steps, batch_size).

  A pure function of (seed, epoch), so a resumed run replays the same order; the
  last partial batch is dropped.
  """
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), _SHUFFLE_STREAM), epoch)
  order = jax.random.permutation(key, num_examples)
  num_steps = num_examples // batch_size
  return order[:num_steps * batch_size].reshape(num_steps, batch_size)


def steps_per_epoch(num_examples: int, batch_size: int, what: str) -> int:
  if batch_size <= 0:
    raise ValueError(f'train.batch_size must be positive; got {batch_size}.')
  n = num_examples // batch_size
  if n == 0:
    raise ValueError(f'train.batch_size={batch_size} is larger than the {num_examples} '
                     f'training frames of {what}; lower it or add data.')
  return n


class Checkpoints(Protocol):
  """Where `fit` saves and resumes (see `hdsemg_jax.checkpointing.TrainCheckpoints`)."""

  def save(self, state: state_lib.TrainState) -> None: ...

  def restore(self, like: state_lib.TrainState) -> state_lib.TrainState | None: ...


@functools.lru_cache(maxsize=16)
def _compiled_step(plan: parallel.Plan, graphdef: nnx.GraphDef,
                   recipe: optimizer.Recipe, stacked: bool,
                   options: steps.StepOptions) -> steps.TrainStep:
  # One compiled program per (plan, model graph, optimizer, stacking, options): the seeds of
  # a fold share it, so a fold's phase compiles once however many seeds run one after another.
  return plan.compile_train_step(graphdef, recipe.build(), stacked=stacked, options=options)


def fit(model: nnx.Module, frames: np.ndarray, labels: np.ndarray, settings: TrainSettings,
        seed: int,
        *, name: str = 'model',
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
        checkpoints: Checkpoints | None = None, every_steps: int = 0,
        trainable: Sequence[str] | None = None,
        plan: parallel.Plan | None = None,
        options: steps.StepOptions = steps.StepOptions(),
        ) -> tuple[nnx.GraphDef, state_lib.TrainState]:
  """Trains ``model`` on ``frames``/``labels`` with ``settings``; returns its state.

  With ``checkpoints``, training continues from the latest saved state, saves every
  ``every_steps`` steps (0: never in between) and once more at the end. The data
  order is a function of (seed, epoch), so a resumed run replays the remaining
  batches exactly: epoch ``step // steps_per_epoch``, batch ``step % steps_per_epoch``.

  Training starts from ``model``'s current parameters and BatchNorm statistics, so
  fine-tuning passes a pre-trained model; ``trainable`` (top-level parameter
  names, None: all) restricts which parameters change. ``on_epoch(epoch,
  summary)`` gets the epoch's mean loss and accuracy; an epoch resumed part-way
  reports the batches run since the resume only.

  ``plan`` (default: one device) says how the devices share each global batch of
  ``settings.batch_size`` frames (`parallel.Plan`); the returned state is one
  device's copy whatever the plan. ``options``: augmentation and compiler options of
  the train step (`steps.StepOptions`).

  Raises:
    TrainingDiverged: a step's loss is not finite (``name``, seed, epoch and step
      named); checkpoints saved before that step are kept, none after.
  """
  graphdef, states = _fit([model], frames, labels, settings, [seed], stacked=False,
                          name=name, on_epoch=None if on_epoch is None else [on_epoch],
                          checkpoints=checkpoints, every_steps=every_steps, trainable=trainable,
                          plan=plan, options=options)
  return graphdef, states[0]


def fit_seeds(models: Sequence[nnx.Module], frames: np.ndarray, labels: np.ndarray,
              settings: TrainSettings, seeds: Sequence[int], *, name: str = 'model',
              on_epoch: Sequence[Callable[[int, dict[str, float]], None]] | None = None,
              checkpoints: Checkpoints | None = None, every_steps: int = 0,
              trainable: Sequence[str] | None = None,
              plan: parallel.Plan | None = None,
              options: steps.StepOptions = steps.StepOptions(),
              ) -> tuple[nnx.GraphDef, list[state_lib.TrainState]]:
  """`fit` of one model per seed, all trained at once in one vmapped program.

  ``models[i]`` (built from ``seeds[i]``, same architecture) is trained on the
  batches of ``seeds[i]``; parameters, optimizer and BatchNorm states, RNG keys and
  data order are stacked along a seed axis, so the results equal those of `fit`
  per seed up to float rounding. ``checkpoints`` saves and restores the stacked
  state (all seeds at one step); ``on_epoch[i]`` gets seed i's summaries, whose
  ``frames_per_second`` counts the frames of all seeds.
  """
  if len(models) != len(seeds) or not seeds:
    raise ValueError(f'fit_seeds needs one model per seed; got {len(models)} models for seeds '
                     f'{list(seeds)}.')
  return _fit(models, frames, labels, settings, seeds, stacked=True, name=name,
              on_epoch=on_epoch, checkpoints=checkpoints, every_steps=every_steps,
              trainable=trainable, plan=plan, options=options)


def _check_finite(losses: np.ndarray, first_step: int, seeds: Sequence[int], stacked: bool,
                  name: str, steps_per_epoch: int) -> None:
  """Raises `TrainingDiverged` at the first non-finite loss of ``losses`` (steps[, seeds])."""
  bad = ~np.isfinite(losses)
  if not bad.any():
    return
  index = np.argwhere(bad)[0]
  step = first_step + int(index[0]) + 1  # The step whose update produced the loss.
  seed = seeds[int(index[1])] if stacked else seeds[0]
  epoch = (step - 1) // steps_per_epoch + 1
  raise TrainingDiverged(
      f'{name}: training diverged: seed {seed}, epoch {epoch}, step {step}: the loss is '
      f'{float(losses[tuple(index)])}; lower the learning rate. Checkpoints from before this '
      'step are kept; no row was written for it.')


def _fit(models: Sequence[nnx.Module], frames: np.ndarray, labels: np.ndarray,
         cfg: TrainSettings,
         seeds: Sequence[int], *, stacked: bool, name: str,
         on_epoch: Sequence[Callable[[int, dict[str, float]], None]] | None,
         checkpoints: Checkpoints | None, every_steps: int,
         trainable: Sequence[str] | None, plan: parallel.Plan | None,
         options: steps.StepOptions,
         ) -> tuple[nnx.GraphDef, list[state_lib.TrainState]]:
  plan = plan or parallel.Plan()
  if every_steps < 0:
    raise ValueError(f'checkpoint.every_steps must be >= 0; got {every_steps}.')
  num_steps = steps_per_epoch(len(frames), cfg.batch_size, name)
  plan.check_batch(cfg.batch_size, 'train.batch_size')
  total_steps = cfg.epochs * num_steps
  recipe = optimizer.Recipe.create(cfg, total_steps, trainable)
  tx = recipe.build()
  created = [state_lib.create(model, tx, seed) for model, seed in zip(models, seeds)]
  graphdef = created[0][0]
  if any(g != graphdef for g, _ in created[1:]):
    raise ValueError('fit_seeds: the models of the seeds differ in architecture.')
  step_graphdef = plan.train_graphdef(graphdef, created[0][1].params, created[0][1].batch_stats)
  state = (state_lib.stack([s for _, s in created]) if stacked else created[0][1])
  start_step = 0
  if checkpoints is not None:
    restored = checkpoints.restore(state)
    if restored is not None:
      state, start_step = restored, int(restored.step)
      if start_step > total_steps:
        raise ValueError(f'{name}: the checkpoint is at step {start_step}, past the '
                         f'{total_steps} steps of this config.')
      logging.info('%s: resumed from checkpoint at step %d', name, start_step)
  train_step = _compiled_step(plan, step_graphdef, recipe, stacked, options)
  # The dataset goes to the device(s) once; each step gathers its batch there.
  state = plan.replicate(state)
  frames_on_device, labels_on_device = plan.replicate(frames), plan.replicate(labels)

  for epoch in range(start_step // num_steps, cfg.epochs):
    start = time.perf_counter()
    if stacked:
      # (steps, seeds, batch): every seed its own order, as it would have alone.
      batches = np.stack([np.asarray(epoch_batches(s, epoch, len(frames), cfg.batch_size))
                          for s in seeds], axis=1)
    else:
      batches = epoch_batches(seeds[0], epoch, len(frames), cfg.batch_size)
    batches = plan.put_epoch(batches)
    first = start_step - epoch * num_steps if epoch == start_step // num_steps else 0
    totals = []
    checked = 0  # Steps of this epoch whose losses are known to be finite.
    for i in range(first, num_steps):
      state, metrics = train_step(state, frames_on_device, labels_on_device,
                                  plan.batch_at(batches, i))
      totals.append(metrics)
      step = epoch * num_steps + i + 1
      if checkpoints is not None and every_steps and step % every_steps == 0:
        # Never save a state past a divergence: the check costs one sync per save.
        _check_finite(parallel.stack_metrics(totals[checked:], plan)['loss'],
                      epoch * num_steps + first + checked, seeds, stacked, name, num_steps)
        checked = len(totals)
        checkpoints.save(plan.unreplicate(state))
    stacked_metrics = parallel.stack_metrics(totals, plan)
    if totals:
      _check_finite(stacked_metrics['loss'][checked:], epoch * num_steps + first + checked,
                    seeds, stacked, name, num_steps)
    means = {k: v.mean(axis=0) for k, v in stacked_metrics.items()}
    seconds = time.perf_counter() - start
    frames_per_second = len(totals) * cfg.batch_size * len(seeds) / seconds
    for j, seed in enumerate(seeds):
      summary = {k: float(v[j] if stacked else v) for k, v in means.items()}
      summary['frames_per_second'] = frames_per_second
      logging.info('%s%s epoch %d/%d: loss %.4f, accuracy %.3f (%.0f frames/s)', name,
                   f' seed {seed}' if stacked else '', epoch + 1, cfg.epochs, summary['loss'],
                   summary['accuracy'], frames_per_second)
      if on_epoch is not None:
        on_epoch[j](epoch, summary)
  state = plan.unreplicate(state)
  if checkpoints is not None:
    checkpoints.save(state)
  return graphdef, state_lib.unstack(state, len(seeds)) if stacked else [state]
