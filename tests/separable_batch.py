"""A tiny separable batch and the recipe's train step run on it (shared by model tests)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from hdsemg_jax.training import optimizer, state as state_lib, steps


def train_on_separable_batch(model: nnx.Module, num_steps: int = 30):
  """Trains ``model`` (3 classes, 6x4 frames) on 24 separable frames with the SGD recipe.

  Returns ``(graphdef, state, x, y, losses)``, ``losses`` one per step.
  """
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(24, 6, 4)).astype(np.float32))
  y = jnp.asarray(np.arange(24) % 3, jnp.int32)
  x = x + 2.0 * y[:, None, None]  # Separable classes.
  tx = optimizer.sgd_recipe(learning_rate=0.05, momentum=0.9, weight_decay=1e-4,
                            lr_boundaries=(0.5,), total_steps=num_steps)
  graphdef, state = state_lib.create(model, tx, seed=0)
  step = steps.make_train_step(graphdef, tx)
  index = jnp.arange(24)
  losses = []
  for _ in range(num_steps):
    state, metrics = step(state, x, y, index)
    losses.append(float(metrics['loss']))
  return graphdef, state, x, y, losses
