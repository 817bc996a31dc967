"""Per-frame metrics over usable frames (label >= 0)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
  """Counts, rows = true class, columns = predicted class; frames labelled -1 are skipped."""
  labels, predictions = np.asarray(labels), np.asarray(predictions)
  usable = labels >= 0
  flat = labels[usable] * num_classes + predictions[usable]
  return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def frame_accuracy(confusion: np.ndarray) -> float:
  total = confusion.sum()
  return float(np.trace(confusion) / total) if total else float('nan')


def balanced_accuracy(confusion: np.ndarray) -> float:
  """Mean per-class recall over the classes present in the labels."""
  support = confusion.sum(axis=1)
  present = support > 0
  if not present.any():
    return float('nan')
  return float(np.mean(np.diag(confusion)[present] / support[present]))
