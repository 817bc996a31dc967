"""The epoch loop: on-device shuffling, compiled steps, progress lines."""

from __future__ import annotations

import time
from typing import Any, Callable, Protocol

import jax
import numpy as np
from absl import logging
from flax import nnx

from hdsemg_jax.training import optimizer, state as state_lib, steps

# Distinct streams derived from one seed, so shuffling never depends on initialisation.
_SHUFFLE_STREAM = 2


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


def fit(model: nnx.Module, frames: np.ndarray, labels: np.ndarray, train_config: Any, seed: int,
        *, name: str = 'model',
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
        checkpoints: Checkpoints | None = None, every_steps: int = 0,
        ) -> tuple[nnx.GraphDef, state_lib.TrainState]:
  """Trains ``model`` on ``frames``/``labels`` with the configured recipe; returns its state.

  With ``checkpoints``, training continues from the latest saved state, saves every
  ``every_steps`` steps (0: never in between) and once more at the end. The data
  order is a function of (seed, epoch), so a resumed run replays the remaining
  batches exactly: epoch ``step // steps_per_epoch``, batch ``step % steps_per_epoch``.
  """
  cfg = train_config
  if every_steps < 0:
    raise ValueError(f'checkpoint.every_steps must be >= 0; got {every_steps}.')
  num_steps = steps_per_epoch(len(frames), cfg.batch_size, name)
  total_steps = cfg.epochs * num_steps
  tx = optimizer.sgd_recipe(
      learning_rate=cfg.learning_rate, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
      lr_boundaries=tuple(cfg.lr_boundaries), total_steps=total_steps)
  graphdef, state = state_lib.create(model, tx, seed)
  start_step = 0
  if checkpoints is not None:
    restored = checkpoints.restore(state)
    if restored is not None:
      state, start_step = restored, int(restored.step)
      if start_step > total_steps:
        raise ValueError(f'{name}: the checkpoint is at step {start_step}, past the '
                         f'{total_steps} steps of this config.')
      logging.info('%s: resumed from checkpoint at step %d', name, start_step)
  train_step = steps.make_train_step(graphdef, tx)
  frames_on_device, labels_on_device = jax.device_put(frames), jax.device_put(labels)

  for epoch in range(start_step // num_steps, cfg.epochs):
    start = time.perf_counter()
    batches = epoch_batches(seed, epoch, len(frames), cfg.batch_size)
    first = start_step - epoch * num_steps if epoch == start_step // num_steps else 0
    totals = []
    for i in range(first, num_steps):
      state, metrics = train_step(state, frames_on_device, labels_on_device, batches[i])
      totals.append(metrics)
      step = epoch * num_steps + i + 1
      if checkpoints is not None and every_steps and step % every_steps == 0:
        checkpoints.save(state)
    summary = {k: float(np.mean([m[k] for m in totals])) for k in totals[0]}
    seconds = time.perf_counter() - start
    summary['frames_per_second'] = len(totals) * cfg.batch_size / seconds
    logging.info('%s epoch %d/%d: loss %.4f, accuracy %.3f (%.0f frames/s)', name, epoch + 1,
                 cfg.epochs, summary['loss'], summary['accuracy'], summary['frames_per_second'])
    if on_epoch is not None:
      on_epoch(epoch, summary)
  if checkpoints is not None:
    checkpoints.save(state)
  return graphdef, state
