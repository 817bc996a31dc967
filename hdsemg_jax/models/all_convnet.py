"""All-ConvNet (Islam, Massicotte, Zhu, I2MTC 2020): a network of convolutions only.

The paper gives only its principles (convolutions only, random init, about 460k
trainable parameters, one instantaneous HD-sEMG frame in); its layer table is not
public. The default here is a reconstruction after Springenberg et al.'s All-CNN
recipe (striding instead of pooling, 1x1 convolutions and global average pooling
instead of dense layers):

  input BatchNorm (z-score) -> conv3x3-64 -> conv3x3-64 -> conv3x3-128 /2
  -> conv3x3-128 -> conv3x3-128 -> conv1x1-256 -> conv1x1-G -> global mean

'SAME' padding; every convolution but the last is followed by BatchNorm
(momentum 0.9, epsilon 1e-5) and ReLU and has no bias. For G = 8 classes this has
442,442 trainable parameters. Widths, kernels and strides come from the config.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from hdsemg_jax import ops
from hdsemg_jax.models import layers


class AllConvNet(nnx.Module):
  """Maps frames ``(N, H, W)`` or ``(N, H, W, C)`` to class logits ``(N, num_classes)``."""

  def __init__(self, num_classes: int, *, in_channels: int = 1,
               features: Sequence[int] = (64, 64, 128, 128, 128, 256),
               kernel_sizes: Sequence[int] = (3, 3, 3, 3, 3, 1),
               strides: Sequence[int] = (1, 1, 2, 1, 1, 1),
               bn_momentum: float = 0.9, bn_epsilon: float = 1e-5,
               conv_impl: str = 'xla', batchnorm_grad: str = 'closed_form',
               rngs: nnx.Rngs):
    if not len(features) == len(kernel_sizes) == len(strides):
      raise ValueError('model.features, model.kernel_sizes and model.strides must have one '
                       f'entry per hidden layer; got {len(features)}, {len(kernel_sizes)}, '
                       f'{len(strides)}.')
    norm = dict(momentum=bn_momentum, epsilon=bn_epsilon, grad=batchnorm_grad, rngs=rngs)
    self.input_norm = ops.BatchNorm(in_channels, **norm)
    widths = [in_channels, *features]
    self.convs = nnx.List([
        layers.conv(widths[i], widths[i + 1], kernel_sizes[i], strides[i], use_bias=False,
                    conv_impl=conv_impl, rngs=rngs)
        for i in range(len(features))])
    self.norms = nnx.List([ops.BatchNorm(w, **norm) for w in features])
    self.head = layers.conv(widths[-1], num_classes, 1, 1, use_bias=True,
                            conv_impl=conv_impl, rngs=rngs)

  def __call__(self, x: jax.Array, rngs: nnx.Rngs | None = None) -> jax.Array:
    del rngs  # No stochastic layers.
    if x.ndim == 3:
      x = x[..., None]
    x = self.input_norm(x)
    for conv, norm in zip(self.convs, self.norms):
      x = nnx.relu(norm(conv(x)))
    return jnp.mean(self.head(x), axis=(1, 2))

  def norms_in_call_order(self) -> list[nnx.BatchNorm]:
    """The BatchNorm layers in the order a forward pass calls them (AdaBN adapts them so)."""
    return [self.input_norm, *self.norms]
