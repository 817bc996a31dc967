"""Models by name: ``build(name, num_classes, **config)``."""

from __future__ import annotations

from typing import Any, Callable

import jax
from flax import nnx

from hdsemg_jax.models.all_convnet import AllConvNet

MODELS: dict[str, Callable[..., nnx.Module]] = {
    'all_convnet': AllConvNet,
}


def build(name: str, num_classes: int, *, seed: int, **kwargs: Any) -> nnx.Module:
  """Builds model ``name`` with parameters drawn from ``seed``."""
  if name not in MODELS:
    raise ValueError(f'model.name={name!r} is not known (known: {", ".join(sorted(MODELS))}).')
  return MODELS[name](num_classes, rngs=nnx.Rngs(params=seed, dropout=seed), **kwargs)


def num_params(model: nnx.Module) -> int:
  """The number of trainable parameters."""
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


