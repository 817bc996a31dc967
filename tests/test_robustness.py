"""Shift robustness: scores at shift (0, 0) are the plain scores; shifted frames reach predict."""

import os

import numpy as np

from hdsemg_jax.evaluation import evaluate, robustness
from hdsemg_jax.preprocessing import grid_shift
from hdsemg_jax.reporting import robustness_plot


def _predict_from_mean_column(frames):
  """A stand-in model: the class is the column of the largest mean |value|, modulo 3."""
  return np.argmax(np.abs(np.asarray(frames)).mean(axis=1), axis=-1) % 3


def test_shift_zero_equals_plain_scores_and_shifts_move_inputs(tiny_trials):
  spec, trials = tiny_trials
  test = trials[:12]
  windows = (1, 10)
  plain = evaluate.score(evaluate.predict_trials(_predict_from_mean_column, test, 32), test,
                         spec.num_classes, windows)
  results = robustness.shift_robustness(_predict_from_mean_column, test, [(0, 0), (0, 1), (2, 0)],
                                        windows, spec.num_classes, spec.wrap_axis, batch_size=32)
  assert [r['shift'] for r in results] == [[0, 0], [0, 1], [2, 0]]
  assert results[0] == {'shift': [0, 0], **plain}
  # A column shift moves this model's decision by one column; the score is then that of the
  # frames shifted by hand.
  moved = [t.emg for t in robustness.shift_trials(test, (0, 1), spec.wrap_axis)]
  np.testing.assert_array_equal(moved[0], grid_shift.shift_grid(test[0].emg, (0, 1), 1))
  by_hand = evaluate.score([_predict_from_mean_column(x) for x in moved], test,
                           spec.num_classes, windows)
  assert results[1]['frame_accuracy'] == by_hand['frame_accuracy']


def test_parse_shifts_and_range():
  assert robustness.parse_shifts('0:0,1:0,-1:0,1:0') == [(0, 0), (1, 0), (-1, 0)]
  assert robustness.parse_shifts([(0, 2), ('1', '-1')]) == [(0, 2), (1, -1)]
  assert robustness.parse_shifts(()) == []
  assert robustness.shift_range(1, 0) == [(-1, 0), (0, 0), (1, 0)]
  import pytest
  with pytest.raises(ValueError, match=r'eval\.shifts.*1\.5'):
    robustness.parse_shifts(['1.5:0'])


def _fake(shifts, base):
  return [{'shift': list(s), 'frame_accuracy': base - 0.1 * abs(s[0]) - 0.1 * abs(s[1]),
           'vote_accuracy': {'1': base, '150': min(1.0, base + 0.1)}} for s in shifts]


def test_plot_writes_png(tmp_path):
  one_axis = [(-2, 0), (-1, 0), (0, 0), (1, 0), (2, 0)]
  path = robustness_plot.accuracy_vs_shift(_fake(one_axis, 0.8), tmp_path / 'rows.png')
  both = [(0, 0), (1, 1), (-1, 2)]
  path2 = robustness_plot.accuracy_vs_shift(
      {'none': _fake(both, 0.7), 'align': _fake(both, 0.9)}, tmp_path / 'both.png', title='t')
  for p in (path, path2):
    with open(p, 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert os.path.getsize(p) > 1000
