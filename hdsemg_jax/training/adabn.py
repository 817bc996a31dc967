"""AdaBN: BatchNorm statistics re-estimated on the target's unlabelled frames.

AdaBN (Li et al. 2016, applied to HD-sEMG by Du et al. 2017) re-estimates every
BatchNorm layer's running mean and variance from the unlabelled frames of the
target data and leaves every parameter unchanged. **This is the one place where
test inputs are used before scoring**: the frames of the test trials, never
their labels. Labels only select which frames are usable (``label >= 0``), as
evaluation itself does; padding frames (``-1``) are excluded.

The statistics are exact population statistics, layer by layer in call order (the
model lists its BatchNorm layers in that order: ``norms_in_call_order()``):
layer L gets the mean and biased variance of its inputs over all target frames,
computed with the layers before it already adapted (and in inference mode). Each
layer takes one pass over the frames in fixed-size chunks; a chunk is run with
layer L alone in training mode and momentum 0, so L's running statistics become
that chunk's mean and variance, and the chunks are then pooled exactly in float64.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from flax import nnx

from hdsemg_jax.training import state as state_lib


def norms_in_call_order(model: nnx.Module) -> list[nnx.BatchNorm]:
  """The model's own list of its BatchNorm layers in call order, checked to be all of them."""
  if not hasattr(model, 'norms_in_call_order'):
    raise ValueError(f'AdaBN needs {type(model).__name__}.norms_in_call_order() (its BatchNorm '
                     'layers in the order a forward pass calls them).')
  order = list(model.norms_in_call_order())
  known = {id(m) for _, m in nnx.iter_modules(model) if isinstance(m, nnx.BatchNorm)}
  if len({id(m) for m in order}) != len(order) or {id(m) for m in order} != known:
    raise ValueError(f'{type(model).__name__}.norms_in_call_order() must list every BatchNorm '
                     'layer exactly once.')
  return order


def _make_chunk_stats(graphdef: nnx.GraphDef):
  @jax.jit
  def stats(params: Any, batch_stats: Any, x: jax.Array) -> Any:
    model = nnx.merge(graphdef, params, batch_stats, copy=True)
    model(x)
    return nnx.state(model, nnx.BatchStat)
  return stats


def adabn(graphdef: nnx.GraphDef, params: Any, batch_stats: Any, frames: np.ndarray,
          batch_size: int) -> Any:
  """``batch_stats`` re-estimated on ``frames`` (AdaBN); ``params`` are only read.

  Returns BatchNorm statistics of the same structure as ``batch_stats``.
  """
  if len(frames) == 0:
    raise ValueError('AdaBN has no target frames to estimate statistics from.')
  if batch_size < 1:
    raise ValueError(f'eval.batch_size must be >= 1; got {batch_size}.')
  model = nnx.merge(graphdef, params, batch_stats, copy=True)
  layers = norms_in_call_order(model)
  for layer in layers:
    model.eval()
    # Training mode for this layer only; momentum 0 makes its running statistics exactly the
    # chunk's batch statistics, while the earlier (adapted) layers normalise with theirs.
    layer.use_running_average = False
    saved_momentum = layer.momentum
    layer.momentum = 0.0
    layer_graphdef, layer_params, layer_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    stats = _make_chunk_stats(layer_graphdef)
    path = next(p for p, m in nnx.iter_modules(model) if m is layer)
    total = 0
    sum_mean = sum_square = None
    for start in range(0, len(frames), batch_size):
      chunk = frames[start:start + batch_size]
      out = stats(layer_params, layer_stats, chunk)
      node = out
      for key in path:
        node = node[key]
      mean = np.asarray(node['mean'][...], np.float64)
      var = np.asarray(node['var'][...], np.float64)
      n = len(chunk)
      # Pooling chunks: E[x] and E[x^2] are weighted means of the chunks' own.
      sum_mean = n * mean if sum_mean is None else sum_mean + n * mean
      sum_square = (n * (var + mean ** 2) if sum_square is None
                    else sum_square + n * (var + mean ** 2))
      total += n
    population_mean = sum_mean / total
    population_var = np.maximum(sum_square / total - population_mean ** 2, 0.0)
    layer.momentum = saved_momentum
    layer.mean[...] = population_mean.astype(layer.mean[...].dtype)
    layer.var[...] = population_var.astype(layer.var[...].dtype)
  model.eval()
  return nnx.state(model, nnx.BatchStat)


def adabn_state(graphdef: nnx.GraphDef, state: state_lib.TrainState, frames: np.ndarray,
                batch_size: int) -> state_lib.TrainState:
  """``state`` with AdaBN statistics from ``frames``; the parameters are unchanged."""
  return state.replace(batch_stats=adabn(graphdef, state.params, state.batch_stats, frames,
                                         batch_size))
