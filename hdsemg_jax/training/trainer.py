"""The epoch loop: on-device shuffling, compiled steps, progress lines."""

from __future__ import annotations

import time
from typing import Any, Callable

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


def fit(model: nnx.Module, frames: np.ndarray, labels: np.ndarray, train_config: Any, seed: int,
        *, name: str = 'model',
        on_epoch: Callable[[int, dict[str, float]], None] | None = None
        ) -> tuple[nnx.GraphDef, state_lib.TrainState]:
  """Trains ``model`` on ``frames``/``labels`` with the configured recipe; returns its state."""
  cfg = train_config
  num_steps = steps_per_epoch(len(frames), cfg.batch_size, name)
  tx = optimizer.sgd_recipe(
      learning_rate=cfg.learning_rate, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
      lr_boundaries=tuple(cfg.lr_boundaries), total_steps=cfg.epochs * num_steps)
  graphdef, state = state_lib.create(model, tx, seed)
  train_step = steps.make_train_step(graphdef, tx)
  frames_on_device, labels_on_device = jax.device_put(frames), jax.device_put(labels)

  for epoch in range(cfg.epochs):
    start = time.perf_counter()
    batches = epoch_batches(seed, epoch, len(frames), cfg.batch_size)
    totals = []
    for i in range(num_steps):
      state, metrics = train_step(state, frames_on_device, labels_on_device, batches[i])
      totals.append(metrics)
    summary = {k: float(np.mean([m[k] for m in totals])) for k in totals[0]}
    seconds = time.perf_counter() - start
    summary['frames_per_second'] = num_steps * cfg.batch_size / seconds
    logging.info('%s epoch %d/%d: loss %.4f, accuracy %.3f (%.0f frames/s)', name, epoch + 1,
                 cfg.epochs, summary['loss'], summary['accuracy'], summary['frames_per_second'])
    if on_epoch is not None:
      on_epoch(epoch, summary)
  return graphdef, state
