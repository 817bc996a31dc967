"""Compiled train and predict steps.

The whole training set lives on the device; a step receives the indices of its
batch and gathers the frames there, so the host does not feed every step.

`train_step_fn` is the one step body of every layout (`hdsemg_jax.training.parallel`
compiles it with `jax.jit`, under `jax.pmap`, over a device mesh, and vmapped over
seeds): ``axis_name`` names the pmap axis whose devices average their gradients,
and ``batch_sharding`` says how the gathered batch is laid out on a mesh.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from hdsemg_jax.training import augment as augment_lib
from hdsemg_jax.training.state import TrainState, apply_model

TrainStep = Callable[[TrainState, jax.Array, jax.Array, jax.Array], tuple[TrainState, dict]]


@dataclasses.dataclass(frozen=True)
class StepOptions:
  """What shapes a compiled train step besides the model and the optimizer (hashable).

  ``augment``: training augmentation applied to every gathered batch on the device
  (`augment.augment_batch`, keyed per (seed, step)); off (None or not enabled), the
  step is exactly the one without it. ``wrap_axis``: the grid axis that wraps round
  the forearm. ``compiler_options``: XLA's, as ``(name, value)`` pairs
  (`hdsemg_jax.ops.train_compiler_options`).
  """
  augment: augment_lib.AugmentSettings | None = None
  wrap_axis: int | None = None
  compiler_options: tuple[tuple[str, Any], ...] = ()

  @classmethod
  def create(cls, *, augment: augment_lib.AugmentSettings | None = None,
             wrap_axis: int | None = None,
             compiler_options: dict[str, Any] | None = None) -> StepOptions:
    return cls(augment if augment is not None and augment.enabled else None, wrap_axis,
               tuple(sorted((compiler_options or {}).items())))


def train_step_fn(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, *,
                  axis_name: str | None = None,
                  batch_sharding: jax.sharding.Sharding | None = None,
                  options: StepOptions = StepOptions()):
  """The pure (uncompiled) train step: ``(state, frames, labels, batch_index) -> (state, metrics)``.

  Under ``jax.pmap(..., axis_name=axis_name)`` each device runs it on its share of
  the global batch: the gradients and the reported loss and accuracy are averaged
  over the devices (BatchNorm layers built with the same ``axis_name`` average
  their batch statistics too, see `parallel.with_batchnorm_axis`), so every
  replica applies the same update as one device would on the whole batch.
  """

  def step(state: TrainState, frames: jax.Array, labels: jax.Array, batch_index: jax.Array):
    x = jnp.take(frames, batch_index, axis=0)
    y = jnp.take(labels, batch_index, axis=0)
    if batch_sharding is not None:
      # The dataset is replicated; the gathered batch is split along its first axis.
      x = jax.lax.with_sharding_constraint(x, batch_sharding)
      y = jax.lax.with_sharding_constraint(y, batch_sharding)
    rng = jax.random.fold_in(state.rng, state.step)
    if axis_name is not None:
      # Different dropout masks on different shares of the batch.
      rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
    if options.augment is not None:
      # Its own stream of the state's key, per step: a resumed run draws the same batches.
      key = jax.random.fold_in(jax.random.fold_in(state.rng, augment_lib.AUGMENT_STREAM),
                               state.step)
      if axis_name is not None:
        key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
      x = augment_lib.augment_batch(x, key, options.augment, options.wrap_axis)

    def loss_fn(params):
      logits, batch_stats = apply_model(graphdef, params, state.batch_stats, x, train=True, rng=rng)
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
      return loss, (logits, batch_stats)

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = {'loss': loss, 'accuracy': jnp.mean(jnp.argmax(logits, -1) == y)}
    if axis_name is not None:
      # Equal shares per device, so the mean of the per-device means is the global mean.
      grads, metrics = jax.lax.pmean((grads, metrics), axis_name)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                              opt_state=opt_state)
    return new_state, metrics

  return step


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation,
                    options: StepOptions = StepOptions()) -> TrainStep:
  """The train step compiled with `jax.jit` for one device, the state donated."""
  return jax.jit(train_step_fn(graphdef, tx, options=options), donate_argnums=0,
                 compiler_options=dict(options.compiler_options) or None)


# On CPU, prediction runs over slices of this many frames (a loop inside the compiled
# program): each slice's activations stay in cache. Frames are independent at prediction
# time (running BatchNorm statistics), so the classes are those of the whole batch at once.
CPU_PREDICT_CHUNK = 256


Predict = Callable[[Any, Any, jax.Array], jax.Array]


def predict_fn(graphdef: nnx.GraphDef, chunk: int | None = None) -> Predict:
  """The pure ``(params, batch_stats, frames) -> predicted classes`` (running BN statistics).

  ``chunk``: frames per slice of a larger batch (default: `CPU_PREDICT_CHUNK` on CPU,
  none elsewhere, where one wide batch keeps the device busy); 0 for none.
  """
  if chunk is None:
    chunk = CPU_PREDICT_CHUNK if jax.default_backend() == 'cpu' else 0

  def classes(params: Any, batch_stats: Any, x: jax.Array) -> jax.Array:
    logits, _ = apply_model(graphdef, params, batch_stats, x, train=False)
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)

  def predict(params: Any, batch_stats: Any, x: jax.Array) -> jax.Array:
    n = x.shape[0]
    if not chunk or n < 2 * chunk:
      return classes(params, batch_stats, x)
    head = n - n % chunk
    sliced = jax.lax.map(lambda xs: classes(params, batch_stats, xs),
                         x[:head].reshape(head // chunk, chunk, *x.shape[1:]))
    parts = [sliced.reshape(head)]
    if head < n:
      parts.append(classes(params, batch_stats, x[head:]))
    return jnp.concatenate(parts)

  return predict


def make_predict(graphdef: nnx.GraphDef) -> Predict:
  """`predict_fn` compiled: ``(params, batch_stats, frames) -> predicted classes``."""
  return jax.jit(predict_fn(graphdef))
