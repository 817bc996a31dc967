"""Training-time augmentation of HD-sEMG frames, on the device inside the jitted train step.

`augment_batch(x, key, settings, wrap_axis)` perturbs a batch ``(B, H, W)`` the
ways a re-worn array perturbs a recording, each frame independently:

1. **Electrode shift**: a random whole-electrode shift per frame, each axis
   uniform on ``-max_shift .. +max_shift``; circular along the axis that wraps
   round the forearm, a translation with zero fill otherwise
   (`hdsemg_jax.preprocessing.grid_shift`, the same function as alignment uses).
2. **Gain jitter**: every electrode of every frame multiplied by its own
   log-normal gain ``exp(gain_jitter * N(0, 1))`` (median 1; ``gain_jitter`` is
   the std of the log gain: 0.1 is about ±10%), as contact impedance and skin
   change a channel's gain. Log-normal keeps gains positive and symmetric in ratio.
3. **Electrode dropout**: every electrode of every frame zeroed with probability
   ``electrode_dropout``, as a lifted or dead contact reads nothing. Kept values
   are not rescaled: this models missing electrodes, which test data does not
   compensate for either.

Everything is pure `jax.numpy` / `jax.random` on the batch (elementwise maps and
one gather), so it runs under `jax.jit`, `jax.vmap` (seeds stacked), `jax.pmap`
and sharded batches alike, and is a function of ``key`` alone: the train step
derives ``key`` per step as
``jax.random.fold_in(jax.random.fold_in(state.rng, AUGMENT_STREAM), state.step)``.

`AugmentSettings` is frozen and hashable (a static argument). With every field
zero it is not `enabled`, and the train step must not call `augment_batch` at
all, so that training without augmentation stays bit-identical.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp

from hdsemg_jax.preprocessing import grid_shift

# Folded into the state's RNG to derive augmentation keys, apart from the dropout
# stream (the step number folded in directly) and the shuffling stream.
AUGMENT_STREAM = 0x41554721  # 'AUG!'

_CONFIG_GROUP = 'train.augment'


@dataclasses.dataclass(frozen=True)
class AugmentSettings:
  """What `augment_batch` does (config group ``train.augment``).

  Attributes:
    max_shift: ``(rows, columns)``: largest |shift| in whole electrodes per axis.
    gain_jitter: std of the per-electrode log gain (0: no gain change).
    electrode_dropout: probability that an electrode of a frame is zeroed.
  """
  max_shift: tuple[int, int] = (0, 0)
  gain_jitter: float = 0.0
  electrode_dropout: float = 0.0

  def __post_init__(self):
    shift = tuple(self.max_shift)
    if len(shift) != 2 or any(isinstance(m, bool) or int(m) != m or m < 0 for m in shift):
      raise ValueError(f'{_CONFIG_GROUP}.max_shift={self.max_shift!r}: expected two whole '
                       'numbers >= 0 (rows, columns).')
    object.__setattr__(self, 'max_shift', (int(shift[0]), int(shift[1])))
    if not self.gain_jitter >= 0:
      raise ValueError(f'{_CONFIG_GROUP}.gain_jitter={self.gain_jitter!r}: expected >= 0.')
    if not 0 <= self.electrode_dropout < 1:
      raise ValueError(f'{_CONFIG_GROUP}.electrode_dropout={self.electrode_dropout!r}: '
                       'expected a probability in [0, 1).')
    object.__setattr__(self, 'gain_jitter', float(self.gain_jitter))
    object.__setattr__(self, 'electrode_dropout', float(self.electrode_dropout))

  @property
  def enabled(self) -> bool:
    """Whether any augmentation is on; when not, `augment_batch` must not be called."""
    return self.max_shift != (0, 0) or self.gain_jitter > 0 or self.electrode_dropout > 0

  def check_grid(self, grid_shape: Sequence[int], wrap_axis: int | None) -> None:
    """Raises ValueError if ``max_shift`` does not fit a ``grid_shape`` grid.

    Along a translating axis a shift must leave at least one electrode; along the
    wrapping axis more than half the axis length repeats smaller shifts.
    """
    grid_shift.check_wrap_axis(wrap_axis)
    for axis, m in enumerate(self.max_shift):
      size = int(grid_shape[axis])
      limit = size // 2 if axis == wrap_axis else size - 1
      if m > limit:
        how = 'wraps' if axis == wrap_axis else 'does not wrap'
        raise ValueError(
            f'{_CONFIG_GROUP}.max_shift={self.max_shift!r}: {m} {grid_shift.GRID_AXES[axis]} '
            f'is more than {limit} for a grid of {size} {grid_shift.GRID_AXES[axis]} that {how}.')


def augment_batch(x: jax.Array, key: jax.Array, settings: AugmentSettings,
                  wrap_axis: int | None) -> jax.Array:
  """``x`` (``(B, H, W, ...)``, the grid on axes 1 and 2) augmented; same shape and dtype.

  Args:
    x: the batch of frames.
    key: a JAX PRNG key (new-style or raw ``uint32[2]``); the result is a function
      of ``key`` and ``x`` only.
    settings: what to do; must be `AugmentSettings.enabled`.
    wrap_axis: the grid axis that wraps round the forearm (0, 1) or ``None``
      (`DatasetSpec.wrap_axis`).

  Raises:
    ValueError: settings not enabled (the caller must skip the call), or ``x``
      with fewer than 3 axes.
  """
  if not settings.enabled:
    raise ValueError('augment_batch called with augmentation off; skip the call instead, so '
                     'that training without augmentation stays bit-identical.')
  grid_shift.check_wrap_axis(wrap_axis)
  if x.ndim < 3:
    raise ValueError(f'x of shape {x.shape}: expected (B, H, W, ...).')
  batch = x.shape[0]
  shift_key, gain_key, drop_key = jax.random.split(key, 3)
  out = x
  if settings.max_shift != (0, 0):
    high = jnp.asarray(settings.max_shift, jnp.int32)
    shifts = jax.random.randint(shift_key, (batch, 2), -high, high + 1, dtype=jnp.int32)
    out = grid_shift.shift_frames(out, shifts, wrap_axis)
  # Gain and dropout are drawn per electrode of a frame and broadcast over any trailing axes.
  per_electrode = (batch, x.shape[1], x.shape[2]) + (1,) * (x.ndim - 3)
  if settings.gain_jitter > 0:
    log_gain = settings.gain_jitter * jax.random.normal(gain_key, per_electrode, jnp.float32)
    out = (out * jnp.exp(log_gain)).astype(x.dtype)
  if settings.electrode_dropout > 0:
    keep = jax.random.bernoulli(drop_key, 1.0 - settings.electrode_dropout, per_electrode)
    out = jnp.where(keep, out, jnp.zeros((), x.dtype))
  return out
