"""Zero-phase filter chains applied to whole trials, once, on the host.

A chain is configured as ``dataset.filters``: a tuple of spec strings applied
in order, e.g. ``('notch:60:50', 'bandpass:20:380:4')``.

* ``notch:FREQ[:Q]``: second-order IIR notch at FREQ Hz, quality Q (default 30).
* ``bandpass:LOW:HIGH[:ORDER]``: Butterworth band-pass (scipy order, default 4).
* ``highpass:CUT[:ORDER]``, ``lowpass:CUT[:ORDER]``: Butterworth (default order 4).
* ``demean``: subtracts each channel's mean over the trial.

Every IIR stage runs forward and backward (`scipy.signal.sosfiltfilt`), so the
output has no phase lag and the magnitude response is squared: frame labels
stay aligned with the signal. Filtering a whole trial at once needs the trial
continuous and longer than the filter's edge padding; both are checked.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Sequence

import numpy as np
from scipy import signal

from hdsemg_jax.data.trials import Trial

_CONFIG_NAME = 'dataset.filters'
_DEFAULT_ORDER = 4
_MAX_ORDER = 10  # Higher Butterworth orders are numerically fragile and never needed for sEMG.
_DEFAULT_NOTCH_Q = 30.0
_USAGE = ('expected notch:FREQ[:Q], bandpass:LOW:HIGH[:ORDER], highpass:CUT[:ORDER], '
          'lowpass:CUT[:ORDER] or demean')


def _bad(spec: str, why: str) -> ValueError:
  return ValueError(f'{_CONFIG_NAME}: bad filter spec {spec!r}: {why}')


@dataclasses.dataclass(frozen=True)
class Demean:
  """Removes each channel's mean over the trial (no padding, any length)."""
  spec: str = 'demean'

  def check(self, sampling_rate_hz: float) -> None:
    del sampling_rate_hz  # Valid at every rate.

  def min_frames(self, sampling_rate_hz: float) -> int:
    del sampling_rate_hz
    return 1

  def apply(self, x: np.ndarray, sampling_rate_hz: float) -> np.ndarray:
    del sampling_rate_hz
    return x - x.mean(axis=0, keepdims=True)


@dataclasses.dataclass(frozen=True)
class IirFilter:
  """A notch or Butterworth filter, applied zero-phase along the time axis."""
  spec: str
  kind: str  # 'notch', 'bandpass', 'highpass' or 'lowpass'.
  freqs_hz: tuple[float, ...]
  order: int = _DEFAULT_ORDER
  q: float = _DEFAULT_NOTCH_Q

  def check(self, sampling_rate_hz: float) -> None:
    """Raises ValueError, naming the spec, unless every frequency is below Nyquist."""
    nyquist = sampling_rate_hz / 2
    for f in self.freqs_hz:
      if f >= nyquist:
        raise _bad(self.spec, f'{f:g} Hz is not below the Nyquist frequency {nyquist:g} Hz '
                              f'(sampling rate {sampling_rate_hz:g} Hz).')

  def sos(self, sampling_rate_hz: float) -> np.ndarray:
    """Second-order sections of the filter at ``sampling_rate_hz``."""
    self.check(sampling_rate_hz)
    if self.kind == 'notch':
      b, a = signal.iirnotch(self.freqs_hz[0], self.q, fs=sampling_rate_hz)
      return signal.tf2sos(b, a)
    cut = self.freqs_hz if self.kind == 'bandpass' else self.freqs_hz[0]
    return signal.butter(self.order, cut, btype=self.kind, fs=sampling_rate_hz, output='sos')

  def min_frames(self, sampling_rate_hz: float) -> int:
    """Shortest trial `sosfiltfilt` accepts with its default edge padding."""
    sos = self.sos(sampling_rate_hz)
    # scipy's default padlen for sosfiltfilt; the input must be strictly longer.
    trailing_zeros = min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum())
    return 3 * (2 * len(sos) + 1 - int(trailing_zeros)) + 1

  def apply(self, x: np.ndarray, sampling_rate_hz: float) -> np.ndarray:
    return signal.sosfiltfilt(self.sos(sampling_rate_hz), x, axis=0)


Filter = Demean | IirFilter


def _number(spec: str, text: str, what: str) -> float:
  try:
    value = float(text)
  except ValueError:
    raise _bad(spec, f'{what} {text!r} is not a number; {_USAGE}.') from None
  if not math.isfinite(value) or value <= 0:
    raise _bad(spec, f'{what} must be a positive number, got {text!r}.')
  return value


def _order(spec: str, text: str) -> int:
  try:
    order = int(text)
  except ValueError:
    raise _bad(spec, f'order {text!r} is not a whole number.') from None
  if not 1 <= order <= _MAX_ORDER:
    raise _bad(spec, f'order must be 1..{_MAX_ORDER}, got {order}.')
  return order


def parse_filter(spec: str) -> Filter:
  """Parses one spec string, e.g. ``'bandpass:20:380:4'``.

  Raises:
    ValueError: naming ``dataset.filters`` and the spec when it is malformed.
  """
  if not isinstance(spec, str):
    raise ValueError(f'{_CONFIG_NAME}: each filter must be a spec string, got {spec!r}; '
                     f'{_USAGE}.')
  text = spec.strip()
  kind, *args = [part.strip() for part in text.split(':')]
  kind = kind.lower()
  if kind == 'demean':
    if args:
      raise _bad(spec, 'demean takes no arguments.')
    return Demean(spec=text)
  if kind == 'notch':
    if len(args) not in (1, 2):
      raise _bad(spec, 'expected notch:FREQ[:Q].')
    q = _number(spec, args[1], 'Q') if len(args) == 2 else _DEFAULT_NOTCH_Q
    return IirFilter(spec=text, kind=kind, freqs_hz=(_number(spec, args[0], 'frequency'),), q=q)
  if kind == 'bandpass':
    if len(args) not in (2, 3):
      raise _bad(spec, 'expected bandpass:LOW:HIGH[:ORDER].')
    low = _number(spec, args[0], 'low cut-off')
    high = _number(spec, args[1], 'high cut-off')
    if low >= high:
      raise _bad(spec, f'low cut-off {low:g} Hz must be below high cut-off {high:g} Hz.')
    order = _order(spec, args[2]) if len(args) == 3 else _DEFAULT_ORDER
    return IirFilter(spec=text, kind=kind, freqs_hz=(low, high), order=order)
  if kind in ('highpass', 'lowpass'):
    if len(args) not in (1, 2):
      raise _bad(spec, f'expected {kind}:CUT[:ORDER].')
    order = _order(spec, args[1]) if len(args) == 2 else _DEFAULT_ORDER
    return IirFilter(spec=text, kind=kind, freqs_hz=(_number(spec, args[0], 'cut-off'),),
                     order=order)
  raise _bad(spec, f'unknown filter {kind!r}; {_USAGE}.')


def _spec_list(specs: str | Iterable[str] | None) -> list[str]:
  if specs is None:
    return []
  if isinstance(specs, str):
    # A bare string (e.g. from a command-line override) is a comma-separated chain;
    # iterating it would silently yield one "spec" per character.
    return [s for s in (part.strip() for part in specs.split(',')) if s]
  return list(specs)


def parse_filter_chain(specs: str | Iterable[str] | None,
                       sampling_rate_hz: float | None = None) -> list[Filter]:
  """Parses ``dataset.filters`` into filter objects, in order.

  Args:
    specs: spec strings (a tuple or list; a single comma-separated string is
      accepted too). Empty or None means no filtering.
    sampling_rate_hz: when given, frequencies are also checked against Nyquist.

  Returns:
    One filter object per spec.

  Raises:
    ValueError: naming ``dataset.filters`` and the offending spec.
  """
  if sampling_rate_hz is not None and not (math.isfinite(sampling_rate_hz)
                                           and sampling_rate_hz > 0):
    raise ValueError(f'{_CONFIG_NAME}: sampling rate must be positive, got {sampling_rate_hz!r}.')
  chain = [parse_filter(spec) for spec in _spec_list(specs)]
  if sampling_rate_hz is not None:
    for f in chain:
      f.check(sampling_rate_hz)
  return chain


def filter_array(emg: np.ndarray, chain: Sequence[Filter], sampling_rate_hz: float) -> np.ndarray:
  """Runs ``chain`` over ``emg`` (time first) and returns float32 of the same shape."""
  # float64 keeps the narrow notch and low cut-offs stable; results go back to float32.
  x = np.asarray(emg, np.float64)
  for f in chain:
    x = f.apply(x, sampling_rate_hz)
  return x.astype(np.float32)


def apply_filters(trials: list[Trial], specs: str | Iterable[str] | None,
                  sampling_rate_hz: float) -> list[Trial]:
  """Filters each trial's ``emg`` along time, zero-phase; labels are left as they are.

  Args:
    trials: whole, continuous trials.
    specs: the ``dataset.filters`` chain (see the module docstring).
    sampling_rate_hz: the dataset's sampling rate.

  Returns:
    New Trial records with float32 ``emg``, or ``trials`` itself when the chain is empty.

  Raises:
    ValueError: a bad spec (naming ``dataset.filters``), or a trial too short for
      a filter's edge padding (naming the trial id).
  """
  chain = parse_filter_chain(specs, sampling_rate_hz)
  if not chain:
    return trials
  needed = [(f.min_frames(sampling_rate_hz), f.spec) for f in chain]
  filtered = []
  for trial in trials:
    frames = trial.emg.shape[0]
    for min_frames, spec in needed:
      if frames < min_frames:
        raise ValueError(
            f'{_CONFIG_NAME}: trial {trial.id} has {frames} frames, but {spec!r} needs at '
            f'least {min_frames} for zero-phase filtering (filtfilt edge padding); drop the '
            'filter or the trial.')
    filtered.append(dataclasses.replace(
        trial, emg=filter_array(trial.emg, chain, sampling_rate_hz)))
  return filtered
