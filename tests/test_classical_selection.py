"""Per-fold selection of a classical baseline by inner cross-validation over training trials."""

import dataclasses

import numpy as np
import pytest

from hdsemg_jax import classical
from hdsemg_jax import config as config_lib
from hdsemg_jax.classical import selection
from hdsemg_jax.data.trials import Trial

NUM_CLASSES = 3
WINDOWS = (1, 20)


def _trial(gesture: int, number: int, rng, *, by: str, subject: int = 1) -> Trial:
  """200 frames of one gesture (the first 10 unusable), 4 x 2 channels.

  ``by='amplitude'``: gestures differ in each channel's scale only (white noise);
  ``by='frequency'``: equal scales, the gestures' oscillations cross zero at different
  rates, so only zero crossings, slope changes and waveform length tell them apart.
  """
  frames = 200
  if by == 'amplitude':
    gains = np.random.default_rng(7).uniform(0.3, 2.0, (NUM_CLASSES, 4, 2))
    emg = rng.standard_normal((frames, 4, 2)) * gains[gesture]
  else:
    period = (4, 10, 25)[gesture]
    phase = rng.uniform(0, 2 * np.pi, (4, 2))
    t = np.arange(frames)[:, None, None]
    emg = np.sin(2 * np.pi * t / period + phase) + 0.05 * rng.standard_normal((frames, 4, 2))
  label = np.full(frames, gesture, np.int32)
  label[:10] = -1
  return Trial(subject, 1, 'a', number, emg=emg.astype(np.float32), label=label)


def _trials(seed: int, per_gesture: int, by: str) -> list[Trial]:
  rng = np.random.default_rng(seed)
  return [_trial(g, g * per_gesture + r + 1, rng, by=by) for g in range(NUM_CLASSES)
          for r in range(per_gesture)]


def _selection(inner_folds=3, **kw) -> classical.SelectionSettings:
  grid = config_lib.default_config().model.selection
  values = dict(td_feature_sets=tuple(grid.td_feature_sets), thresholds=tuple(grid.thresholds),
                shrinkages=tuple(grid.shrinkages), Cs=tuple(grid.Cs))
  return classical.SelectionSettings(inner_folds=inner_folds, **{**values, **kw})


def _settings(name='lda', **kw) -> classical.ClassicalSettings:
  values = dict(td_features=('mav', 'wl', 'zc', 'ssc', 'log_rms'), zc_threshold=0.02,
                ssc_threshold=0.02, C=1.0, train_window_stride=2, selection=_selection())
  return classical.ClassicalSettings(name=name, **{**values, **kw})


def test_inner_folds_hold_whole_trials_and_every_gesture():
  trials = _trials(0, 4, 'amplitude')
  folds, unit = selection.inner_folds(trials, 3)
  assert len(folds) == len(trials) and unit == 'trial'
  for f in range(3):
    gestures = {t.gesture for t, g in zip(trials, folds) if g == f}
    assert gestures == {0, 1, 2}, f
  # The n-th trial of each gesture (in trial order) goes to fold n mod 3.
  assert folds == [0, 1, 2, 0] * NUM_CLASSES
  # Independent of the order the trials come in.
  order = np.random.default_rng(1).permutation(len(trials))
  shuffled, _ = selection.inner_folds([trials[i] for i in order], 3)
  assert [shuffled[list(order).index(i)] for i in range(len(trials))] == folds


def test_inner_folds_mirror_the_unit_the_protocol_holds_out():
  rng = np.random.default_rng(0)
  trials = [_trial(g, 10 * s + g, rng, by='amplitude', subject=s) for s in (1, 2, 3)
            for g in range(NUM_CLASSES)]
  folds, unit = selection.inner_folds(trials, 3, 'subject')
  assert unit == 'subject' and folds == [0, 0, 0, 1, 1, 1, 2, 2, 2]
  folds, _ = selection.inner_folds(trials, 2, 'subject')  # More subjects than folds.
  assert folds == [0, 0, 0, 1, 1, 1, 0, 0, 0]
  # Sessions of one subject: trials of subject 1 are all session 1, so by trial.
  one_subject = [t for t in trials if t.subject == 1]
  for wanted in ('subject', 'session'):
    assert selection.inner_folds(one_subject, 3, wanted)[1] == 'trial'
  with pytest.raises(ValueError, match="model.selection.inner_unit='fold'"):
    _selection(unit='fold')


def test_the_grid_of_each_model():
  grid = _selection()
  lda = selection.candidates('lda', grid)
  # log_rms: 3 shrinkages; each set with zc/ssc: 3 thresholds x 3 shrinkages.
  assert len(lda) == 3 + 9 + 9
  assert lda[0] == selection.Candidate(('log_rms',), None, 'auto')
  assert {c.regularisation for c in selection.candidates('logreg', grid)} == {0.01, 0.1, 1.0}


def test_selection_finds_the_features_that_separate_the_gestures():
  # Amplitude: log_rms alone is perfect, and the first such candidate wins ties.
  train = _trials(0, 3, 'amplitude')
  chosen, score, folds, unit = selection.select('lda', train, 20, _selection(), 2, 1.0)
  assert chosen.td_features == ('log_rms',) and score == 1.0 and (folds, unit) == (3, 'trial')
  # Frequency: equal amplitudes, so log_rms alone is near chance; the chosen set has
  # the crossing/slope features and scores far above it.
  train = _trials(0, 3, 'frequency')
  only_rms = _selection(td_feature_sets=('log_rms',))
  _, rms_score, _, _ = selection.select('lda', train, 20, only_rms, 2, 1.0)
  chosen, score, _, _ = selection.select('lda', train, 20, _selection(), 2, 1.0)
  assert 'zc' in chosen.td_features and score >= 0.95 > rms_score + 0.3


def test_the_test_trials_are_never_read_during_selection(monkeypatch):
  train, test = _trials(0, 3, 'frequency'), _trials(1, 2, 'frequency')
  events = []

  class Watched:
    """A test trial that logs every read of its signal or labels."""

    def __init__(self, trial):
      self._trial = trial

    def __getattr__(self, name):
      if name in ('emg', 'label'):
        events.append('test read')
      return getattr(self._trial, name)

  real_select = selection.select

  def logged_select(*args, **kwargs):
    events.append('select')
    out = real_select(*args, **kwargs)
    events.append('selected')
    return out
  monkeypatch.setattr(selection, 'select', logged_select)
  result = classical.fit_and_score(train, [Watched(t) for t in test], NUM_CLASSES, _settings(),
                                   WINDOWS)
  assert events.count('select') == len(WINDOWS)
  inside, during = False, []
  for e in events:
    inside = {'select': True, 'selected': False}.get(e, inside)
    if inside and e == 'test read':
      during.append(e)
  assert not during
  # And what is chosen is a function of the training trials alone: other test trials
  # (here, noise with permuted labels) leave the selection and inner scores unchanged.
  rng = np.random.default_rng(5)
  garbage = [dataclasses.replace(t, emg=rng.standard_normal(t.emg.shape).astype(np.float32),
                                 label=rng.permutation(t.label)) for t in test]
  other = classical.fit_and_score(train, garbage, NUM_CLASSES, _settings(), WINDOWS)
  assert other['selection'] == result['selection']


def test_selected_rows_are_deterministic_and_say_what_was_chosen():
  train, test = _trials(0, 3, 'frequency'), _trials(1, 2, 'frequency')
  first = classical.fit_and_score(train, test, NUM_CLASSES, _settings('logreg'), WINDOWS)
  second = classical.fit_and_score(train, test, NUM_CLASSES, _settings('logreg'), WINDOWS)
  timing = ('train_seconds', 'inference_seconds_per_frame', 'inference_seconds_per_decision')
  assert ({k: v for k, v in first.items() if k not in timing}
          == {k: v for k, v in second.items() if k not in timing})
  chosen = first['selection']
  assert chosen['inner_folds'] == 3 and chosen['candidates'] == 3 + 9 + 9
  assert set(chosen['windows']) == {'1', '20'}
  for w, entry in chosen['windows'].items():
    assert set(entry) == {'td_features', 'threshold', 'C', 'inner_score', 'inner_folds',
                          'inner_unit'}, w
    assert 0 <= entry['inner_score'] <= 1
  # Tuned beats a fixed set the data cannot use, on the test trials too.
  fixed = classical.fit_and_score(train, test, NUM_CLASSES, _settings(
      'logreg', td_features=('log_rms',), selection=_selection(0)), WINDOWS)
  assert fixed['selection'] is None
  assert first['decision_accuracy']['20'] > fixed['decision_accuracy']['20'] + 0.3


def test_too_few_training_trials_and_bad_grids_are_named_errors():
  with pytest.raises(ValueError, match='model.selection.inner_folds=3: .* fewer than 2 inner'):
    selection.select('lda', _trials(0, 1, 'amplitude'), 20, _selection(), 2, 1.0)
  with pytest.raises(ValueError, match='model.selection.inner_folds=1'):
    _selection(1)
  with pytest.raises(ValueError, match="model.selection.shrinkages: '2' is not 'auto'"):
    _selection(shrinkages=('auto', '2'))
  with pytest.raises(ValueError, match='model.td_features'):
    _selection(td_feature_sets=('log_rms,peak',))
  with pytest.raises(ValueError, match='model.selection.Cs'):
    _selection(Cs=(0.0,))
  with pytest.raises(ValueError, match='model.selection.td_feature_sets'):
    _selection(td_feature_sets=())
