"""Majority voting and per-frame metrics on hand-made predictions with known answers."""

import numpy as np
import pytest

from hdsemg_jax.evaluation import metrics, voting


def test_segments_split_on_label_changes_and_skip_unused_frames():
  labels = np.array([0, 0, -1, -1, 0, 1, 1, -1, 2])
  assert list(voting.segments(labels)) == [(0, 2), (4, 5), (5, 7), (8, 9)]


def test_windows_vote_with_ties_to_the_smallest_class():
  # Windows of 2 over [1, 0, 2, 2]: {1,0} tie -> 0, {0,2} tie -> 0, {2,2} -> 2.
  assert voting.window_votes(np.array([1, 0, 2, 2]), 2, 3).tolist() == [0, 0, 2]


def test_majority_vote_counts_every_full_window():
  labels = np.array([1] * 5)
  predictions = np.array([1, 0, 1, 0, 0])
  # Windows of 3: [1,0,1]->1 ok, [0,1,0]->0, [1,0,0]->0: 1 of 3.
  assert voting.majority_vote_counts(predictions, labels, 3, 2) == (1, 3)
  assert voting.majority_vote_counts(predictions, labels, 1, 2) == (2, 5)


def test_short_segment_counts_as_one_window():
  labels = np.array([2, 2, 2])
  assert voting.majority_vote_counts(np.array([2, 1, 2]), labels, 150, 3) == (1, 1)
  assert voting.majority_vote_counts(np.array([1, 2, 0]), labels, 150, 3) == (0, 1)  # tie -> 0


def test_unused_frames_never_vote_and_segments_pool():
  labels = np.array([0, 0, 0, -1, -1, 1, 1, 1, 1])
  # The -1 frames predicted 1 must not help segment 0; segment 1 has 2 windows of 3.
  predictions = np.array([0, 1, 1, 1, 1, 1, 0, 1, 1])
  assert voting.majority_vote_counts(predictions, labels, 3, 2) == (2, 3)
  acc = voting.majority_vote_accuracy([predictions, np.array([0, 0])], [labels, np.array([0, 0])],
                                      3, 2)
  assert acc == pytest.approx(3 / 4)


def test_confusion_and_balanced_accuracy():
  labels = np.array([0, 0, 0, 1, -1, 2])
  predictions = np.array([0, 0, 1, 1, 2, 0])
  confusion = metrics.confusion_matrix(labels, predictions, 3)
  assert confusion.tolist() == [[2, 1, 0], [0, 1, 0], [1, 0, 0]]
  assert metrics.frame_accuracy(confusion) == pytest.approx(3 / 5)
  assert metrics.balanced_accuracy(confusion) == pytest.approx((2 / 3 + 1 + 0) / 3)
