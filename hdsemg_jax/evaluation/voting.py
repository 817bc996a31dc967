"""Majority voting over sliding windows of consecutive frames.

A segment is a run of consecutive usable frames (label >= 0) with one true
label. Within a segment of n frames every full window of w frames (stride 1,
n - w + 1 windows) votes with the hard per-frame predictions; the window's
answer is its most frequent class, ties going to the smallest class index. A
segment shorter than w counts as one window over the whole segment. Accuracy is
correct windows over all windows, pooled over segments. Frames labelled -1 never
vote and are never scored.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np


def segments(labels: np.ndarray) -> Iterator[tuple[int, int]]:
  """``(start, stop)`` of each run of equal, usable (>= 0) labels."""
  labels = np.asarray(labels)
  if labels.size == 0:
    return
  change = np.flatnonzero(np.diff(labels) != 0) + 1
  starts = np.concatenate([[0], change])
  stops = np.concatenate([change, [labels.size]])
  for start, stop in zip(starts, stops):
    if labels[start] >= 0:
      yield int(start), int(stop)


def window_votes(predictions: np.ndarray, window: int, num_classes: int) -> np.ndarray:
  """The majority class of every full window of ``window`` frames (one if fewer frames)."""
  predictions = np.asarray(predictions)
  one_hot = np.zeros((predictions.size + 1, num_classes), np.int64)
  one_hot[np.arange(1, predictions.size + 1), predictions] = 1
  counts = np.cumsum(one_hot, axis=0)
  w = min(window, predictions.size)
  in_window = counts[w:] - counts[:-w]
  return np.argmax(in_window, axis=1)  # argmax takes the first maximum: the smallest class.


def majority_vote_counts(predictions: np.ndarray, labels: np.ndarray, window: int,
                         num_classes: int) -> tuple[int, int]:
  """(correct windows, all windows) of one trial's frames."""
  if window < 1:
    raise ValueError(f'eval.vote_windows must be positive; got {window}.')
  predictions, labels = np.asarray(predictions), np.asarray(labels)
  if predictions.shape != labels.shape:
    raise ValueError(f'predictions {predictions.shape} and labels {labels.shape} differ in shape.')
  correct = total = 0
  for start, stop in segments(labels):
    votes = window_votes(predictions[start:stop], window, num_classes)
    correct += int(np.sum(votes == labels[start]))
    total += votes.size
  return correct, total


def majority_vote_accuracy(predictions: list[np.ndarray], labels: list[np.ndarray], window: int,
                           num_classes: int) -> float:
  """Windowed majority-vote accuracy pooled over the segments of several trials."""
  correct = total = 0
  for p, y in zip(predictions, labels, strict=True):
    c, t = majority_vote_counts(p, y, window, num_classes)
    correct, total = correct + c, total + t
  return correct / total if total else float('nan')
