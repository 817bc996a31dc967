"""Filter chains applied to whole trials (zero-phase or causal), or to a live stream.

A chain is configured as ``dataset.filters``: a tuple of spec strings applied
in order, e.g. ``('notch:60:50', 'bandpass:20:380:4')``; ``dataset.filter_mode``
chooses how it runs over recorded trials (`FILTER_MODES`).

* ``notch:FREQ[:Q]``: second-order IIR notch at FREQ Hz, quality Q (default 30).
* ``bandpass:LOW:HIGH[:ORDER]``: Butterworth band-pass (scipy order, default 4).
* ``highpass:CUT[:ORDER]``, ``lowpass:CUT[:ORDER]``: Butterworth (default order 4).
* ``demean``: subtracts each channel's mean over the trial (zero-phase); causally,
  the running mean of the samples so far (see below).

``zero_phase`` (the default): every IIR stage runs forward and backward
(`scipy.signal.sosfiltfilt`), so the output has no phase lag and the magnitude
response is squared: frame labels stay aligned with the signal. Filtering a
whole trial at once needs the trial continuous and longer than the filter's
edge padding; both are checked. This needs the whole trial, so it cannot run
on a live stream.

``causal``: what a live decoder can do (`CausalChain`, used by
`hdsemg_jax.streaming.Decoder`): every IIR stage runs forward only
(`scipy.signal.sosfilt`) with its state carried from one chunk of samples to
the next, so the output at a sample depends on that sample and earlier ones
only, and feeding a signal in chunks of any size gives exactly the output of
feeding it whole. Each stage starts in the steady state of a constant input
equal to the first sample (`scipy.signal.sosfilt_zi` times the first sample),
so a DC offset does not ring through a high-pass or band-pass at the start.
The magnitude response is the filter's own (not squared) and the output lags
by the filter's group delay. ``demean`` has no causal form (the trial mean is
known only at its end); its causal counterpart subtracts the running mean of
each channel over the samples so far, the first sample included (so the first
output sample is 0). Training with ``dataset.filter_mode=causal`` shows the
model frames conditioned exactly as the streaming decoder conditions them.

Both modes compute in float64 and return float32.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from scipy import signal

from hdsemg_jax.data.trials import Trial

_CONFIG_NAME = 'dataset.filters'
_MODE_NAME = 'dataset.filter_mode'
FILTER_MODES = ('zero_phase', 'causal')
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

  def causal_stage(self, sampling_rate_hz: float) -> '_RunningDemean':
    """The causal counterpart: subtract the running mean of the samples so far."""
    del sampling_rate_hz
    return _RunningDemean()


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

  def causal_stage(self, sampling_rate_hz: float) -> '_SosStage':
    """The causal form: the same sections run forward only, with carried state."""
    return _SosStage(self.sos(sampling_rate_hz))


Filter = Demean | IirFilter


class _SosStage:
  """One IIR filter run causally; its state is `sosfilt`'s ``zi`` (sections, 2, *channels)."""

  def __init__(self, sos: np.ndarray):
    self.sos = sos
    self._unit_zi = signal.sosfilt_zi(sos)  # Steady state for a unit step, per section.

  def initial_state(self, first: np.ndarray) -> np.ndarray:
    # The state the filter would be in had it seen ``first`` forever: no start-up ringing.
    return self._unit_zi.reshape(self._unit_zi.shape + (1,) * first.ndim) * first

  def run(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return signal.sosfilt(self.sos, x, axis=0, zi=state)


class _RunningDemean:
  """``demean``'s causal counterpart; the state is (samples seen, their per-channel sum)."""

  def initial_state(self, first: np.ndarray) -> tuple[int, np.ndarray]:
    return 0, np.zeros_like(first)

  def run(self, x: np.ndarray,
          state: tuple[int, np.ndarray]) -> tuple[np.ndarray, tuple[int, np.ndarray]]:
    seen, total = state
    # Accumulating from the carried sum (rather than adding it to the chunk's own cumsum)
    # performs the same additions in the same order as one pass over the whole signal,
    # so chunked and whole runs agree bit for bit.
    sums = np.cumsum(np.concatenate([total[None], x]), axis=0)[1:]
    counts = (seen + np.arange(1, len(x) + 1, dtype=np.float64)).reshape(
        (-1,) + (1,) * (x.ndim - 1))
    return x - sums / counts, (seen + len(x), sums[-1].copy())


def _merge_iir(stages: list) -> list:
  """Consecutive IIR stages as one cascade of sections: one `sosfilt` call per chunk.

  A cascade computes what its stages compute in turn (each section reads the one
  before it, sample by sample), and `sosfilt`'s cost per call barely grows with
  the sections, so a live decoder pays it once. Its steady-state start is that of
  the stages in turn too: each section starts where a constant first sample,
  through the sections before it, would have left it.
  """
  merged = []
  for stage in stages:
    if merged and isinstance(stage, _SosStage) and isinstance(merged[-1], _SosStage):
      merged[-1] = _SosStage(np.concatenate([merged[-1].sos, stage.sos]))
    else:
      merged.append(stage)
  return merged


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


def _check_rate(sampling_rate_hz: float) -> None:
  if not (math.isfinite(sampling_rate_hz) and sampling_rate_hz > 0):
    raise ValueError(f'{_CONFIG_NAME}: sampling rate must be positive, got {sampling_rate_hz!r}.')


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
  if sampling_rate_hz is not None:
    _check_rate(sampling_rate_hz)
  chain = [parse_filter(spec) for spec in _spec_list(specs)]
  if sampling_rate_hz is not None:
    for f in chain:
      f.check(sampling_rate_hz)
  return chain


def check_filter_mode(mode: str) -> str:
  """``mode`` if it is one of `FILTER_MODES`; else ValueError naming ``dataset.filter_mode``."""
  if mode not in FILTER_MODES:
    raise ValueError(f'{_MODE_NAME}={mode!r} is not known (known: {", ".join(FILTER_MODES)}).')
  return mode


CausalState = tuple  # One entry per stage; opaque to callers.


class CausalChain:
  """The causal form of a filter chain, its state carried from call to call.

    chain = CausalChain(('notch:60:50', 'bandpass:20:380:4'), 1000.0)
    y1 = chain(x[:7])     # x: (T, *channels), time first
    y2 = chain(x[7:])     # == the causal output of x fed whole, bit for bit
    chain.reset()         # back to rest: the next sample is a new signal's first

  ``run(x, state)`` is the pure form: it returns the output and the next state
  and leaves the object untouched, so a caller can discard a chunk's effect
  (the streaming decoder does, for a chunk it rejects after filtering).
  The state is None before the first sample.
  """

  def __init__(self, specs: str | Iterable[str | Filter] | None, sampling_rate_hz: float):
    """``specs``: the ``dataset.filters`` chain (strings or parsed filters)."""
    items = _spec_list(specs) if isinstance(specs, str) or specs is None else list(specs)
    # Parsed filters (from `parse_filter_chain`) are taken as they are; strings are parsed.
    self.chain = [f if isinstance(f, (Demean, IirFilter)) else parse_filter(f) for f in items]
    _check_rate(sampling_rate_hz)
    for f in self.chain:
      f.check(sampling_rate_hz)
    self.sampling_rate_hz = float(sampling_rate_hz)
    self._stages = _merge_iir([f.causal_stage(self.sampling_rate_hz) for f in self.chain])
    self.state: CausalState | None = None

  @property
  def specs(self) -> tuple[str, ...]:
    return tuple(f.spec for f in self.chain)

  def run(self, x: np.ndarray,
          state: CausalState | None) -> tuple[np.ndarray, CausalState | None]:
    """Filters ``x`` (time first) from ``state``; returns float64 output and the next state."""
    x = np.asarray(x, np.float64)
    if len(x) == 0 or not self._stages:
      return x, state
    if state is None:
      state = tuple(None for _ in self._stages)
    next_state = []
    for stage, stage_state in zip(self._stages, state):
      if stage_state is None:
        stage_state = stage.initial_state(x[0])
      x, stage_state = stage.run(x, stage_state)
      next_state.append(stage_state)
    return x, tuple(next_state)

  def __call__(self, x: np.ndarray) -> np.ndarray:
    """Filters the next samples ``x`` (time first) and returns float32 of the same shape."""
    y, self.state = self.run(x, self.state)
    return y.astype(np.float32)

  def reset(self) -> None:
    """Forgets the past: the next sample starts a new signal."""
    self.state = None


def filter_array(emg: np.ndarray, chain: Sequence[Filter], sampling_rate_hz: float,
                 mode: str = 'zero_phase') -> np.ndarray:
  """Runs ``chain`` over ``emg`` (time first) and returns float32 of the same shape.

  ``mode='causal'`` runs the chain's causal form from rest over the whole array
  (`CausalChain`); ``'zero_phase'`` the forward-backward form.
  """
  if check_filter_mode(mode) == 'causal':
    return CausalChain(list(chain), sampling_rate_hz)(emg)
  # float64 keeps the narrow notch and low cut-offs stable; results go back to float32.
  x = np.asarray(emg, np.float64)
  for f in chain:
    x = f.apply(x, sampling_rate_hz)
  return x.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Conditioning:
  """How a model's frames are conditioned: a filter chain, its mode, at a sampling rate.

  The run builds it once from ``dataset.filters``, ``dataset.filter_mode`` and the
  dataset's sampling rate (the chain is parsed and checked against Nyquist here);
  training data, the saved model, the export JSON and the streaming decoder all
  carry this one object (`as_dict` / `from_dict`), so nothing re-reads the config.

  Attributes:
    filters: the chain's spec strings, in order (empty: no filtering).
    mode: one of `FILTER_MODES`: how recorded trials are filtered.
    sampling_rate_hz: the signal's sampling rate (may be None only without filters).
  """
  filters: tuple[str, ...]
  mode: str
  sampling_rate_hz: float | None

  def __post_init__(self):
    object.__setattr__(self, 'filters', tuple(_spec_list(self.filters)))
    check_filter_mode(self.mode)
    if self.sampling_rate_hz is not None:
      object.__setattr__(self, 'sampling_rate_hz', float(self.sampling_rate_hz))
    elif self.filters:
      raise ValueError(f'{_CONFIG_NAME}={self.filters!r} needs the sampling rate.')
    # Parsed once; not a field, so equality and the dict form are the specs.
    object.__setattr__(self, '_chain', tuple(parse_filter_chain(self.filters,
                                                                self.sampling_rate_hz)))

  @property
  def chain(self) -> tuple[Filter, ...]:
    """The parsed filters, in order."""
    return self._chain

  def apply(self, trials: list[Trial]) -> list[Trial]:
    """Each trial's ``emg`` filtered along time in ``mode``; see `apply_filters`."""
    if not self.chain:
      return trials
    rate = self.sampling_rate_hz
    if self.mode == 'causal':
      return [dataclasses.replace(trial, emg=filter_array(trial.emg, self.chain, rate, 'causal'))
              for trial in trials]
    needed = [(f.min_frames(rate), f.spec) for f in self.chain]
    filtered = []
    for trial in trials:
      frames = trial.emg.shape[0]
      for min_frames, spec in needed:
        if frames < min_frames:
          raise ValueError(
              f'{_CONFIG_NAME}: trial {trial.id} has {frames} frames, but {spec!r} needs at '
              f'least {min_frames} for zero-phase filtering (filtfilt edge padding); drop the '
              'filter or the trial.')
      filtered.append(dataclasses.replace(trial, emg=filter_array(trial.emg, self.chain, rate)))
    return filtered

  def causal_chain(self) -> CausalChain:
    """A fresh `CausalChain` of the filters (what a live decoder runs)."""
    return CausalChain(list(self.chain), self.sampling_rate_hz or 1.0)

  def as_dict(self) -> dict[str, Any]:
    return {'filters': list(self.filters), 'mode': self.mode,
            'sampling_rate_hz': self.sampling_rate_hz}

  @classmethod
  def from_dict(cls, value: Mapping[str, Any]) -> Conditioning:
    return cls(filters=tuple(value.get('filters') or ()), mode=value['mode'],
               sampling_rate_hz=value.get('sampling_rate_hz'))


def apply_filters(trials: list[Trial], specs: str | Iterable[str] | None,
                  sampling_rate_hz: float, mode: str = 'zero_phase') -> list[Trial]:
  """Filters each trial's ``emg`` along time; labels are left as they are.

  Args:
    trials: whole, continuous trials.
    specs: the ``dataset.filters`` chain (see the module docstring).
    sampling_rate_hz: the dataset's sampling rate.
    mode: ``dataset.filter_mode``: ``'zero_phase'`` (forward-backward over the
      whole trial) or ``'causal'`` (forward only, each trial from rest: what the
      streaming decoder computes when it is fed that trial).

  Returns:
    New Trial records with float32 ``emg``, or ``trials`` itself when the chain is empty.

  Raises:
    ValueError: a bad spec (naming ``dataset.filters``), an unknown mode (naming
      ``dataset.filter_mode``), or, zero-phase only, a trial too short for a
      filter's edge padding (naming the trial id).
  """
  return Conditioning(tuple(_spec_list(specs)), mode, sampling_rate_hz).apply(trials)
