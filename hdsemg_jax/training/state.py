"""The training state: a pytree that the compiled steps take and return."""

from __future__ import annotations

from typing import Any, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training; nothing else is needed to continue it."""
  step: jax.Array
  params: nnx.State
  batch_stats: nnx.State
  opt_state: optax.OptState
  rng: jax.Array  # Base key of stochastic layers; each step folds in its step number.


def split_model(model: nnx.Module) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
  """(graphdef, params, batch_stats) of a model; the graphdef is static structure."""
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  return graphdef, params, batch_stats


def create(model: nnx.Module, tx: optax.GradientTransformation, seed: int) -> tuple[nnx.GraphDef, TrainState]:
  graphdef, params, batch_stats = split_model(model)
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                     opt_state=tx.init(params),
                     rng=jax.random.fold_in(jax.random.key(seed), 1))
  return graphdef, state


def apply_model(graphdef: nnx.GraphDef, params: Any, batch_stats: Any, x: jax.Array, *,
                train: bool, rng: jax.Array | None = None) -> tuple[jax.Array, Any]:
  """Runs the model; returns logits and the (in training, updated) BatchNorm statistics."""
  # copy=True: fresh Variables at the current trace level, so BatchNorm may update them.
  model = nnx.merge(graphdef, params, batch_stats, copy=True)
  if train:
    model.train()
  else:
    model.eval()
  rngs = nnx.Rngs(dropout=rng) if rng is not None else None
  logits = model(x, rngs=rngs)
  return logits, nnx.state(model, nnx.BatchStat)


# vmap axes of a TrainState whose seeds are stacked along a leading axis: the step
# counter is shared (all seeds advance together), everything else is per seed.
SEED_AXES = TrainState(step=None, params=0, batch_stats=0, opt_state=0, rng=0)


def stack(states: Sequence[TrainState]) -> TrainState:
  """One state with the seeds of ``states`` along a new leading axis (see `SEED_AXES`)."""
  steps = {int(s.step) for s in states}
  if len(steps) != 1:
    raise ValueError(f'cannot stack training states at different steps {sorted(steps)}.')
  rest = [s.replace(step=None) for s in states]
  stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *rest)
  return stacked.replace(step=states[0].step)


def unstack(state: TrainState, num_seeds: int) -> list[TrainState]:
  """The per-seed states of a stacked state: the inverse of `stack`."""
  rest = state.replace(step=None)
  return [jax.tree.map(lambda x, i=i: x[i], rest).replace(step=state.step)
          for i in range(num_seeds)]
