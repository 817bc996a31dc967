"""Building blocks shared by the models."""

from __future__ import annotations

from flax import nnx

from hdsemg_jax.ops import conv as conv_ops

# He initialisation suits ReLU networks trained from scratch.
KERNEL_INIT = nnx.initializers.variance_scaling(2.0, 'fan_in', 'truncated_normal')


def conv(in_features: int, out_features: int, kernel_size: int, stride: int, *,
         use_bias: bool, conv_impl: str = 'xla', rngs: nnx.Rngs) -> nnx.Conv:
  """A 'SAME'-padded square convolution.

  ``conv_impl`` names how the convolution is computed (see `hdsemg_jax.ops.conv`); every
  choice keeps the parameters of `nnx.Conv` (``kernel`` (k, k, in, out), ``bias``),
  so a model trained with one runs with any other.
  """
  return nnx.Conv(in_features, out_features, (kernel_size, kernel_size), strides=stride,
                  padding='SAME', use_bias=use_bias, kernel_init=KERNEL_INIT,
                  conv_general_dilated=conv_ops.conv_general_dilated(conv_impl), rngs=rngs)
