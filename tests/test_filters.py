"""Tests of the zero-phase filter chain in hdsemg_jax.preprocessing.filters."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from hdsemg_jax.data.trials import Trial
from hdsemg_jax.preprocessing import filters

FS = 1000.0
EDGE = 1000  # Frames ignored at each end, where filter edge transients live.


def _trial(emg: np.ndarray, trial: int = 3) -> Trial:
  emg = np.asarray(emg, np.float32)
  if emg.ndim == 1:
    emg = emg[:, None, None]
  label = np.arange(emg.shape[0], dtype=np.int32) % 5
  return Trial(subject=1, session=2, part='train', trial=trial, emg=emg, label=label)


def _amplitude(x: np.ndarray, freq_hz: float) -> float:
  """Amplitude of the ``freq_hz`` sinusoid in ``x`` (a whole number of periods long)."""
  t = np.arange(len(x)) / FS
  return 2 * abs(np.mean(x * np.exp(-2j * np.pi * freq_hz * t)))


def test_notch_removes_60hz_and_keeps_120hz():
  t = np.arange(10_000) / FS
  x = np.sin(2 * np.pi * 60 * t) + 0.5 * np.sin(2 * np.pi * 120 * t + 0.3)
  [out] = filters.apply_filters([_trial(x)], ('notch:60:50',), FS)
  y = out.emg[EDGE:-EDGE, 0, 0].astype(np.float64)
  kept = x[EDGE:-EDGE]
  reduction_db = 20 * np.log10(_amplitude(kept, 60) / _amplitude(y, 60))
  assert reduction_db > 20
  assert _amplitude(y, 120) == pytest.approx(0.5, rel=0.01)


def test_filtering_is_zero_phase():
  rng = np.random.default_rng(0)
  # Band-limited noise well inside the pass band, so the filter should hand it back unchanged.
  narrow = signal.butter(4, (40, 150), btype='bandpass', fs=FS, output='sos')
  x = signal.sosfiltfilt(narrow, rng.normal(size=(8_000, 2, 3)), axis=0)
  [out] = filters.apply_filters([_trial(x)], ('notch:60:50', 'bandpass:20:380:4'), FS)

  def peak_lag(a: np.ndarray, b: np.ndarray) -> int:
    xcorr = signal.correlate(a, b, mode='full')
    return int(np.argmax(xcorr)) - (len(b) - 1)

  a, b = x[EDGE:-EDGE, 1, 2], out.emg[EDGE:-EDGE, 1, 2].astype(np.float64)
  assert peak_lag(b, a) == 0
  # The notch takes a sliver out of the band; the rest must come back in phase.
  assert np.corrcoef(a, b)[0, 1] > 0.98
  # A filter that reshapes the band keeps its output in phase too, where running it
  # causally (which the test can see) delays it by several frames.
  [shaped] = filters.apply_filters([_trial(x)], ('bandpass:60:100:4',), FS)
  assert peak_lag(shaped.emg[EDGE:-EDGE, 1, 2].astype(np.float64), a) == 0
  causal = signal.sosfilt(filters.parse_filter('bandpass:60:100:4').sos(FS), x[:, 1, 2])
  assert peak_lag(causal[EDGE:-EDGE], a) >= 3


def test_bandpass_removes_dc_and_demean_centres():
  t = np.arange(5_000) / FS
  x = 5.0 + 0.1 * np.sin(2 * np.pi * 100 * t)
  [bp] = filters.apply_filters([_trial(x)], ['bandpass:20:380'], FS)
  assert abs(bp.emg[EDGE:-EDGE].mean()) < 1e-3
  assert _amplitude(bp.emg[EDGE:-EDGE, 0, 0].astype(np.float64), 100) == pytest.approx(0.1, rel=0.01)
  [dm] = filters.apply_filters([_trial(x)], ['demean'], FS)
  assert abs(dm.emg.mean()) < 1e-5


def test_returns_new_trials_with_labels_untouched():
  rng = np.random.default_rng(1)
  trials = [_trial(rng.normal(size=(500, 4, 2)), trial=k) for k in (1, 2)]
  out = filters.apply_filters(trials, ('highpass:20:2', 'lowpass:300'), FS)
  assert len(out) == 2
  for before, after in zip(trials, out):
    assert after is not before
    assert after.emg.dtype == np.float32 and after.emg.shape == before.emg.shape
    assert after.label is before.label
    assert (after.id, after.repetition) == (before.id, before.repetition)
    assert not np.allclose(after.emg, before.emg)


@pytest.mark.parametrize('specs', [(), [], None, ''])
def test_empty_chain_is_identity(specs):
  trials = [_trial(np.ones(50))]
  assert filters.apply_filters(trials, specs, FS) is trials


def test_parse_chain():
  chain = filters.parse_filter_chain(('notch:60:50', 'bandpass:20:380:4', 'demean'), FS)
  assert [type(f) for f in chain] == [filters.IirFilter, filters.IirFilter, filters.Demean]
  assert chain[0].q == 50 and chain[1].freqs_hz == (20, 380) and chain[1].order == 4
  # A single comma-separated string, as a command-line override would give it.
  assert [f.spec for f in filters.parse_filter_chain('notch:60, lowpass:200:2')] == [
      'notch:60', 'lowpass:200:2']


@pytest.mark.parametrize('spec', [
    'notch', 'notch:abc', 'notch:60:0', 'bandpass:380:20', 'bandpass:20', 'bandpass:20:600',
    'lowpass:500', 'highpass:20:0', 'highpass:20:2.5', 'demean:1', 'wavelet:3', 'notch:nan',
])
def test_bad_specs_name_config_and_spec(spec):
  with pytest.raises(ValueError, match='dataset.filters') as error:
    filters.apply_filters([_trial(np.zeros(100))], (spec,), FS)
  assert spec in str(error.value)


def test_non_string_spec_names_config():
  with pytest.raises(ValueError, match='dataset.filters'):
    filters.parse_filter_chain((60,))


def test_nyquist_checked_only_with_a_rate():
  assert filters.parse_filter_chain(('lowpass:700',))  # Syntax alone is fine.
  with pytest.raises(ValueError, match=r'lowpass:700.*Nyquist'):
    filters.parse_filter_chain(('lowpass:700',), FS)


def test_too_short_trial_names_trial():
  short = _trial(np.zeros(20), trial=7)
  with pytest.raises(ValueError, match='trial 1-2-train-7 has 20 frames'):
    filters.apply_filters([short], ('bandpass:20:380:4',), FS)
  # Just long enough for scipy's padding: no error.
  need = filters.parse_filter('bandpass:20:380:4').min_frames(FS)
  filters.apply_filters([_trial(np.zeros(need))], ('bandpass:20:380:4',), FS)
