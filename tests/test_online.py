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


# False activations during rest. Rest is class 0; at 1000 Hz, 60000 frames are a minute.


def test_rest_counts_counts_onsets_of_runs():
  labels = np.array([0, 0, 0, 0, 0, -1, 0, 0, 1, 1, 0, 0, 0, 0], np.int32)
  decisions = np.array([0, 2, 2, 0, 1, 1, 1, 0, 2, 2, 2, 2, 0, 0], np.int32)
  # Runs of wrong rest frames: frames 1-2 (one onset, 2 and 2 being one run), frame 4 (broken
  # by the -1 frame at 5 though the decision stays 1), frame 6 (a new onset after the break),
  # frames 10-11 (already wrong at the first rest frame of the segment after the gesture).
  counts = online.rest_counts(decisions, labels, 0)
  assert counts == online.RestCounts(onsets=4, rest_frames=11, false_frames=6)


def test_rest_counts_a_run_at_the_trial_start_and_a_change_of_wrong_class_counts_once():
  labels = np.zeros(6, np.int32)
  # Wrong from the first frame; switching from one wrong gesture to another is one run.
  counts = online.rest_counts(np.array([1, 1, 2, 2, 0, 0]), labels, 0)
  assert counts == online.RestCounts(onsets=1, rest_frames=6, false_frames=4)
  # A non-zero rest class: decisions of class 0 are then the wrong ones.
  counts = online.rest_counts(np.array([0, 3, 3, 0, 3, 0]), np.full(6, 3), 3)
  assert counts == online.RestCounts(onsets=3, rest_frames=6, false_frames=3)


def test_false_activations_pools_trials_without_joining_them():
  minute = 60000
  # Trial 1: one minute of rest wrong at its last 10 frames; trial 2: half a minute of rest
  # wrong at its first 5 frames (a new onset: runs never cross trials), then 100 gesture frames.
  labels = [np.zeros(minute, np.int32), np.array([0] * (minute // 2) + [1] * 100, np.int32)]
  decisions = [np.zeros(minute, np.int32), np.zeros(minute // 2 + 100, np.int32)]
  decisions[0][-10:] = 1
  decisions[1][:5] = 1
  decisions[1][minute // 2:] = 1  # Right on the gesture: not a rest frame, not counted.
  result = online.false_activations(decisions, labels, 0, 1000.0)
  assert result == {'false_activations': 2, 'rest_frames': 90000, 'rest_minutes': 1.5,
                    'false_activations_per_minute': 2 / 1.5,
                    'rest_false_fraction': 15 / 90000}


def test_false_activations_all_correct_is_zero_and_no_rest_is_nan():
  labels = [np.array([0, 0, -1, 1, 1], np.int32)]
  result = online.false_activations([np.array([0, 0, 1, 1, 1])], labels, 0, 1000.0)
  assert result['false_activations'] == 0 and result['false_activations_per_minute'] == 0.0
  assert result['rest_false_fraction'] == 0.0 and result['rest_frames'] == 2
  # Wrong decisions on -1 and gesture frames only: no rest frame, nothing to count.
  result = online.false_activations([np.array([2, 2, 2])], [np.array([-1, 1, 1])], 0, 1000.0)
  assert result['false_activations'] == 0 and result['rest_minutes'] == 0.0
  assert math.isnan(result['false_activations_per_minute'])
  assert math.isnan(result['rest_false_fraction'])
  with pytest.raises(ValueError, match='sampling rate'):
    online.false_activations([np.zeros(3)], [np.zeros(3)], 0, 0.0)
  with pytest.raises(ValueError, match='equal length'):
    online.false_activations([np.zeros(3)], [np.zeros(4)], 0, 1000.0)
  with pytest.raises(ValueError, match='trials'):
    online.false_activations([np.zeros(3)], [], 0, 1000.0)


def _rest_trial(label: np.ndarray, classes: np.ndarray, trial: int) -> Trial:
  """A trial whose frames carry the class a `_carried` classifier reads back."""
  emg = np.zeros((len(label), 2, 2), np.float32)
  emg[:, 0, 0] = classes
  return Trial(subject=1, session=1, part='test', trial=trial, emg=emg, label=label)


def _carried(frames: np.ndarray) -> np.ndarray:
  return np.rint(frames[:, 0, 0]).astype(np.int32)


def test_online_scores_count_false_activations_of_each_window():
  # 600 frames at 100 Hz: 6000 rest frames in all would be a minute. Trial 1: rest 0..299
  # with two short blips (frames 50-51 and 100), gesture 1 from 300 (decided right), then
  # rest again from 400, with a wrong decision on -1 frames 398-399 that carries into rest
  # frames 400-402. Trial 2: all rest, wrong at its first 3 frames.
  label1 = np.array([0] * 300 + [1] * 98 + [-1] * 2 + [0] * 200, np.int32)
  classes1 = np.zeros(600, np.int32)
  classes1[[50, 51, 100]] = 2
  classes1[300:398] = 1
  classes1[398:403] = 2
  label2 = np.zeros(300, np.int32)
  classes2 = np.zeros(300, np.int32)
  classes2[:3] = 1
  trials = [_rest_trial(label1, classes1, 1), _rest_trial(label2, classes2, 2)]
  conditioning = Conditioning((), 'causal', 100.0)
  scores = online.online_scores(_carried, trials, conditioning, (1, 3, 5), 7, 3, rest_class=0)
  rest_minutes = 800 / 100 / 60
  assert scores['rest_class'] == 0 and scores['rest_minutes'] == rest_minutes
  # w=1, the per-frame classes: onsets at 50 (50-51), 100, 400 (400-402) and trial 2's frame
  # 0 (0-2); 9 wrong rest frames.
  # w=3: the 2 at 50-51 wins 2 votes to 1 at frames 51 and 52 (an onset); the one at 100 is
  # outvoted. From 398 the votes are 1,2 (on -1 frames), then 2 at rest frames 400-403
  # (403: 2,2,0) and 0 at 404: an onset, 4 frames. Trial 2 votes 1 at frames 0-3 (3: 1,1,0).
  # w=5: both blips are outvoted; rest frames 400-404 vote 2 (396-400: 1,1,2,2,2; 400-404:
  # 2,2,2,0,0), 405 votes 0; trial 2 votes 1 at frames 0-4 (0-4: 1,1,1,0,0).
  assert scores['false_activations'] == {'1': 4, '3': 3, '5': 2}
  assert scores['false_activations_per_minute'] == {
      '1': 4 / rest_minutes, '3': 3 / rest_minutes, '5': 2 / rest_minutes}
  assert scores['rest_false_fraction'] == {'1': 9 / 800, '3': 10 / 800, '5': 10 / 800}
  # The per-frame figures equal the function's on the classes themselves.
  direct = online.false_activations([classes1, classes2], [label1, label2], 0, 100.0)
  assert direct['false_activations_per_minute'] == scores['false_activations_per_minute']['1']
  # Without a rest class, the row is what it was: no rest keys, the same accuracies.
  plain = online.online_scores(_carried, trials, conditioning, (1, 3, 5), 7, 3)
  assert set(plain) == {'frame_accuracy', 'vote_accuracy', 'frames', 'trials', 'chunk_size',
                        'filter_mode', 'train_filter_mode'}
  assert {k: scores[k] for k in plain} == plain
  # An explicit rate must agree with the conditioning's.
  same = online.online_scores(_carried, trials, conditioning, (1,), 7, 3, rest_class=0,
                              sampling_rate_hz=100.0)
  assert same['false_activations'] == {'1': 4}
  with pytest.raises(ValueError, match='differs'):
    online.online_scores(_carried, trials, conditioning, (1,), 7, 3, rest_class=0,
                         sampling_rate_hz=1000.0)


def test_online_scores_rest_class_needs_a_rate_and_a_valid_index():
  trial = _rest_trial(np.zeros(10, np.int32), np.zeros(10, np.int32), 1)
  no_rate = Conditioning((), 'causal', None)
  assert 'rest_minutes' not in online.online_scores(_carried, [trial], no_rate, (1,), 4, 2)
  with pytest.raises(ValueError, match='needs the sampling rate'):
    online.online_scores(_carried, [trial], no_rate, (1,), 4, 2, rest_class=0)
  scores = online.online_scores(_carried, [trial], no_rate, (1,), 4, 2, rest_class=0,
                                sampling_rate_hz=10.0)
  assert scores['rest_minutes'] == 1 / 60 and scores['false_activations_per_minute'] == {'1': 0.0}
  with pytest.raises(ValueError, match='rest_class'):
    online.online_scores(_carried, [trial], no_rate, (1,), 4, 2, rest_class=2,
                         sampling_rate_hz=10.0)
  # Trials without rest frames: NaN rates.
  gesture = _rest_trial(np.ones(10, np.int32), np.ones(10, np.int32), 2)
  scores = online.online_scores(_carried, [gesture], no_rate, (1,), 4, 2, rest_class=0,
                                sampling_rate_hz=10.0)
  assert scores['rest_minutes'] == 0.0 and scores['false_activations'] == {'1': 0}
  assert math.isnan(scores['false_activations_per_minute']['1'])
  assert math.isnan(scores['rest_false_fraction']['1'])
