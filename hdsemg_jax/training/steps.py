"""Compiled train and predict steps.

The whole training set lives on the device; a step receives the indices of its
batch and gathers the frames there, so the host does not feed every step.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from hdsemg_jax.training.state import TrainState, apply_model

TrainStep = Callable[[TrainState, jax.Array, jax.Array, jax.Array], tuple[TrainState, dict]]


def train_step_fn(graphdef: nnx.GraphDef, tx: optax.GradientTransformation):
  """The pure (uncompiled) train step: ``(state, frames, labels, batch_index) -> (state, metrics)``."""

  def step(state: TrainState, frames: jax.Array, labels: jax.Array, batch_index: jax.Array):
    x = jnp.take(frames, batch_index, axis=0)
    y = jnp.take(labels, batch_index, axis=0)
    rng = jax.random.fold_in(state.rng, state.step)

    def loss_fn(params):
      logits, batch_stats = apply_model(graphdef, params, state.batch_stats, x, train=True, rng=rng)
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
      return loss, (logits, batch_stats)

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {'loss': loss, 'accuracy': jnp.mean(jnp.argmax(logits, -1) == y)}
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                              opt_state=opt_state)
    return new_state, metrics

  return step


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation) -> TrainStep:
  """The train step compiled with `jax.jit`, the state donated."""
  return jax.jit(train_step_fn(graphdef, tx), donate_argnums=0)


def make_predict(graphdef: nnx.GraphDef) -> Callable[[TrainState, jax.Array], jax.Array]:
  """A compiled ``(state, frames) -> predicted classes`` with the running BN statistics."""

  @jax.jit
  def predict(state: TrainState, x: jax.Array) -> jax.Array:
    logits, _ = apply_model(graphdef, state.params, state.batch_stats, x, train=False)
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)

  return predict
