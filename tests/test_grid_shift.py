"""shift_grid: exact circular shifts along the wrapping axis, translations with fill otherwise."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hdsemg_jax.preprocessing import grid_shift

FRAMES = np.arange(3 * 5 * 4, dtype=np.float32).reshape(3, 5, 4) + 1  # No zeros: fill shows.


def _translate(x, shift, fill):
  """Reference translation, electrode by electrode."""
  out = np.full_like(x, fill)
  height, width = x.shape[-2:]
  for r in range(height):
    for c in range(width):
      rr, cc = r + shift[0], c + shift[1]
      if 0 <= rr < height and 0 <= cc < width:
        out[..., rr, cc] = x[..., r, c]
  return out


@pytest.mark.parametrize('shift', [(0, 0), (1, 0), (-2, 0), (0, 1), (0, -3), (2, 3), (-1, -1),
                                   (7, 9)])
@pytest.mark.parametrize('as_jax', [False, True])
def test_roll_along_both_axes_when_both_wrap_is_exact(shift, as_jax):
  # Rows wrapping, then columns wrapping: together each axis is checked against np.roll.
  x = jnp.asarray(FRAMES) if as_jax else FRAMES
  rows = grid_shift.shift_grid(x, (shift[0], 0), wrap_axis=0)
  cols = grid_shift.shift_grid(x, (0, shift[1]), wrap_axis=1)
  assert isinstance(rows, jax.Array if as_jax else np.ndarray)
  np.testing.assert_array_equal(np.asarray(rows), np.roll(FRAMES, shift[0], axis=1))
  np.testing.assert_array_equal(np.asarray(cols), np.roll(FRAMES, shift[1], axis=2))


@pytest.mark.parametrize('wrap_axis', [None, 0, 1])
@pytest.mark.parametrize('shift', [(1, 0), (-2, 1), (0, -1), (3, 3), (-6, 0)])
@pytest.mark.parametrize('as_jax', [False, True])
def test_translation_fills_and_wraps_per_axis(wrap_axis, shift, as_jax):
  x = jnp.asarray(FRAMES) if as_jax else FRAMES
  out = np.asarray(grid_shift.shift_grid(x, shift, wrap_axis, fill=-7.0))
  # Reference: roll along the wrapping axis, translate along the other.
  expected = FRAMES
  translate = list(shift)
  if wrap_axis is not None:
    expected = np.roll(expected, shift[wrap_axis], axis=1 + wrap_axis)
    translate[wrap_axis] = 0
  expected = _translate(expected, translate, -7.0)
  np.testing.assert_array_equal(out, expected)
  assert out.dtype == FRAMES.dtype and out.shape == FRAMES.shape


def test_edge_fill_repeats_the_edge_electrode():
  out = grid_shift.shift_grid(FRAMES, (2, -1), None, fill='edge')
  idx_r = np.clip(np.arange(5) - 2, 0, 4)
  idx_c = np.clip(np.arange(4) + 1, 0, 3)
  np.testing.assert_array_equal(out, FRAMES[:, idx_r][:, :, idx_c])


def test_traced_shift_under_jit_matches_static():
  f = jax.jit(lambda x, s: grid_shift.shift_grid(x, (s[0], s[1]), 1))
  for shift in [(1, 2), (-1, -3), (0, 5)]:
    np.testing.assert_array_equal(np.asarray(f(jnp.asarray(FRAMES), jnp.asarray(shift))),
                                  grid_shift.shift_grid(FRAMES, shift, 1))


def test_shift_frames_shifts_each_frame_by_its_own():
  shifts = np.array([[1, 0], [0, -1], [-2, 3]])
  out = np.asarray(grid_shift.shift_frames(jnp.asarray(FRAMES), jnp.asarray(shifts), 1))
  for b in range(3):
    np.testing.assert_array_equal(out[b], grid_shift.shift_grid(FRAMES[b], shifts[b], 1))
  # Trailing feature axes ride along.
  x4 = np.stack([FRAMES, -FRAMES], axis=-1)
  out4 = np.asarray(grid_shift.shift_frames(jnp.asarray(x4), jnp.asarray(shifts), 1))
  np.testing.assert_array_equal(out4[..., 0], out)
  np.testing.assert_array_equal(out4[..., 1], -out)


def test_zero_shift_is_identity_and_integer_dtypes_survive():
  ints = FRAMES.astype(np.int16)
  np.testing.assert_array_equal(grid_shift.shift_grid(ints, (0, 0), None), ints)
  assert grid_shift.shift_grid(ints, (1, 1), None).dtype == np.int16


@pytest.mark.parametrize('kwargs,match', [
    ({'shift': (1,), 'wrap_axis': None}, 'shift'),
    ({'shift': (1, 0), 'wrap_axis': 2}, 'wrap_axis'),
    ({'shift': (1, 0), 'wrap_axis': None, 'fill': 'mirror'}, 'fill'),
])
def test_bad_arguments_are_named(kwargs, match):
  with pytest.raises(ValueError, match=match):
    grid_shift.shift_grid(FRAMES, **kwargs)
