"""Windowed time-domain features against values computed by hand."""

import math

import numpy as np
import pytest

from hdsemg_jax.classical import features
from hdsemg_jax.data.trials import Trial

ALL = ('mav', 'rms', 'log_rms', 'wl', 'zc', 'ssc')
# Channel 0 carries the signal; channel 1 is silent. Frame 6 is unusable and holds NaN.
SIGNAL = [1.0, -2.0, 3.0, 3.0, -1.0, 0.5, math.nan, 2.0]
USABLE = np.array([True] * 6 + [False, True])


def _emg() -> np.ndarray:
  emg = np.zeros((len(SIGNAL), 1, 2), np.float32)
  emg[:, 0, 0] = SIGNAL
  emg[6, 0, 1] = math.nan
  return emg


def _features(start, stop, names=ALL, **kw) -> dict[str, np.ndarray]:
  out = features.window_features(_emg(), USABLE, np.array([start]), np.array([stop]), names, **kw)
  assert out.shape == (1, 2 * len(names)) and out.dtype == np.float32
  # Feature-major columns: feature f of channel c is column 2 f + c.
  return {name: out[0, 2 * i:2 * i + 2] for i, name in enumerate(names)}


def test_every_feature_of_a_four_frame_window():
  f = _features(0, 4)  # x = 1, -2, 3, 3
  np.testing.assert_allclose(f['mav'], [9 / 4, 0], rtol=1e-6)
  np.testing.assert_allclose(f['rms'], [math.sqrt(23 / 4), 0], rtol=1e-6)
  np.testing.assert_allclose(f['log_rms'], [math.log(math.sqrt(23 / 4) + 1e-3), math.log(1e-3)],
                             rtol=1e-6)
  np.testing.assert_allclose(f['wl'], [(3 + 5 + 0) / 4, 0], rtol=1e-6)  # |-3|, |5|, |0|.
  np.testing.assert_allclose(f['zc'], [2 / 4, 0])  # 1 -> -2 and -2 -> 3 cross; 3 -> 3 does not.
  # Inner frames: -2 is a peak ((-3)(-5) = 15 > 0); the first 3 is flat on one side (product 0).
  np.testing.assert_allclose(f['ssc'], [1 / 4, 0])


def test_a_five_frame_window_and_a_one_frame_window():
  f = _features(1, 6)  # x = -2, 3, 3, -1, 0.5
  np.testing.assert_allclose(f['mav'][0], 9.5 / 5, rtol=1e-6)
  np.testing.assert_allclose(f['wl'][0], (5 + 0 + 4 + 1.5) / 5, rtol=1e-6)
  np.testing.assert_allclose(f['zc'][0], 3 / 5)
  np.testing.assert_allclose(f['ssc'][0], 1 / 5)  # Only -1: (-4)(-1.5) = 6.
  one = _features(2, 3)
  np.testing.assert_allclose([one[n][0] for n in ('mav', 'rms', 'wl', 'zc', 'ssc')],
                             [3, 3, 0, 0, 0])


def test_thresholds_drop_small_steps_and_slopes():
  # Steps of the crossings are 3 and 5: a threshold of 4 keeps one.
  assert _features(0, 4, zc_threshold=4.0)['zc'][0] == pytest.approx(1 / 4)
  assert _features(0, 4, zc_threshold=5.0)['zc'][0] == pytest.approx(1 / 4)  # >= threshold.
  assert _features(0, 4, zc_threshold=5.1)['zc'][0] == 0
  # The peak's product is 15: kept for a threshold of 3 (9), dropped for 4 (16).
  assert _features(0, 4, ssc_threshold=3.0)['ssc'][0] == pytest.approx(1 / 4)
  assert _features(0, 4, ssc_threshold=4.0)['ssc'][0] == 0


def test_scale_makes_amplitudes_and_thresholds_relative():
  f = _features(0, 4, scale=2.0, zc_threshold=2.0)  # Steps 1.5 and 2.5 in units of 2.
  np.testing.assert_allclose(f['mav'][0], 9 / 8, rtol=1e-6)
  np.testing.assert_allclose(f['wl'][0], 1.0, rtol=1e-6)
  assert f['zc'][0] == pytest.approx(1 / 4)


def test_unusable_frames_do_not_reach_later_windows():
  # Running sums pass through frame 6 (NaN); the window after it is still exact.
  f = _features(7, 8)
  np.testing.assert_allclose([f['mav'][0], f['rms'][0]], [2, 2])
  assert np.all(np.isfinite(np.concatenate(list(f.values()))))


def test_many_windows_at_once_equal_one_at_a_time():
  starts, stops = np.array([0, 1, 2, 7]), np.array([4, 6, 3, 8])
  batch = features.window_features(_emg(), USABLE, starts, stops, ALL, zc_threshold=0.5)
  for k in range(len(starts)):
    alone = features.window_features(_emg(), USABLE, starts[k:k + 1], stops[k:k + 1], ALL,
                                     zc_threshold=0.5)
    np.testing.assert_allclose(batch[k], alone[0])


def test_feature_names_and_windows_are_checked():
  with pytest.raises(ValueError, match='model.td_features.*iemg unknown'):
    features.check_features(('mav', 'iemg'))
  with pytest.raises(ValueError, match='model.td_features'):
    features.check_features(('mav', 'mav'))
  with pytest.raises(ValueError, match='model.td_features'):
    features.check_features(())
  with pytest.raises(ValueError, match='non-empty'):
    features.window_features(_emg(), USABLE, np.array([3]), np.array([3]))


def test_signal_scale_is_the_rms_of_usable_frames():
  emg = np.zeros((4, 1, 2), np.float32)
  emg[:2] = [[[3.0, 4.0]]]
  emg[3] = 100.0  # Unusable: not counted.
  trial = Trial(1, 1, 'a', 1, emg=emg, label=np.array([0, 0, 1, -1], np.int32))
  # Usable values: 3, 4, 3, 4, 0, 0: mean square 50 / 6.
  assert features.signal_scale([trial]) == pytest.approx(math.sqrt(50 / 6))
  silent = Trial(1, 1, 'a', 2, emg=np.zeros((2, 1, 1), np.float32), label=np.zeros(2, np.int32))
  assert features.signal_scale([silent]) == 1.0


def test_flops_of_one_window_by_hand():
  # mav: abs + add per frame and a division: 2 * 4 + 1 = 9 per channel.
  assert features.flops_per_window(('mav',), 2, 4) == 18
  # zc: 7 per pair (3 pairs) + 1; ssc: 5 per inner frame (2) + 1.
  assert features.flops_per_window(('zc', 'ssc'), 1, 4) == 22 + 11
  assert features.flops_per_window(('wl', 'ssc'), 3, 1) == 3 * (1 + 1)
