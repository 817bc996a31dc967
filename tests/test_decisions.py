"""The windows a windowed classifier decides: the vote's windows, on hand-made labels."""

import numpy as np
import pytest

from hdsemg_jax.classical import decisions
from hdsemg_jax.evaluation import voting

# Unusable, a 5-frame segment of 0, a 2-frame segment of 1 (shorter than 3), unusable,
# a 4-frame segment of 2.
LABELS = np.array([-1, 0, 0, 0, 0, 0, 1, 1, -1, 2, 2, 2, 2], np.int32)


def test_windows_of_a_hand_made_trial():
  starts, stops = decisions.windows(LABELS, 3)
  assert list(zip(starts.tolist(), stops.tolist())) == [
      (1, 4), (2, 5), (3, 6),  # Every full window of segment 0, ending at frames 3, 4, 5.
      (6, 8),  # The short segment is one window over all of it.
      (9, 12), (10, 13)]
  assert decisions.window_labels(LABELS, starts).tolist() == [0, 0, 0, 1, 2, 2]
  one = decisions.windows(LABELS, 1)
  assert one[0].tolist() == np.flatnonzero(LABELS >= 0).tolist()
  assert np.all(one[1] - one[0] == 1)
  assert decisions.windows(np.full(4, -1), 3)[0].size == 0


def test_training_windows_take_every_stride_th_window():
  starts, stops = decisions.training_windows(LABELS, 3, 2)
  assert list(zip(starts.tolist(), stops.tolist())) == [(1, 4), (3, 6), (9, 12)]
  with pytest.raises(ValueError, match='model.train_window_stride'):
    decisions.training_windows(LABELS, 3, 0)
  with pytest.raises(ValueError, match='eval.vote_windows'):
    decisions.windows(LABELS, 0)


def test_accuracy_of_known_decisions():
  starts, _ = decisions.windows(LABELS, 3)
  truth = decisions.window_labels(LABELS, starts)
  decided = np.array([0, 1, 0, 1, 2, 0])  # Four of six right.
  assert decisions.accuracy([decided], [truth]) == pytest.approx(4 / 6)
  assert decisions.accuracy([decided, np.array([1])], [truth, np.array([1])]) == pytest.approx(5 / 7)
  assert np.isnan(decisions.accuracy([], []))


@pytest.mark.parametrize('window', [1, 2, 3, 5, 150])
def test_same_windows_as_the_vote(window):
  rng = np.random.default_rng(window)
  for _ in range(20):
    labels = np.repeat(rng.integers(-1, 3, 8), rng.integers(1, 9, 8)).astype(np.int32)
    predictions = np.where(labels >= 0, rng.integers(0, 3, labels.size), -1)
    correct, total = voting.majority_vote_counts(predictions, labels, window, 3)
    starts, stops = decisions.windows(labels, window)
    assert starts.size == total
    # Deciding each window by the majority of its frames' predictions is the vote exactly.
    majority = [np.argmax(np.bincount(predictions[s:e], minlength=3))
                for s, e in zip(starts, stops)]
    truth = decisions.window_labels(labels, starts)
    assert int(np.sum(np.array(majority) == truth)) == correct
    # Windows never cross a label change or an unusable frame.
    for s, e in zip(starts, stops):
      assert np.all(labels[s:e] == labels[s]) and labels[s] >= 0
