"""Tests of hdsemg_jax.streaming: the chunked decoder against an offline computation."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from experiments.configs import tiny
from hdsemg_jax import models, saved_model, streaming
from hdsemg_jax.evaluation import voting
from hdsemg_jax.preprocessing import filters
from hdsemg_jax.training import state as state_lib

FS = 1000.0
SPECS = ('notch:50', 'bandpass:20:380:4', 'demean')


def random_model(grid_shape=(16, 8), num_classes=3, seed=0, specs=SPECS) -> saved_model.Model:
  """An untrained tiny All-ConvNet: its classes vary from frame to frame, which votes need."""
  config = tiny.get_config()
  module = models.build_from_config(config.model.to_dict(), num_classes, grid_shape, seed=seed)
  graphdef, params, batch_stats = state_lib.split_model(module)
  kwargs = {k: v for k, v in config.model.to_dict().items() if k != 'name'}
  info = saved_model.ModelInfo(
      model=config.model.name, model_kwargs=kwargs, num_classes=num_classes,
      grid_shape=tuple(grid_shape), class_names=tuple(f'g{i}' for i in range(num_classes)),
      dataset='synthetic_hdsemg/tiny', dataset_version='1.0.0', fold='F', seed=seed,
      eval_batch_size=64, conditioning=filters.Conditioning(tuple(specs), 'causal', FS))
  return saved_model.Model(info, graphdef, params, batch_stats)


@pytest.fixture(scope='module')
def model() -> saved_model.Model:
  return random_model()


@pytest.fixture(scope='module')
def recording(tiny_trials):
  """Consecutive tiny trials of different gestures as one raw recording (T, 16, 8)."""
  _, trials = tiny_trials
  picked = [t for t in trials if t.subject == 1][:9]
  return (np.concatenate([t.emg for t in picked]), np.concatenate([t.label for t in picked]))


def trailing_votes(classes: np.ndarray, window: int, num_classes: int) -> np.ndarray:
  """The vote at each frame over the frames t-w+1..t (all so far at the start), by counting."""
  out = []
  for t in range(len(classes)):
    counts = np.bincount(classes[max(0, t - window + 1):t + 1], minlength=num_classes)
    out.append(int(np.flatnonzero(counts == counts.max())[0]))  # Ties: the smallest class.
  return np.asarray(out)


def feed(decoder: streaming.Decoder, samples: np.ndarray, chunk: int) -> streaming.Decisions:
  outs = [decoder.push(samples[i:i + chunk]) for i in range(0, len(samples), chunk)]
  return streaming.Decisions(np.concatenate([o.classes for o in outs]),
                             np.concatenate([o.votes for o in outs]))


def rule_classify(frames: np.ndarray) -> np.ndarray:
  """A classifier whose class changes every few frames: the strongest of three electrodes."""
  return np.argmax(frames[:, 0, :3], axis=1).astype(np.int32)


@pytest.mark.parametrize('chunk', [1, 7, 1000])
def test_model_decisions_equal_offline_causal_filter_and_vote(model, recording, chunk):
  emg, _ = recording
  window = 25
  decoder = streaming.Decoder.from_model(model, window=window)
  assert decoder.filters == SPECS and decoder.window == window
  out = feed(decoder, emg.reshape(len(emg), -1), chunk)
  causal = filters.filter_array(emg, filters.parse_filter_chain(SPECS, FS), FS, mode='causal')
  offline = model.predict(causal)
  np.testing.assert_array_equal(out.classes, offline)
  np.testing.assert_array_equal(out.votes, trailing_votes(offline, window, 3))
  assert decoder.frames_seen == len(emg)


@pytest.mark.parametrize('window', [1, 4, 25])
@pytest.mark.parametrize('chunk', [1, 7, 1000])
def test_votes_equal_offline_vote(recording, chunk, window):
  # The untrained model's class hardly changes on these frames; this rule's changes often,
  # with many tied windows, so every part of the vote is exercised.
  emg, _ = recording
  decoder = streaming.Decoder(rule_classify, grid_shape=(16, 8), num_classes=3,
                              sampling_rate_hz=FS, filters=SPECS, window=window)
  out = feed(decoder, emg.reshape(len(emg), -1), chunk)
  causal = filters.filter_array(emg, filters.parse_filter_chain(SPECS, FS), FS, mode='causal')
  offline = rule_classify(causal)
  assert np.bincount(offline).min() > len(offline) // 10
  np.testing.assert_array_equal(out.classes, offline)
  np.testing.assert_array_equal(out.votes, trailing_votes(offline, window, 3))
  # Where a full window has arrived, the offline vote's own function agrees.
  np.testing.assert_array_equal(out.votes[window - 1:],
                                voting.window_votes(offline, window, 3))


@pytest.mark.parametrize('window', [1, 2, 5, 40])
def test_vote_paths_agree(window):
  # Short chunks update counts frame by frame, long ones use a cumulative sum.
  classes = np.random.default_rng(window).integers(0, 4, size=600).astype(np.int32)
  expected = trailing_votes(classes, window, 4)
  for sizes in ([1] * 50 + [100, 3, 200, 33, 214], [600], [32, 33, 1, 34] * 4 + [8]):
    vote = streaming.TrailingVote(window, 4)
    out, start = [], 0
    for size in sizes:
      out.append(vote.push(classes[start:start + size]))
      start += size
    np.testing.assert_array_equal(np.concatenate(out), expected[:start])
    history, counts = vote.state
    np.testing.assert_array_equal(history, classes[max(start - window + 1, 0):start])
    np.testing.assert_array_equal(counts, np.bincount(history, minlength=4))


def test_vote_ties_go_to_the_smallest_class():
  vote = streaming.TrailingVote(4, 3)
  np.testing.assert_array_equal(vote.push(np.array([2, 1])), [2, 1])
  np.testing.assert_array_equal(vote.push(np.array([2, 1, 0])), [2, 1, 1])
  np.testing.assert_array_equal(vote.history, [2, 1, 0])


def test_channel_map_reorders_channels(model, recording):
  emg, _ = recording
  rows, cols = emg.shape[1:]
  rng = np.random.default_rng(0)
  perm = rng.permutation(rows * cols)  # Recorded channel c sits at grid cell perm[c].
  flat = emg.reshape(len(emg), -1)
  recorded = np.empty_like(flat)
  recorded[:, np.arange(rows * cols)] = flat[:, perm]
  channel_map = [(p // cols, p % cols) for p in perm]
  a = feed(streaming.Decoder.from_model(model, window=5), flat, 50)
  b = feed(streaming.Decoder.from_model(model, window=5, channel_map=channel_map), recorded, 50)
  np.testing.assert_array_equal(a.votes, b.votes)
  np.testing.assert_array_equal(a.classes, b.classes)


@pytest.mark.parametrize('channel_map, match', [
    ([(0, 0)] * 128, 'same grid position'),
    ([(r, c) for r in range(16) for c in range(8)][:-1], 'one \\(row, column\\) pair'),
    ([(r + 1, c) for r in range(16) for c in range(8)], 'outside'),
])
def test_bad_channel_map_is_refused(model, channel_map, match):
  with pytest.raises(ValueError, match=match):
    streaming.Decoder.from_model(model, channel_map=channel_map)


def _snapshot(decoder: streaming.Decoder):
  # pylint: disable=protected-access
  return (copy.deepcopy(decoder._chain.state), copy.deepcopy(decoder._vote.state),
          decoder.frames_seen)


def _assert_same_state(a, b):
  assert a[2] == b[2]
  for va, vb in zip(a[1], b[1]):
    np.testing.assert_array_equal(va, vb)
  fa, fb = a[0], b[0]
  assert len(fa) == len(fb)
  for sa, sb in zip(fa, fb):
    if isinstance(sa, tuple):  # The running demean: (count, sums).
      assert sa[0] == sb[0]
      np.testing.assert_array_equal(sa[1], sb[1])
    else:
      np.testing.assert_array_equal(sa, sb)


def _bad_chunks():
  good = np.random.default_rng(1).normal(size=(5, 128)).astype(np.float32)
  nan, inf = good.copy(), good.copy()
  nan[3, 17] = np.nan
  inf[0, 0] = -np.inf
  return [
      (good[:, :127], streaming.ChunkShapeError, r'shape \(samples, 128\)'),
      (good[0], streaming.ChunkShapeError, r'shape \(samples, 128\)'),
      (good.reshape(5, 16, 8), streaming.ChunkShapeError, r'shape \(samples, 128\)'),
      (good.astype(np.int16), streaming.ChunkDtypeError, 'dtype int16'),
      (good.astype(np.float16), streaming.ChunkDtypeError, 'dtype float16'),
      (good.tolist(), streaming.ChunkDtypeError, 'got list'),
      (nan, streaming.NonFiniteChunkError, 'sample 3, channel 17'),
      (inf, streaming.NonFiniteChunkError, 'sample 0, channel 0'),
  ]


@pytest.mark.parametrize('bad, error, match', _bad_chunks(),
                         ids=['channels', '1d', '3d', 'int16', 'float16', 'list', 'nan', 'inf'])
def test_bad_chunk_raises_named_error_and_leaves_state(model, recording, bad, error, match):
  emg, _ = recording
  samples = emg.reshape(len(emg), -1)
  decoder = streaming.Decoder.from_model(model, window=9)
  reference = streaming.Decoder.from_model(model, window=9)
  feed(decoder, samples[:30], 7)
  feed(reference, samples[:30], 7)
  before = _snapshot(decoder)
  with pytest.raises(error, match=match) as raised:
    decoder.push(bad)
  assert isinstance(raised.value, streaming.ChunkError)
  assert isinstance(raised.value, ValueError)
  _assert_same_state(before, _snapshot(decoder))
  # And it decodes on exactly as a decoder that never saw the bad chunk.
  a, b = decoder.push(samples[30:60]), reference.push(samples[30:60])
  np.testing.assert_array_equal(a.votes, b.votes)
  np.testing.assert_array_equal(a.classes, b.classes)


def test_failing_classifier_leaves_state(recording):
  emg, _ = recording
  calls = []

  def classify(frames):
    calls.append(len(frames))
    if len(calls) == 2:
      raise RuntimeError('model crashed')
    return np.zeros(len(frames), np.int32)

  decoder = streaming.Decoder(classify, grid_shape=(16, 8), num_classes=3, sampling_rate_hz=FS,
                              filters=SPECS, window=4)
  samples = emg.reshape(len(emg), -1)
  decoder.push(samples[:10])
  before = _snapshot(decoder)
  with pytest.raises(RuntimeError, match='model crashed'):
    decoder.push(samples[10:20])
  _assert_same_state(before, _snapshot(decoder))


def test_non_contiguous_and_float64_chunks_decode_alike(model, recording):
  emg, _ = recording
  samples = emg.reshape(len(emg), -1)
  wide = np.repeat(samples, 2, axis=1).astype(np.float64)  # Every channel twice.
  view = wide[:, ::2]
  assert not view.flags.c_contiguous
  a = feed(streaming.Decoder.from_model(model, window=3), samples, 40)
  b = feed(streaming.Decoder.from_model(model, window=3), view, 40)
  np.testing.assert_array_equal(a.classes, b.classes)
  np.testing.assert_array_equal(a.votes, b.votes)


def test_empty_chunk_and_reset(model, recording):
  emg, _ = recording
  samples = emg.reshape(len(emg), -1)
  decoder = streaming.Decoder.from_model(model, window=5)
  first = feed(decoder, samples[:40], 40)
  empty = decoder.push(samples[:0])
  assert empty.classes.shape == (0,) and empty.votes.shape == (0,)
  decoder.reset()
  assert decoder.frames_seen == 0
  again = feed(decoder, samples[:40], 40)
  np.testing.assert_array_equal(first.votes, again.votes)


def test_filters_need_a_sampling_rate():
  with pytest.raises(ValueError, match='sampling_rate_hz'):
    streaming.Decoder(lambda f: np.zeros(len(f)), grid_shape=(2, 2), num_classes=2,
                      sampling_rate_hz=None, filters=('highpass:20',))
  with pytest.raises(ValueError, match='window must be positive'):
    streaming.Decoder(lambda f: np.zeros(len(f)), grid_shape=(2, 2), num_classes=2,
                      sampling_rate_hz=None, window=0)
