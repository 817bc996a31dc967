"""The CapgMyo authors' SGD recipe as an optax transformation.

SGD with momentum; L2 weight decay added to the gradient of convolution and
dense kernels only (not BatchNorm scales/offsets, not biases); the learning rate
divided by 10 at each boundary, given as fractions of the training run.
"""

from __future__ import annotations

import jax
import optax


def _is_kernel(path) -> bool:
  return any(getattr(key, 'key', None) == 'kernel' for key in path)


def kernel_mask(params):
  """True for the leaves of ``params`` that are conv/dense kernels."""
  return jax.tree_util.tree_map_with_path(lambda path, _: _is_kernel(path), params)


def learning_rate_schedule(learning_rate: float, boundaries: tuple[float, ...],
                           total_steps: int) -> optax.Schedule:
  """``learning_rate``, divided by 10 at each fraction of ``total_steps`` in ``boundaries``."""
  for b in boundaries:
    if not 0.0 < b < 1.0:
      raise ValueError(f'train.lr_boundaries must be fractions of the run in (0, 1); got {b}.')
  steps = [round(b * total_steps) for b in boundaries]
  return optax.piecewise_constant_schedule(learning_rate, {s: 0.1 for s in steps})


def sgd_recipe(*, learning_rate: float, momentum: float, weight_decay: float,
               lr_boundaries: tuple[float, ...], total_steps: int) -> optax.GradientTransformation:
  """The optimizer of the All-ConvNet / CapgMyo training recipe."""
  schedule = learning_rate_schedule(learning_rate, tuple(lr_boundaries), total_steps)
  return optax.chain(
      optax.add_decayed_weights(weight_decay, mask=kernel_mask),
      optax.sgd(schedule, momentum=momentum),
  )
