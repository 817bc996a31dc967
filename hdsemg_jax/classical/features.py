"""Windowed per-channel time-domain features of HD-sEMG, vectorised with cumulative sums.

A window is the frames ``[start, stop)`` of one trial (``n = stop - start``
frames); every electrode of the grid is a channel. Features (per channel):

* ``mav``: mean absolute value, ``sum |x_i| / n``;
* ``rms``: root mean square, ``sqrt(sum x_i^2 / n)``;
* ``log_rms``: ``log(rms + LOG_RMS_FLOOR)``;
* ``wl``: waveform length, ``sum |x_i - x_{i-1}| / n`` over the ``n - 1``
  consecutive pairs inside the window;
* ``zc``: zero crossings, the pairs inside the window with ``x_{i-1} x_i < 0``
  and ``|x_i - x_{i-1}| >= zc_threshold``, divided by ``n``;
* ``ssc``: slope sign changes, the frames ``i`` with both neighbours inside the
  window and ``(x_i - x_{i-1}) (x_i - x_{i+1}) >= ssc_threshold^2`` (strictly
  positive when the threshold is 0), divided by ``n``.

mav, wl, zc and ssc are Hudgins et al. (1993)'s set. Sums are divided by the
window's frame count, so windows of different lengths (a segment shorter than
the decision window is one shorter window) give comparable rates; wl, zc and
ssc are 0 for a one-frame window.

Units: the signal is divided by ``scale`` first (`signal_scale`: the RMS of the
training signal over all channels and usable frames), so mav, rms and wl are in
units of the training RMS and both thresholds are fractions of it (e.g.
``zc_threshold=0.02``: a crossing counts when the step is at least 2% of the
training RMS). One scale for all channels keeps their relative amplitudes.

Every window's features come from running sums over the trial (float64), so all
windows of a trial cost two subtractions per feature and channel, whatever
their length.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hdsemg_jax.data.trials import Trial

FEATURES = ('mav', 'rms', 'log_rms', 'wl', 'zc', 'ssc')
DEFAULT_FEATURES = ('mav', 'wl', 'zc', 'ssc', 'log_rms')
# log_rms's floor in units of the training RMS: a silent channel reads log(1e-3) = -6.9, not -inf.
LOG_RMS_FLOOR = 1e-3

# Arithmetic operations per channel of one direct (non-incremental) evaluation of a feature
# over a window of n frames: (per frame, per consecutive pair, per inner frame, once).
# mav: abs + add per frame, one division. rms: multiply + add per frame, division and sqrt;
# log_rms: the same plus the floor's add and the log. wl: subtract, abs, add per pair, one
# division. zc: multiply, compare, subtract, abs, compare, and, add per pair, one division.
# ssc: two subtractions, multiply, compare, add per inner frame, one division.
_OPS = {'mav': (2, 0, 0, 1), 'rms': (2, 0, 0, 2), 'log_rms': (2, 0, 0, 4), 'wl': (0, 3, 0, 1),
        'zc': (0, 7, 0, 1), 'ssc': (0, 0, 5, 1)}


def check_features(names: Sequence[str]) -> tuple[str, ...]:
  """``names`` as a tuple; an unknown or repeated name, or none, is an error naming the key."""
  names = tuple(str(n) for n in names)
  unknown = [n for n in names if n not in FEATURES]
  if unknown or not names or len(set(names)) != len(names):
    raise ValueError(f'model.td_features={names!r}: expected distinct names among '
                     f'{", ".join(FEATURES)}' + (f' ({", ".join(unknown)} unknown)' if unknown
                                                   else '') + '.')
  return names


def signal_scale(trials: Sequence[Trial]) -> float:
  """RMS of the usable frames of ``trials`` over all channels (1.0 if that is 0 or none)."""
  total, count = 0.0, 0
  for t in trials:
    x = t.emg[t.label >= 0].astype(np.float64)
    total += float(np.sum(x * x))
    count += x.size
  rms = float(np.sqrt(total / count)) if count else 0.0
  return rms if rms > 0 and np.isfinite(rms) else 1.0


def _running(values: np.ndarray) -> np.ndarray:
  """Running sums along the frames with a leading zero: ``out[k] = sum(values[:k])``."""
  out = np.zeros((values.shape[0] + 1, *values.shape[1:]), np.float64)
  np.cumsum(values, axis=0, out=out[1:])
  return out


def window_features(emg: np.ndarray, usable: np.ndarray, starts: np.ndarray, stops: np.ndarray,
                    names: Sequence[str] = DEFAULT_FEATURES, *, zc_threshold: float = 0.0,
                    ssc_threshold: float = 0.0, scale: float = 1.0) -> np.ndarray:
  """Features of the windows ``[starts[k], stops[k])`` of one trial: (windows, features x channels).

  ``emg`` is the trial's (T, H, W) signal and ``usable`` its (T,) mask of usable
  frames: unusable frames are zeroed first (they may hold anything, NaN
  included, and windows never contain them, but running sums pass through them).
  Columns are feature-major: feature ``f`` of channel ``c`` is column ``f * C + c``
  (channels in row-major grid order).
  """
  names = check_features(names)
  starts, stops = np.asarray(starts, np.int64), np.asarray(stops, np.int64)
  if starts.shape != stops.shape or np.any(stops <= starts) or np.any(starts < 0) or (
      stops.size and stops.max() > len(emg)):
    raise ValueError('windows must be non-empty [start, stop) ranges inside the trial.')
  x = np.where(np.asarray(usable, bool)[:, None], emg.reshape(len(emg), -1), 0).astype(np.float64)
  x /= scale
  n = (stops - starts).astype(np.float64)[:, None]
  out = []
  cache: dict[str, np.ndarray] = {}

  def window_sum(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    # Sum of values[lo:hi] per window (empty when hi <= lo).
    s = _running(values)
    return s[np.maximum(hi, lo)] - s[lo]

  def mean_square() -> np.ndarray:
    if 'ms' not in cache:
      cache['ms'] = np.maximum(window_sum(x * x, starts, stops) / n, 0.0)  # Round-off below 0.
    return cache['ms']

  # Pair i is (x[i-1], x[i]) for i >= 1, stored at index i; a window holds pairs start+1..stop-1.
  step = np.diff(x, axis=0, prepend=x[:1])
  for name in names:
    if name == 'mav':
      value = window_sum(np.abs(x), starts, stops) / n
    elif name == 'rms':
      value = np.sqrt(mean_square())
    elif name == 'log_rms':
      value = np.log(np.sqrt(mean_square()) + LOG_RMS_FLOOR)
    elif name == 'wl':
      value = window_sum(np.abs(step), starts + 1, stops) / n
    elif name == 'zc':
      crossing = np.zeros_like(x)
      crossing[1:] = (x[:-1] * x[1:] < 0) & (np.abs(step[1:]) >= zc_threshold)
      value = window_sum(crossing, starts + 1, stops) / n
    else:  # ssc: inner frame i (both neighbours in the window) stored at index i.
      change = np.zeros_like(x)
      product = (x[1:-1] - x[:-2]) * (x[1:-1] - x[2:])
      change[1:-1] = (product > 0) & (product >= float(ssc_threshold) ** 2)
      value = window_sum(change, starts + 1, stops - 1) / n
    out.append(value)
  return np.concatenate(out, axis=1).astype(np.float32)


def flops_per_window(names: Sequence[str], num_channels: int, window: int) -> int:
  """Arithmetic operations of one direct evaluation of ``names`` over ``window`` frames.

  Counts what computing the features of one isolated window costs (see ``_OPS``),
  without the running sums that make every further window of a trial cheaper.
  """
  names = check_features(names)
  n = int(window)
  per_channel = sum(a * n + b * max(n - 1, 0) + c * max(n - 2, 0) + d
                    for a, b, c, d in (_OPS[name] for name in names))
  return int(per_channel * num_channels)
