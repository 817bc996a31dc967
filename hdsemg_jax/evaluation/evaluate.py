"""Scores a trained model on test trials: per-frame metrics and majority votes."""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import numpy as np

from hdsemg_jax.data.trials import Trial
from hdsemg_jax.evaluation import metrics, voting


def predict_frames(predict: Callable[[np.ndarray], jax.Array], frames: np.ndarray,
                   batch_size: int) -> np.ndarray:
  """Predicted classes of ``frames`` in fixed-size batches (the last one zero-padded).

  One batch shape means one compilation; padded rows are dropped, so no frame is
  lost or counted twice. A data-parallel ``predict`` (`parallel.Plan.predictor`)
  splits each batch over the devices, so ``batch_size`` must divide by their number.
  """
  n = len(frames)
  padded = -(-n // batch_size) * batch_size
  x = np.zeros((padded, *frames.shape[1:]), frames.dtype)
  x[:n] = frames
  out = [np.asarray(predict(x[i:i + batch_size])) for i in range(0, padded, batch_size)]
  return np.concatenate(out)[:n] if out else np.zeros((0,), np.int32)


def predict_trials(predict: Callable[[np.ndarray], jax.Array], trials: Sequence[Trial],
                   batch_size: int) -> list[np.ndarray]:
  """Per-frame predictions of each trial; frames labelled -1 get -1 and are not run."""
  usable = [t.label >= 0 for t in trials]
  frames = np.concatenate([t.emg[u] for t, u in zip(trials, usable)])
  flat = predict_frames(predict, frames, batch_size)
  out, offset = [], 0
  for t, u in zip(trials, usable):
    p = np.full(t.label.shape, -1, np.int32)
    p[u] = flat[offset:offset + int(u.sum())]
    offset += int(u.sum())
    out.append(p)
  return out


def score(predictions: Sequence[np.ndarray], trials: Sequence[Trial], num_classes: int,
          vote_windows: Sequence[int]) -> dict:
  """The results-row metrics of one fold and seed."""
  labels = [t.label for t in trials]
  confusion = metrics.confusion_matrix(np.concatenate(labels), np.concatenate(predictions),
                                       num_classes)
  return {
      'frame_accuracy': metrics.frame_accuracy(confusion),
      'balanced_accuracy': metrics.balanced_accuracy(confusion),
      'vote_accuracy': {
          str(w): voting.majority_vote_accuracy(list(predictions), labels, int(w), num_classes)
          for w in vote_windows},
      'confusion_matrix': confusion.tolist(),
  }
