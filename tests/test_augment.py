"""augment_batch: deterministic per key, shapes kept, shifts bounded, gain and dropout plausible."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hdsemg_jax.preprocessing import grid_shift
from hdsemg_jax.training import augment

B, H, W = 64, 16, 8


def _batch(dtype=jnp.float32):
  return jax.random.normal(jax.random.key(0), (B, H, W)).astype(dtype) + 3.0  # No zeros.


def _key(i=0):
  return jax.random.fold_in(jax.random.fold_in(jax.random.key(1), augment.AUGMENT_STREAM), i)


ALL = augment.AugmentSettings(max_shift=(2, 3), gain_jitter=0.2, electrode_dropout=0.1)


def test_deterministic_per_key_and_different_across_keys():
  x = _batch()
  a = augment.augment_batch(x, _key(0), ALL, 1)
  b = augment.augment_batch(x, _key(0), ALL, 1)
  c = augment.augment_batch(x, _key(1), ALL, 1)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not np.array_equal(np.asarray(a), np.asarray(c))


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_shape_and_dtype_kept_under_jit(dtype):
  x = _batch(dtype)
  out = jax.jit(augment.augment_batch, static_argnums=(2, 3))(x, _key(), ALL, 0)
  assert out.shape == x.shape and out.dtype == dtype
  # The same draws; XLA may fuse exp and multiply differently from eager (last-bit differences).
  np.testing.assert_allclose(np.asarray(out, np.float32),
                             np.asarray(augment.augment_batch(x, _key(), ALL, 0), np.float32),
                             rtol=1e-2 if dtype == jnp.bfloat16 else 1e-6)


def _recover_shift(original, shifted, max_shift, wrap_axis):
  """The unique shift within bounds that maps ``original`` onto ``shifted``, else None."""
  found = [(r, c) for r in range(-H, H + 1) for c in range(-W, W + 1)
           if np.array_equal(grid_shift.shift_grid(original, (r, c), wrap_axis), shifted)]
  return found


@pytest.mark.parametrize('wrap_axis', [None, 0, 1])
def test_shifts_only_and_bounded(wrap_axis):
  settings = augment.AugmentSettings(max_shift=(2, 1))
  x = np.asarray(_batch())
  out = np.asarray(augment.augment_batch(jnp.asarray(x), _key(3), settings, wrap_axis))
  seen = set()
  for b in range(B):
    matches = _recover_shift(x[b], out[b], (2, 1), wrap_axis)
    in_bounds = [m for m in matches if abs(m[0]) <= 2 and abs(m[1]) <= 1]
    assert in_bounds, f'frame {b} is no shift within (2, 1) of its input'
    seen.add(in_bounds[0])
  assert len(seen) >= 8  # Of the 15 possible shifts, a batch of 64 draws many.


def test_gain_jitter_statistics():
  settings = augment.AugmentSettings(gain_jitter=0.2)
  x = jnp.ones((256, H, W))
  gains = np.asarray(augment.augment_batch(x, _key(4), settings, None))
  log_gain = np.log(gains)
  assert abs(log_gain.mean()) < 0.01  # Median-1 log-normal.
  assert abs(log_gain.std() - 0.2) < 0.01
  assert (gains > 0).all()
  # Per electrode and per frame, not one gain for all.
  assert np.std(log_gain[:, 0, 0]) > 0.15 and np.std(log_gain[0]) > 0.15


def test_electrode_dropout_rate_and_kept_values_untouched():
  settings = augment.AugmentSettings(electrode_dropout=0.25)
  x = _batch()
  out = np.asarray(augment.augment_batch(x, _key(5), settings, None))
  dropped = out == 0
  assert abs(dropped.mean() - 0.25) < 0.03
  np.testing.assert_array_equal(out[~dropped], np.asarray(x)[~dropped])


def test_vmap_over_stacked_seeds_matches_one_by_one():
  x = _batch()
  keys = jax.vmap(_key)(jnp.arange(3))
  stacked = jax.vmap(lambda k: augment.augment_batch(x, k, ALL, 1))(keys)
  for i in range(3):
    np.testing.assert_array_equal(np.asarray(stacked[i]),
                                  np.asarray(augment.augment_batch(x, keys[i], ALL, 1)))


def test_off_means_not_enabled_and_refused():
  off = augment.AugmentSettings()
  assert not off.enabled and ALL.enabled
  assert augment.AugmentSettings(max_shift=(0, 1)).enabled
  with pytest.raises(ValueError, match='skip the call'):
    augment.augment_batch(_batch(), _key(), off, None)
  assert hash(ALL) == hash(augment.AugmentSettings((2, 3), 0.2, 0.1))


@pytest.mark.parametrize('augment_keys,grid,wrap_axis,match', [
    ({'max_shift': (16, 0)}, (16, 8), None, r'train\.augment\.max_shift.*16 rows'),
    ({'max_shift': (0, 5)}, (16, 8), 1, r'train\.augment\.max_shift.*columns that wraps'),
    ({'max_shift': (-1, 0)}, None, None, r'train\.augment\.max_shift'),
    ({'gain_jitter': -0.1}, None, None, r'train\.augment\.gain_jitter'),
    ({'electrode_dropout': 1.0}, None, None, r'train\.augment\.electrode_dropout'),
])
def test_bad_settings_name_the_key(augment_keys, grid, wrap_axis, match):
  with pytest.raises(ValueError, match=match):
    augment.AugmentSettings(**augment_keys).check_grid(grid or (16, 8), wrap_axis)
