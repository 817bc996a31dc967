"""Faster formulations of standard operations, chosen by config; plain Flax is 'xla'/'autodiff'.

The models take them through two config keys and nothing else:

* ``model.conv_impl`` -> `conv.conv_general_dilated(impl)`, passed to `nnx.Conv`;
* ``model.batchnorm_grad`` -> `batch_norm.BatchNorm(..., grad=...)`, an `nnx.BatchNorm`;

and the training layer asks `compiler_options.train_compiler_options(conv_impl,
per_device_batch)` how to compile a step. Every choice keeps the parameter pytree
of plain Flax, so a model trained with one runs with any other.
"""

from hdsemg_jax.ops.batch_norm import GRADS as BATCHNORM_GRADS, BatchNorm
from hdsemg_jax.ops.compiler_options import train_compiler_options
from hdsemg_jax.ops.conv import IMPLS as CONV_IMPLS, conv_general_dilated

__all__ = ['BATCHNORM_GRADS', 'BatchNorm', 'CONV_IMPLS', 'conv_general_dilated',
           'train_compiler_options']
