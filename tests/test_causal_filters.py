"""Tests of the causal filter forms (dataset.filter_mode=causal, streaming state)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from hdsemg_jax.data.trials import Trial
from hdsemg_jax.preprocessing import filters

FS = 1000.0
# One chain of every kind, and a mixed chain.
CHAINS = [('notch:60:50',), ('bandpass:20:380:4',), ('highpass:20:2',), ('lowpass:300',),
          ('demean',), ('notch:50', 'bandpass:20:380:4', 'demean')]


def _signal(frames: int = 3000, seed: int = 0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  # A DC offset per channel plus noise: what start-up handling and demean must deal with.
  offset = rng.normal(scale=20, size=(1, 4, 3))
  return (offset + rng.normal(scale=5, size=(frames, 4, 3))).astype(np.float32)


def _trial(emg: np.ndarray) -> Trial:
  return Trial(subject=1, session=1, part='test', trial=1, emg=emg,
               label=np.zeros(len(emg), np.int32))


@pytest.mark.parametrize('specs', CHAINS, ids=lambda c: '+'.join(c))
@pytest.mark.parametrize('chunk', [1, 7, 1000])
def test_chunked_equals_whole(specs, chunk):
  x = _signal()
  whole = filters.apply_filters([_trial(x)], specs, FS, mode='causal')[0].emg
  chain = filters.CausalChain(specs, FS)
  out = np.concatenate([chain(x[i:i + chunk]) for i in range(0, len(x), chunk)])
  assert out.dtype == np.float32
  np.testing.assert_array_equal(out, whole)


@pytest.mark.parametrize('specs', CHAINS[:4], ids=lambda c: '+'.join(c))
def test_iir_is_sosfilt_from_the_first_samples_steady_state(specs):
  x = _signal().astype(np.float64)
  [f] = filters.parse_filter_chain(specs, FS)
  sos = f.sos(FS)
  zi = signal.sosfilt_zi(sos)[:, :, None, None] * x[0]
  expected, _ = signal.sosfilt(sos, x, axis=0, zi=zi)
  got = filters.apply_filters([_trial(x.astype(np.float32))], specs, FS, mode='causal')[0].emg
  np.testing.assert_allclose(got, expected.astype(np.float32), rtol=1e-6, atol=1e-5)


def test_causal_demean_subtracts_the_running_mean():
  x = _signal(500).astype(np.float64)
  got = filters.apply_filters([_trial(x.astype(np.float32))], ('demean',), FS,
                              mode='causal')[0].emg
  running = np.cumsum(x, axis=0) / np.arange(1, 501)[:, None, None]
  np.testing.assert_allclose(got, x - running, atol=1e-4)
  assert np.all(got[0] == 0)


def test_output_depends_on_the_past_only():
  x = _signal(2000)
  changed = x.copy()
  changed[1200:] += 100.0
  specs = CHAINS[-1]
  a = filters.apply_filters([_trial(x)], specs, FS, mode='causal')[0].emg
  b = filters.apply_filters([_trial(changed)], specs, FS, mode='causal')[0].emg
  np.testing.assert_array_equal(a[:1200], b[:1200])
  assert not np.allclose(a[1200:], b[1200:])


def test_constant_offset_does_not_ring_through_a_highpass():
  x = np.full((400, 2, 2), 37.0, np.float32)
  out = filters.apply_filters([_trial(x)], ('highpass:20:4',), FS, mode='causal')[0].emg
  assert np.abs(out).max() < 1e-3


def test_zero_phase_mode_is_the_default_and_forward_backward():
  x = _signal()
  specs = ('notch:50', 'bandpass:20:380:4', 'demean')
  default = filters.apply_filters([_trial(x)], specs, FS)[0].emg
  explicit = filters.apply_filters([_trial(x)], specs, FS, mode='zero_phase')[0].emg
  # The chain as written before causal filtering existed, spelt out with scipy.
  ref = x.astype(np.float64)
  for f in filters.parse_filter_chain(specs[:2], FS):
    ref = signal.sosfiltfilt(f.sos(FS), ref, axis=0)
  ref = (ref - ref.mean(axis=0, keepdims=True)).astype(np.float32)
  np.testing.assert_array_equal(default, ref)
  np.testing.assert_array_equal(explicit, ref)


def test_run_is_pure_and_reset_restarts():
  x = _signal(300)
  chain = filters.CausalChain(CHAINS[-1], FS)
  first = chain(x[:100])
  state = chain.state
  y, next_state = chain.run(x[100:], chain.state)
  assert chain.state is state and next_state is not state
  np.testing.assert_array_equal(chain(x[100:]), y.astype(np.float32))
  chain.reset()
  assert chain.state is None
  np.testing.assert_array_equal(chain(x[:100]), first)


def test_causal_mode_accepts_short_trials():
  # Zero-phase filtering refuses trials shorter than its edge padding; causal needs none.
  out = filters.apply_filters([_trial(_signal(5))], ('bandpass:20:380:4',), FS, mode='causal')
  assert out[0].emg.shape == (5, 4, 3)


def test_empty_chunk_keeps_state():
  chain = filters.CausalChain(('highpass:20',), FS)
  chain(_signal(10))
  state = chain.state
  assert chain(np.zeros((0, 4, 3), np.float32)).shape == (0, 4, 3)
  assert chain.state is state


def test_unknown_mode_names_the_config_key():
  with pytest.raises(ValueError, match=r"dataset.filter_mode='acausal'"):
    filters.apply_filters([_trial(_signal(50))], ('demean',), FS, mode='acausal')


def test_chain_takes_parsed_filters_and_checks_nyquist():
  parsed = filters.parse_filter_chain(('notch:60', 'lowpass:300'))
  assert filters.CausalChain(parsed, FS).specs == ('notch:60', 'lowpass:300')
  with pytest.raises(ValueError, match=r'lowpass:300.*Nyquist'):
    filters.CausalChain(parsed, 500.0)


def test_consecutive_iir_stages_run_as_one_cascade_of_the_same_filters():
  # The chain merges notch and band-pass into one sosfilt call; it must compute the two
  # filters in turn, each from its steady state for the (filtered) first sample.
  x = _signal().astype(np.float64)
  out = filters.apply_filters([_trial(x.astype(np.float32))], ('notch:50', 'bandpass:20:380:4'),
                              FS, mode='causal')[0].emg
  y = x
  for spec in ('notch:50', 'bandpass:20:380:4'):
    sos = filters.parse_filter(spec).sos(FS)
    y, _ = signal.sosfilt(sos, y, axis=0, zi=signal.sosfilt_zi(sos)[:, :, None, None] * y[0])
  np.testing.assert_allclose(out, y.astype(np.float32), rtol=1e-5, atol=1e-5)
