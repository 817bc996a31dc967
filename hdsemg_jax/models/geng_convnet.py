"""GengConvNet (Geng et al. 2016, Sci. Rep. 6:36571): the CapgMyo authors' network.

One instantaneous HD-sEMG frame in, G class logits out:

  input BatchNorm -> conv3x3-64 -> conv3x3-64 -> LC1x1-64 -> LC1x1-64
  -> FC-512 (dropout 0.5) -> FC-512 (dropout 0.5) -> FC-128 -> FC-G

'SAME' padding; every hidden layer is followed by BatchNorm and ReLU and has no
bias (BatchNorm's offset makes one redundant); only the output layer has a bias.
A locally connected (LC) 1x1 layer is a 1x1 convolution whose weights are not
shared: every electrode position has its own ``in x out`` matrix, so the grid
``(H, W)`` must be known when the model is built (``grid_shape``).

For a 16x8 grid and G = 8 classes this has 5,611,850 trainable parameters (the
paper's ~5.6M); almost all of them (4.19M) are in the first fully connected layer.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from hdsemg_jax import ops
from hdsemg_jax.models import layers


class LocallyConnected1x1(nnx.Module):
  """A 1x1 convolution with a separate weight matrix per pixel: ``kernel`` (H, W, in, out)."""

  def __init__(self, grid_shape: tuple[int, int], in_features: int, out_features: int, *,
               rngs: nnx.Rngs):
    self.grid_shape = tuple(grid_shape)
    # Fan-in per output is ``in_features`` (each pixel sees only its own channels), so He
    # scaling over the last two axes matches a 1x1 convolution's initial variance.
    init = nnx.initializers.variance_scaling(2.0, 'fan_in', 'truncated_normal',
                                             in_axis=-2, out_axis=-1)
    # Named ``kernel`` so that the optimizer's weight decay (by leaf name) reaches it.
    self.kernel = nnx.Param(init(rngs.params(), (*self.grid_shape, in_features, out_features)))

  def __call__(self, x: jax.Array) -> jax.Array:
    if tuple(x.shape[1:3]) != self.grid_shape:
      raise ValueError(f'geng_convnet was built for a {self.grid_shape} grid (model.grid_shape) '
                       f'but got frames of shape {tuple(x.shape[1:3])}.')
    return jnp.einsum('nhwc,hwcd->nhwd', x, self.kernel[...])


class GengConvNet(nnx.Module):
  """Maps frames ``(N, H, W)`` or ``(N, H, W, C)`` to class logits ``(N, num_classes)``."""

  def __init__(self, num_classes: int, *, grid_shape: Sequence[int] = (16, 8),
               in_channels: int = 1,
               conv_features: Sequence[int] = (64, 64),
               local_features: Sequence[int] = (64, 64),
               dense_features: Sequence[int] = (512, 512, 128),
               dropout: float = 0.5, dropout_layers: int = 2,
               bn_momentum: float = 0.9, bn_epsilon: float = 1e-5,
               conv_impl: str = 'xla', batchnorm_grad: str = 'closed_form',
               rngs: nnx.Rngs):
    if len(grid_shape) != 2:
      raise ValueError(f'model.grid_shape must be (H, W); got {tuple(grid_shape)}.')
    if not 0 <= dropout_layers <= len(dense_features):
      raise ValueError(f'model.dropout_layers={dropout_layers} must be between 0 and the number '
                       f'of dense layers ({len(dense_features)}).')
    height, width = (int(s) for s in grid_shape)
    norm = dict(momentum=bn_momentum, epsilon=bn_epsilon, grad=batchnorm_grad, rngs=rngs)
    self.input_norm = ops.BatchNorm(in_channels, **norm)
    widths = [in_channels, *conv_features]
    self.convs = nnx.List([
        layers.conv(widths[i], widths[i + 1], 3, 1, use_bias=False, conv_impl=conv_impl,
                    rngs=rngs)
        for i in range(len(conv_features))])
    self.conv_norms = nnx.List([ops.BatchNorm(w, **norm) for w in conv_features])
    widths = [widths[-1], *local_features]
    self.locals = nnx.List([
        LocallyConnected1x1((height, width), widths[i], widths[i + 1], rngs=rngs)
        for i in range(len(local_features))])
    self.local_norms = nnx.List([ops.BatchNorm(w, **norm) for w in local_features])
    widths = [height * width * widths[-1], *dense_features]
    self.denses = nnx.List([
        nnx.Linear(widths[i], widths[i + 1], use_bias=False, kernel_init=layers.KERNEL_INIT,
                   rngs=rngs)
        for i in range(len(dense_features))])
    self.dense_norms = nnx.List([ops.BatchNorm(w, **norm) for w in dense_features])
    # No rngs stored in the layer: the train step passes a fresh key per step at call time,
    # and a stored RNG stream would be state outside the (params, batch_stats) split.
    self.dropout = nnx.Dropout(dropout)
    self.dropout_layers = dropout_layers
    self.head = nnx.Linear(widths[-1], num_classes, use_bias=True,
                           kernel_init=layers.KERNEL_INIT, rngs=rngs)

  def __call__(self, x: jax.Array, rngs: nnx.Rngs | None = None) -> jax.Array:
    if x.ndim == 3:
      x = x[..., None]
    x = self.input_norm(x)
    for conv, norm in zip(self.convs, self.conv_norms):
      x = nnx.relu(norm(conv(x)))
    for local, norm in zip(self.locals, self.local_norms):
      x = nnx.relu(norm(local(x)))
    x = x.reshape(x.shape[0], -1)
    for i, (dense, norm) in enumerate(zip(self.denses, self.dense_norms)):
      x = nnx.relu(norm(dense(x)))
      if i < self.dropout_layers:
        x = self.dropout(x, rngs=rngs)
    return self.head(x)

  def norms_in_call_order(self) -> list[nnx.BatchNorm]:
    """The BatchNorm layers in the order a forward pass calls them (AdaBN adapts them so)."""
    return [self.input_norm, *self.conv_norms, *self.local_norms, *self.dense_norms]
