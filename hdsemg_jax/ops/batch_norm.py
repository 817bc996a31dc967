"""BatchNorm whose training-mode gradient is the closed-form expression.

`BatchNorm` is `nnx.BatchNorm` (same parameters, statistics, running averages and
outputs) with one difference in training mode: its backward pass is the textbook
expression

  dx = scale / sigma * (g - mean(g) - x_hat * mean(g * x_hat)),
  dscale = sum(g * x_hat),  dbias = sum(g),

written as a `jax.custom_vjp`, instead of autodiff of the forward computation.
Both are the same derivative; they differ only in rounding. Autodiff of the
forward graph gives XLA:CPU several separate passes and reductions over every
activation map (which dominate a training step of this small network after the
convolutions); the closed form needs two fused reductions and one elementwise pass.

``grad='autodiff'`` keeps Flax's own backward pass, for comparison. Cross-device
statistics (``axis_name`` set, as under ``pmap``) and masks also take Flax's path.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

GRADS = ('closed_form', 'autodiff')


def check_grad(grad: str) -> str:
  """``grad`` if it names a known BatchNorm gradient; otherwise a clear error."""
  if grad not in GRADS:
    raise ValueError(f'model.batchnorm_grad={grad!r} is not known (known: {", ".join(GRADS)}).')
  return grad


def _stats(x: jax.Array, axes: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
  # Flax's fast variance: E[x^2] - E[x]^2, clipped at 0 against round-off.
  mean = jnp.mean(x, axes)
  var = jnp.maximum(0.0, jnp.mean(x * x, axes) - mean * mean)
  return mean, var


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _normalize_with_batch_stats(x: jax.Array, scale: jax.Array, bias: jax.Array,
                                epsilon: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  return _forward(x, scale, bias, epsilon)[0]


def _forward(x, scale, bias, epsilon):
  axes = tuple(range(x.ndim - 1))
  mean, var = _stats(x, axes)
  inv = lax.rsqrt(var + epsilon)
  y = (x - mean) * (inv * scale) + bias
  return (y, mean, var), (x, mean, inv, scale)


def _backward(epsilon, residuals, cotangents):
  del epsilon
  x, mean, inv, scale = residuals
  g = cotangents[0]  # The statistics are not differentiated (running averages only).
  axes = tuple(range(x.ndim - 1))
  x_hat = (x - mean) * inv
  g_mean = jnp.mean(g, axes)
  gx_mean = jnp.mean(g * x_hat, axes)
  count = x.size // x.shape[-1]
  dx = (scale * inv) * (g - g_mean - x_hat * gx_mean)
  return dx, gx_mean * count, g_mean * count


_normalize_with_batch_stats.defvjp(_forward, _backward)


class BatchNorm(nnx.BatchNorm):
  """`nnx.BatchNorm` over the last axis with a closed-form training gradient (see module doc)."""

  def __init__(self, num_features: int, *, grad: str = 'closed_form', **kwargs: Any):
    super().__init__(num_features, **kwargs)
    self.grad = check_grad(grad)

  def __call__(self, x: jax.Array, use_running_average: bool | None = None, *,
               mask: jax.Array | None = None) -> jax.Array:
    running = self.use_running_average if use_running_average is None else use_running_average
    # Flax's path also answers a missing use_running_average with its own clear error.
    if (running is None or running or self.grad == 'autodiff' or mask is not None
        or self.axis_name is not None or self.axis != -1 or self.scale is None
        or self.bias is None or self.dtype is not None or not self.use_fast_variance):
      return super().__call__(x, use_running_average, mask=mask)
    # Statistics in float32 at least, as Flax computes them.
    compute = jnp.promote_types(x.dtype, jnp.float32)
    y, mean, var = _normalize_with_batch_stats(
        x.astype(compute), self.scale[...].astype(compute), self.bias[...].astype(compute),
        self.epsilon)
    m = self.momentum
    self.mean[...] = lax.stop_gradient(m * self.mean[...] + (1 - m) * mean)
    self.var[...] = lax.stop_gradient(m * self.var[...] + (1 - m) * var)
    return y.astype(jnp.result_type(x, self.scale[...], self.bias[...]))
