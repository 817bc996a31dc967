"""Tests of hdsemg_jax.evaluation.online: replayed trials scored as a live decoder sees them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.configs import tiny
from hdsemg_jax import models, saved_model
from hdsemg_jax.data.trials import Trial
from hdsemg_jax.evaluation import online, voting
from hdsemg_jax.preprocessing import filters
from hdsemg_jax.preprocessing.filters import Conditioning
from hdsemg_jax.training import state as state_lib

FS = 1000.0
SPECS = ('notch:50', 'bandpass:20:380:4')


def rule_classify(frames: np.ndarray) -> np.ndarray:
  """The strongest of three electrodes: a class that changes every few frames."""
  return np.argmax(frames[:, 0, :3], axis=1).astype(np.int32)


def _expected(trials, windows, classify=rule_classify):
  """Online accuracy spelt out: causal filter per trial, trailing vote at every usable frame."""
  chain = filters.parse_filter_chain(SPECS, FS)
  correct = {w: 0 for w in windows}
  total = 0
  for t in trials:
    classes = classify(filters.filter_array(t.emg, chain, FS, mode='causal'))
    for i in np.flatnonzero(t.label >= 0):
      total += 1
      for w in windows:
        counts = np.bincount(classes[max(0, i - w + 1):i + 1], minlength=3)
        correct[w] += int(np.argmax(counts) == t.label[i])
  return {str(w): correct[w] / total for w in windows}, total


@pytest.fixture(scope='module')
def trials(tiny_trials):
  _, all_trials = tiny_trials
  picked = [t for t in all_trials if t.subject == 1][:12]
  # Some unusable frames, as real recordings have between gestures.
  first = picked[0]
  label = first.label.copy()
  label[:5] = -1
  picked[0] = Trial(first.subject, first.session, first.part, first.trial, first.emg, label)
  return picked


@pytest.mark.parametrize('chunk_size', [1, 7, 1000])
def test_scores_match_the_definition(trials, chunk_size):
  windows = (1, 5, 30)
  scores = online.online_scores(rule_classify, trials, Conditioning(SPECS, 'zero_phase', FS), windows,
                                chunk_size, 3)
  expected, total = _expected(trials, windows)
  assert scores['frames'] == total == sum(int((t.label >= 0).sum()) for t in trials)
  assert scores['vote_accuracy'] == pytest.approx(expected, abs=0)
  assert scores['frame_accuracy'] == expected['1']
  assert scores['trials'] == len(trials) and scores['chunk_size'] == chunk_size
  assert scores['filter_mode'] == 'causal' and scores['train_filter_mode'] == 'zero_phase'


def test_online_vote_lags_a_label_change_where_the_offline_vote_does_not():
  # A perfect per-frame classifier on a trial whose label changes from 0 to 1 at frame 50,
  # with 10 unusable frames at the end. Offline, every window lies inside one segment.
  label = np.array([0] * 50 + [1] * 50 + [-1] * 10, np.int32)
  emg = np.zeros((110, 2, 2), np.float32)
  emg[:, 0, 0] = np.maximum(label, 0)
  trial = Trial(subject=1, session=1, part='test', trial=1, emg=emg, label=label)

  def perfect(frames):
    return np.rint(frames[:, 0, 0]).astype(np.int32)

  scores = online.online_scores(perfect, [trial], Conditioning((), 'causal', FS), (1, 20), 8, 2)
  assert scores['frames'] == 100
  assert scores['frame_accuracy'] == 1.0
  # Frames 50..59: their 20-frame window holds at most 10 ones, and a 10-10 tie goes to 0.
  assert scores['vote_accuracy']['20'] == 0.9
  assert voting.majority_vote_accuracy([perfect(emg)], [label], 20, 2) == 1.0


def test_jax_model_runs_and_agrees_with_its_predict(trials):
  config = tiny.get_config()
  module = models.build_from_config(config.model.to_dict(), 3, (16, 8), seed=0)
  graphdef, params, batch_stats = state_lib.split_model(module)
  info = saved_model.ModelInfo(
      model='all_convnet', model_kwargs={}, num_classes=3, grid_shape=(16, 8),
      class_names=('a', 'b', 'c'), dataset='synthetic_hdsemg/tiny', dataset_version='1.0.0',
      fold='F', seed=0, eval_batch_size=64,
      conditioning=Conditioning(SPECS, 'zero_phase', FS))
  model = saved_model.Model(info, graphdef, params, batch_stats)
  scores = online.online_scores(model, trials, Conditioning(SPECS, 'zero_phase', FS), (1, 5), 50, 3)
  expected, _ = _expected(trials, (1, 5), classify=model.predict)
  assert scores['vote_accuracy'] == pytest.approx(expected, abs=0)


def test_no_usable_frames_gives_nan_and_bad_arguments_are_refused(trials):
  unusable = Trial(1, 1, 'test', 1, np.zeros((10, 16, 8), np.float32),
                   np.full(10, -1, np.int32))
  scores = online.online_scores(rule_classify, [unusable], Conditioning(SPECS, 'causal', FS), (3,), 4, 3)
  assert math.isnan(scores['frame_accuracy']) and math.isnan(scores['vote_accuracy']['3'])
  with pytest.raises(ValueError, match='dataset.filter_mode'):
    Conditioning(SPECS, 'forward', FS)
  with pytest.raises(ValueError, match='chunk_size'):
    online.online_scores(rule_classify, trials, Conditioning(SPECS, 'causal', FS), (3,), 0, 3)
  with pytest.raises(ValueError, match='vote_windows'):
    online.online_scores(rule_classify, trials, Conditioning(SPECS, 'causal', FS), (0,), 4, 3)
