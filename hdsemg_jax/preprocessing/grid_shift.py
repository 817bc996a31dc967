"""Whole-electrode shifts of HD-sEMG frames on their grid: the one definition used everywhere.

``shift_grid(frames, (dr, dc), wrap_axis)`` moves the content of every frame by
``dr`` rows and ``dc`` columns: the value at ``(r, c)`` lands on ``(r + dr, c + dc)``.

* Along the grid axis that wraps around the forearm (``wrap_axis``, 0 = rows,
  1 = columns, ``None`` = neither) the shift is circular, as is the physical
  rotation of a band of electrodes around the arm.
* Along any other axis it is a translation: content pushed past the edge is lost
  and the vacated electrodes get ``fill``. The default, ``0.0``, reads as "no
  electrode here": it adds no signal the recording did not have, leaves every
  surviving electrode's value untouched, and is what electrode dropout
  (`hdsemg_jax.training.augment`) also writes. ``fill='edge'`` repeats the edge
  electrode instead (the vacated band then duplicates a real channel, which a real
  array never records, so it is offered, not the default).

The grid is the last two axes of ``frames`` (``(..., H, W)``). NumPy input gives
NumPy output; a JAX array gives a JAX array, and then the shift may be traced
(e.g. drawn at random inside a jitted step), so the same code serves data
preparation, alignment and on-device augmentation.
"""

from __future__ import annotations

from typing import Any, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

Fill = Union[float, str]
GRID_AXES = ('rows', 'columns')


def check_wrap_axis(wrap_axis: int | None) -> None:
  """Raises ValueError unless ``wrap_axis`` is ``None``, 0 (rows) or 1 (columns)."""
  if wrap_axis is not None and wrap_axis not in (0, 1):
    raise ValueError(f'wrap_axis={wrap_axis!r}: expected None, 0 (rows) or 1 (columns).')


def _is_jax(x: Any) -> bool:
  return isinstance(x, jax.Array)  # Tracers are jax.Array instances too.


def _source_index(xp, size: int, shift, wrap: bool):
  """For each output position, the input position it reads and whether that lies on the grid."""
  positions = xp.arange(size)
  source = positions - shift
  if wrap:
    return source % size, None
  valid = (source >= 0) & (source < size)
  return xp.clip(source, 0, size - 1), valid


def shift_grid(frames, shift: Sequence[Any], wrap_axis: int | None, fill: Fill = 0.0):
  """Shifts the content of ``frames`` (``(..., H, W)``) by ``shift = (dr, dc)`` whole electrodes.

  Args:
    frames: NumPy or JAX array whose last two axes are the electrode grid.
    shift: ``(dr, dc)``: Python ints, or integer JAX scalars (traced values allowed
      when ``frames`` is a JAX array). Positive ``dr`` moves content down (to higher
      rows), positive ``dc`` to higher columns.
    wrap_axis: the grid axis that wraps around the forearm (0 or 1), or ``None``.
    fill: value of electrodes vacated by a translation (a number, cast to
      ``frames.dtype``), or ``'edge'`` to repeat the edge electrode. Unused along
      ``wrap_axis``.

  Returns:
    An array of the same type, shape and dtype as ``frames``. A shift of
    ``(0, 0)`` returns the values unchanged; along ``wrap_axis`` a shift is taken
    modulo the axis length; a translation of at least the axis length leaves only
    ``fill``.
  """
  check_wrap_axis(wrap_axis)
  if len(shift) != 2:
    raise ValueError(f'shift={shift!r}: expected (rows, columns).')
  if isinstance(fill, str) and fill != 'edge':
    raise ValueError(f"fill={fill!r}: expected a number or 'edge'.")
  xp = jnp if _is_jax(frames) or any(_is_jax(s) for s in shift) else np
  if xp is np:
    frames = np.asarray(frames)
  if frames.ndim < 2:
    raise ValueError(f'frames of shape {frames.shape}: expected (..., H, W).')
  out = frames
  for axis, amount in enumerate(shift):
    if not _is_jax(amount):
      amount = int(amount)
      if amount == 0:
        continue  # Nothing to move; also keeps (0, 0) an exact identity.
    size = frames.shape[frames.ndim - 2 + axis]
    index, valid = _source_index(xp, size, amount, wrap=axis == wrap_axis)
    grid_axis = out.ndim - 2 + axis
    out = xp.take(out, index, axis=grid_axis)
    if valid is not None and fill != 'edge':
      # Broadcast the per-position mask over the other axes of the frame.
      mask_shape = [1] * out.ndim
      mask_shape[grid_axis] = size
      out = xp.where(valid.reshape(mask_shape), out, xp.asarray(fill, dtype=out.dtype))
  return out


def shift_frames(frames, shifts, wrap_axis: int | None, fill: Fill = 0.0) -> jax.Array:
  """Shifts each frame of a JAX batch ``(B, H, W, ...)`` by its own ``shifts[b] = (dr, dc)``.

  The grid is axes 1 and 2 here (the batch layout of the train step). This is
  `shift_grid` vmapped over the batch, so the two always agree; ``shifts`` is an
  int ``(B, 2)`` array, traced or not.
  """
  frames = jnp.asarray(frames)
  shifts = jnp.asarray(shifts)
  if frames.ndim < 3 or shifts.shape != (frames.shape[0], 2):
    raise ValueError(f'frames {frames.shape} and shifts {shifts.shape}: expected (B, H, W, ...) '
                     'and (B, 2).')
  # shift_grid wants the grid last: move any trailing feature axes to the front of a frame.
  extra = frames.ndim - 3
  perm = (0, *range(3, 3 + extra), 1, 2)
  inverse = tuple(int(i) for i in np.argsort(perm))
  moved = jnp.transpose(frames, perm) if extra else frames
  shifted = jax.vmap(lambda f, s: shift_grid(f, (s[0], s[1]), wrap_axis, fill))(moved, shifts)
  return jnp.transpose(shifted, inverse) if extra else shifted
