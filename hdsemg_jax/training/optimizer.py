"""The CapgMyo authors' SGD recipe as an optax transformation.

SGD with momentum; L2 weight decay added to the gradient of convolution and
dense kernels only (not BatchNorm scales/offsets, not biases). The learning-rate
schedule (``train.lr_schedule``) is placed on the run's actual steps, so a short
run gets the whole schedule, compressed, not its first part:

* ``step`` (the authors'): divided by 10 at each boundary, given as fractions of
  the training run;
* ``cosine``: half a cosine from the initial rate down to 0 at the last step (no
  boundaries; a common choice when the budget is cut, with no drop to place).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import optax


def _is_kernel(path) -> bool:
  return any(getattr(key, 'key', None) == 'kernel' for key in path)


def kernel_mask(params):
  """True for the leaves of ``params`` that are conv/dense kernels."""
  return jax.tree_util.tree_map_with_path(lambda path, _: _is_kernel(path), params)


LR_SCHEDULES = ('step', 'cosine')


def learning_rate_schedule(learning_rate: float, boundaries: tuple[float, ...],
                           total_steps: int, kind: str = 'step') -> optax.Schedule:
  """The learning rate over ``total_steps`` steps: ``kind`` of `LR_SCHEDULES`.

  ``step``: ``learning_rate`` divided by 10 at each fraction of ``total_steps`` in
  ``boundaries``; ``cosine``: cosine decay from ``learning_rate`` to 0 (``boundaries``
  unused).
  """
  if kind not in LR_SCHEDULES:
    raise ValueError(f'train.lr_schedule={kind!r} is not known (known: {", ".join(LR_SCHEDULES)}).')
  if kind == 'cosine':
    return optax.cosine_decay_schedule(learning_rate, max(int(total_steps), 1))
  for b in boundaries:
    if not 0.0 < b < 1.0:
      raise ValueError(f'train.lr_boundaries must be fractions of the run in (0, 1); got {b}.')
  steps = [round(b * total_steps) for b in boundaries]
  return optax.piecewise_constant_schedule(learning_rate, {s: 0.1 for s in steps})


def sgd_recipe(*, learning_rate: float, momentum: float, weight_decay: float,
               lr_boundaries: tuple[float, ...], total_steps: int,
               lr_schedule: str = 'step') -> optax.GradientTransformation:
  """The optimizer of the All-ConvNet / CapgMyo training recipe."""
  schedule = learning_rate_schedule(learning_rate, tuple(lr_boundaries), total_steps, lr_schedule)
  return optax.chain(
      optax.add_decayed_weights(weight_decay, mask=kernel_mask),
      optax.sgd(schedule, momentum=momentum),
  )


def only_trainable(tx: optax.GradientTransformation,
                   trainable: Sequence[str]) -> optax.GradientTransformation:
  """``tx`` on the parameters under the top-level names ``trainable``; the rest stay fixed.

  Frozen parameters get zero updates (so no weight decay and no momentum either).
  """
  names = set(trainable)

  def labels(params):
    return jax.tree_util.tree_map_with_path(
        lambda path, _: 'train' if str(getattr(path[0], 'key', path[0])) in names else 'freeze',
        params)

  return optax.multi_transform({'train': tx, 'freeze': optax.set_to_zero()}, labels)


def check_trainable(params: Any, names: Sequence[str] | str) -> tuple[str, ...] | None:
  """``adapt.finetune_layers`` as top-level parameter names (None: all); unknown names fail."""
  if isinstance(names, str):
    names = (names,)
  names = tuple(str(n) for n in names)
  if names == ('all',):
    return None
  known = sorted({str(getattr(path[0], 'key', path[0]))
                  for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]})
  unknown = [n for n in names if n not in known]
  if unknown or not names:
    raise ValueError(f"adapt.finetune_layers: {unknown or names} are not top-level parameter "
                     f"names of this model (known: {', '.join(known)}; or 'all').")
  return names


@dataclasses.dataclass(frozen=True)
class Recipe:
  """Everything an optimizer is made of, hashable: equal recipes give equal programs."""
  learning_rate: float
  momentum: float
  weight_decay: float
  lr_boundaries: tuple[float, ...]
  total_steps: int
  trainable: tuple[str, ...] | None = None  # Top-level parameter names; None: all.
  lr_schedule: str = 'step'

  @classmethod
  def create(cls, settings: Any, total_steps: int,
             trainable: Sequence[str] | None = None) -> Recipe:
    """The recipe of ``settings`` (a `trainer.TrainSettings`) over ``total_steps``."""
    return cls(float(settings.learning_rate), float(settings.momentum),
               float(settings.weight_decay),
               tuple(float(b) for b in settings.lr_boundaries), int(total_steps),
               None if trainable is None else tuple(trainable),
               str(settings.lr_schedule))

  def build(self) -> optax.GradientTransformation:
    tx = sgd_recipe(learning_rate=self.learning_rate, momentum=self.momentum,
                    weight_decay=self.weight_decay, lr_boundaries=self.lr_boundaries,
                    total_steps=self.total_steps, lr_schedule=self.lr_schedule)
    return tx if self.trainable is None else only_trainable(tx, self.trainable)
