"""Models by name: ``build_from_config(model_config, num_classes, grid_shape, seed)``.

``build(name, num_classes, seed=..., **kwargs)`` is the same with explicit arguments.

Each registered model reads exactly the ``model.*`` keys it names in `MODEL_KEYS`;
the config tree holds the keys of every model (the unused ones of the others are
ignored; a key the tree lacks is refused by `hdsemg_jax.config.check`).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
from flax import nnx

from hdsemg_jax.models.all_convnet import AllConvNet
from hdsemg_jax.models.geng_convnet import GengConvNet

# Keys every network takes.
_COMMON = ('bn_momentum', 'bn_epsilon', 'conv_impl', 'batchnorm_grad')
# The model.* keys each model reads (besides ``name``).
MODEL_KEYS: dict[str, tuple[str, ...]] = {
    'all_convnet': ('features', 'kernel_sizes', 'strides', *_COMMON),
    'geng_convnet': ('conv_features', 'local_features', 'dense_features', 'dropout',
                     'dropout_layers', *_COMMON),
}
_TAKES_GRID = {'geng_convnet'}
_CLASSES: dict[str, Callable[..., nnx.Module]] = {
    'all_convnet': AllConvNet,
    'geng_convnet': GengConvNet,
}


def check_name(name: str) -> str:
  if name not in _CLASSES:
    raise ValueError(f'model.name={name!r} is not known (known: {", ".join(sorted(_CLASSES))}).')
  return name


def _value(value: Any) -> Any:
  # Config lists (from JSON or the command line) are tuples to the models.
  return tuple(value) if isinstance(value, list) else value


def build_from_config(model_config: Mapping[str, Any], num_classes: int,
                      grid_shape: Sequence[int], seed: int) -> nnx.Module:
  """Model ``model_config['name']`` with its own keys, parameters drawn from ``seed``."""
  name = check_name(model_config['name'])
  missing = [k for k in MODEL_KEYS[name] if k not in model_config]
  if missing:
    raise ValueError(f'model.name={name!r} needs model.{missing[0]}, which the config lacks.')
  kwargs = {k: _value(model_config[k]) for k in MODEL_KEYS[name]}
  if name in _TAKES_GRID:
    kwargs['grid_shape'] = tuple(int(n) for n in grid_shape)
  return build(name, num_classes, seed=seed, **kwargs)


def build(name: str, num_classes: int, *, seed: int, **kwargs: Any) -> nnx.Module:
  """Model ``name`` built with exactly ``kwargs`` (its constructor's own arguments)."""
  return _CLASSES[check_name(name)](num_classes, rngs=nnx.Rngs(params=seed, dropout=seed),
                                    **kwargs)


def num_params(model: nnx.Module) -> int:
  """The number of trainable parameters."""
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def num_values(model: nnx.Module) -> int:
  """Every value a saved model holds: the parameters and the BatchNorm statistics."""
  return num_params(model) + sum(x.size for x in jax.tree.leaves(nnx.state(model,
                                                                           nnx.BatchStat)))
