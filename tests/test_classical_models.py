"""Classical baselines and chance through `classical.fit_and_score`, on small synthetic trials."""

import json

import ml_collections
import numpy as np
import pytest

from hdsemg_jax import classical, protocols
from hdsemg_jax import config as config_lib
from hdsemg_jax.classical import models
from hdsemg_jax.data import trials as trials_lib
from hdsemg_jax.data.trials import Trial
from hdsemg_jax.evaluation import evaluate

NUM_CLASSES = 3
WINDOWS = (1, 5, 20)
SCORE_KEYS = {'frame_accuracy', 'balanced_accuracy', 'vote_accuracy', 'confusion_matrix'}
TIMING_KEYS = ('train_seconds', 'inference_seconds_per_frame', 'inference_seconds_per_decision')


def _trials(seed: int, counts=(1, 1, 1)) -> list[Trial]:
  """Trials of 60 frames: 5 unusable, then one gesture whose channels have their own amplitudes.

  ``counts[k]`` trials of gesture k; each channel is noise whose scale depends on the gesture,
  so single frames are hard to tell apart and windows easy.
  """
  rng = np.random.default_rng(seed)
  gains = np.random.default_rng(99).uniform(0.3, 2.0, (NUM_CLASSES, 4, 2))
  out = []
  for gesture, count in enumerate(counts):
    for _ in range(count):
      emg = (rng.standard_normal((60, 4, 2)) * gains[gesture]).astype(np.float32)
      label = np.full(60, gesture, np.int32)
      label[:5] = -1
      emg[:5] = np.nan  # Unusable frames may hold anything.
      out.append(Trial(1, 1, 'a', len(out) + 1, emg=emg, label=label))
  return out


def _selection(inner_folds=0, **kw):
  """The config's default grid, with ``inner_folds`` (0: the fixed settings) and ``kw``."""
  grid = config_lib.default_config().model.selection
  values = dict(td_feature_sets=tuple(grid.td_feature_sets), thresholds=tuple(grid.thresholds),
                shrinkages=tuple(grid.shrinkages), Cs=tuple(grid.Cs))
  return classical.SelectionSettings(inner_folds=inner_folds, **{**values, **kw})


def _settings(name, stride=1, **kw):
  """The settings a run resolves from the config's defaults, with ``kw`` changed."""
  values = dict(td_features=('mav', 'wl', 'zc', 'ssc', 'log_rms'), zc_threshold=0.02,
                ssc_threshold=0.02, C=1.0, train_window_stride=stride, selection=_selection())
  return classical.ClassicalSettings(name=name, **{**values, **kw})


def _without_timing(result):
  return {k: v for k, v in result.items() if k not in TIMING_KEYS}


@pytest.mark.parametrize('name', ['lda', 'logreg', 'linear_svm'])
def test_linear_models_learn_and_are_deterministic(name):
  train, test = _trials(0, (4, 4, 4)), _trials(1, (2, 2, 2))
  config = _settings(name, 2)
  result = classical.fit_and_score(train, test, NUM_CLASSES, config, WINDOWS)
  assert set(result) == SCORE_KEYS | {
      'decision_accuracy', 'decision_rule', 'num_params', 'flops_per_decision', 'train_seconds',
      'inference_seconds_per_frame', 'inference_seconds_per_decision', 'num_train_windows',
      'selection'}
  json.dumps(result)  # A results row must be JSON.
  assert result['decision_rule'] == 'window'
  assert set(result['decision_accuracy']) == set(result['vote_accuracy']) == {'1', '5', '20'}
  # Chance is 1/3; 20-frame windows of channel amplitudes are easy.
  assert result['decision_accuracy']['20'] >= 0.9
  assert result['decision_accuracy']['20'] >= result['decision_accuracy']['1']
  assert result['frame_accuracy'] > 0.5
  # The one-frame model's decisions are the per-frame predictions.
  assert result['decision_accuracy']['1'] == pytest.approx(result['frame_accuracy'])
  assert result['vote_accuracy']['1'] == pytest.approx(result['frame_accuracy'])
  assert np.sum(result['confusion_matrix']) == 6 * 55
  # 3 classes x 5 features x 8 channels coefficients + 3 intercepts (one-vs-rest: the same).
  assert result['num_params'] == 3 * 40 + 3
  assert result['flops_per_decision']['20'] > result['flops_per_decision']['1'] > 2 * 120
  # Segments of 55 frames: windows ending at frames 4.. of each, every 2nd.
  assert result['num_train_windows'] == {'1': 12 * 28, '5': 12 * 26, '20': 12 * 18}
  for key in ('train_seconds', 'inference_seconds_per_frame'):
    assert result[key] >= 0
  again = classical.fit_and_score(train, test, NUM_CLASSES, config, WINDOWS)
  assert _without_timing(again) == _without_timing(result)


def test_chance_predicts_the_majority_of_the_training_frames():
  train, test = _trials(0, (1, 3, 2)), _trials(1, (1, 1, 2))
  result = classical.fit_and_score(train, test, NUM_CLASSES, _settings('chance', 4), WINDOWS)
  assert result['frame_accuracy'] == pytest.approx(1 / 4)  # Class 1: one test trial of four.
  assert result['balanced_accuracy'] == pytest.approx(1 / 3)
  assert all(v == pytest.approx(1 / 4) for v in result['decision_accuracy'].values())
  assert all(v == pytest.approx(1 / 4) for v in result['vote_accuracy'].values())
  assert np.asarray(result['confusion_matrix'])[:, 1].sum() == 4 * 55
  assert result['num_params'] == 0 and set(result['flops_per_decision'].values()) == {0}
  # Ties go to the smallest class.
  tie = classical.fit_and_score(_trials(0, (0, 2, 2)), test, NUM_CLASSES, _settings('chance'),
                                (1,))
  assert tie['frame_accuracy'] == pytest.approx(1 / 4)
  assert np.asarray(tie['confusion_matrix'])[:, 1].sum() == 4 * 55


def test_windows_without_one_still_score_frames_with_the_one_frame_model():
  train, test = _trials(0, (2, 2, 2)), _trials(1, (1, 1, 1))
  result = classical.fit_and_score(train, test, NUM_CLASSES, _settings('logreg', 3), (10,))
  assert set(result['decision_accuracy']) == set(result['vote_accuracy']) == {'10'}
  assert 0 < result['frame_accuracy'] <= 1


def test_settings_are_checked_and_named():
  with pytest.raises(ValueError, match="model.name='resnet' is not a classical model"):
    _settings('resnet')
  with pytest.raises(ValueError, match='model.C must be positive'):
    _settings('logreg', C=0.0)
  with pytest.raises(ValueError, match='model.zc_threshold'):
    _settings('lda', zc_threshold=-1)
  with pytest.raises(ValueError, match='model.td_features'):
    _settings('lda', td_features=('x',))
  with pytest.raises(ValueError, match='model.train_window_stride'):
    _settings('lda', 0)
  assert models.is_classical('lda') and not models.is_classical('all_convnet')


def test_on_the_tiny_synthetic_dataset(tiny_trials):
  spec, trials = tiny_trials
  config = ml_collections.ConfigDict(dict(name='intra_session', sessions=(1,), subjects=None,
                                          folds=None))
  fold = protocols.make_folds(trials, config)[0]
  train, test = trials_lib.select(trials, fold.train), trials_lib.select(trials, fold.test)
  for name in ('lda', 'logreg'):
    result = classical.fit_and_score(train, test, spec.num_classes, _settings(name), (1, 5))
    assert result['frame_accuracy'] > 2 / spec.num_classes, name
    # Same frames, same vote as a network's predictions would get.
    assert set(result) >= set(evaluate.score([t.label for t in test], test, spec.num_classes,
                                             (1, 5)))
