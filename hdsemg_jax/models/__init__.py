"""Models by name: ``build(name, num_classes, **config)``."""

from __future__ import annotations

import inspect
from typing import Any, Callable

import jax
from absl import logging
from flax import nnx

from hdsemg_jax.models.all_convnet import AllConvNet
from hdsemg_jax.models.geng_convnet import GengConvNet

MODELS: dict[str, Callable[..., nnx.Module]] = {
    'all_convnet': AllConvNet,
    'geng_convnet': GengConvNet,
}


def build(name: str, num_classes: int, *, seed: int, **kwargs: Any) -> nnx.Module:
  """Builds model ``name`` with parameters drawn from ``seed``."""
  if name not in MODELS:
    raise ValueError(f'model.name={name!r} is not known (known: {", ".join(sorted(MODELS))}).')
  model_class = MODELS[name]
  # One config tree serves every model (e.g. the default's all_convnet widths while
  # model.name=geng_convnet, or a grid_shape that only some models need), so each model
  # takes the keys its constructor names and the rest are set aside, visibly.
  # A class's own __init__: nnx's metaclass shows only (*args, **kwargs) for the class.
  init = model_class.__init__ if inspect.isclass(model_class) else model_class
  accepted = inspect.signature(init).parameters
  if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
    ignored = sorted(k for k in kwargs if k not in accepted)
    if ignored:
      logging.info('model %s ignores config keys %s.', name, ', '.join(ignored))
    kwargs = {k: v for k, v in kwargs.items() if k in accepted}
  return model_class(num_classes, rngs=nnx.Rngs(params=seed, dropout=seed), **kwargs)


def num_params(model: nnx.Module) -> int:
  """The number of trainable parameters."""
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


