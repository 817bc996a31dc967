"""Online evaluation: test trials replayed through the streaming decoder, chunk by chunk.

Each unfiltered test trial is fed to a fresh `hdsemg_jax.streaming.Decoder` as a
live recording would be: samples in chunks of ``chunk_size`` (the last one
shorter), channels in row-major grid order, filters in their causal form with
state carried across chunks and reset between trials (trials are separate
recordings). The decoder classifies every frame, those labelled -1 included,
since a live decoder cannot know which frames are unusable.

Online accuracy at vote window w. For every usable frame t of a trial (label
>= 0, the frames the offline scores use), the online decision is the majority
class among the predicted classes of the last w frames up to and including t
(frames t-w+1 .. t; fewer at the trial's start), ties to the smallest class.
It is correct when it equals frame t's label. The accuracy is correct
decisions over usable frames, pooled over the trials. w = 1 gives the per-frame
accuracy of the causally filtered stream (``frame_accuracy``).

How this differs from the offline vote (`hdsemg_jax.evaluation.voting`):

* Offline, frames are filtered zero-phase (or causally, with
  ``dataset.filter_mode=causal``) over the whole trial, and a vote is scored
  once per full window of w frames lying inside one segment of a single label
  (a segment shorter than w counts once); a window never crosses a label
  change or a -1 frame, so it never mixes two gestures.
* Online, every usable frame is scored once, with the vote of the w frames that
  have arrived by then. Right after a label change (or the trial start) the
  window still holds frames of the previous segment (or -1 frames), as a live
  decoder's would, so the decision lags the gesture by up to about w / 2
  frames; the filters add their group delay. Offline and online accuracies
  therefore differ even for the same predictions, more so for large w.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np

from hdsemg_jax import streaming
from hdsemg_jax.data.trials import Trial
from hdsemg_jax.preprocessing import filters as filters_lib


def _classifier(model_or_predict: Any) -> streaming.Classify:
  if hasattr(model_or_predict, 'logits_fn') and hasattr(model_or_predict, 'info'):
    return streaming.jax_classifier(model_or_predict)
  if callable(model_or_predict):
    return model_or_predict
  raise TypeError('model_or_predict must be an hdsemg_jax.saved_model.Model or a function '
                  f'frames (N, H, W) -> classes (N,); got {type(model_or_predict).__name__}.')


def replay(decoder: streaming.Decoder, emg: np.ndarray,
           chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
  """(classes, votes) of every frame of one raw recording ``emg`` (T, H, W) fed in chunks.

  The decoder is reset first; the recording is flattened row-major into channels.
  """
  if chunk_size < 1:
    raise ValueError(f'chunk_size must be positive; got {chunk_size}.')
  decoder.reset()
  samples = np.ascontiguousarray(emg.reshape(len(emg), -1))
  classes, votes = [], []
  for start in range(0, len(samples), chunk_size):
    out = decoder.push(samples[start:start + chunk_size])
    classes.append(out.classes)
    votes.append(out.votes)
  if not classes:
    return np.zeros((0,), np.int32), np.zeros((0,), np.int32)
  return np.concatenate(classes), np.concatenate(votes)


def online_scores(model_or_predict: Any, raw_trials: Sequence[Trial],
                  conditioning: filters_lib.Conditioning, windows: Iterable[int],
                  chunk_size: int, num_classes: int) -> dict[str, Any]:
  """Online accuracies of a model on unfiltered test trials (see the module docstring).

  Args:
    model_or_predict: an `hdsemg_jax.saved_model.Model` (run in JAX) or a function
      frames ``(N, H, W)`` float32 -> classes ``(N,)`` (e.g. an exported model's
      ``artifacts.load_artifact(path).classify``).
    raw_trials: the test trials as read, before any filtering.
    conditioning: how the model's training frames were conditioned: the replay
      runs its filters' causal form at its sampling rate; its mode is only
      recorded (``train_filter_mode``): the replay is causal either way.
    windows: the vote windows w (``eval.vote_windows``).
    chunk_size: samples per chunk fed to the decoder.
    num_classes: number of classes.

  Returns:
    ``{'frame_accuracy', 'vote_accuracy': {str(w): accuracy}, 'frames': usable frames
    scored, 'trials', 'chunk_size', 'filter_mode': 'causal', 'train_filter_mode'}``;
    accuracies are NaN when no frame is usable.

  Raises:
    ValueError: a bad filter chain or mode, window, chunk size, or a trial whose
      grid differs from the first's.
  """
  windows = [int(w) for w in windows]
  if any(w < 1 for w in windows):
    raise ValueError(f'eval.vote_windows must be positive; got {windows}.')
  classify = _classifier(model_or_predict)
  correct = {w: 0 for w in windows}
  frame_correct = scored = 0
  if raw_trials:
    grid_shape = tuple(raw_trials[0].emg.shape[1:])
    decoder = streaming.Decoder(classify, grid_shape=grid_shape, num_classes=num_classes,
                                sampling_rate_hz=None, filters=conditioning, window=1)
    for trial in raw_trials:
      if tuple(trial.emg.shape[1:]) != grid_shape:
        raise ValueError(f'trial {trial.id} has a {trial.emg.shape[1:]} grid; the first trial '
                         f'{grid_shape}.')
      classes, _ = replay(decoder, trial.emg, chunk_size)
      usable = trial.label >= 0
      labels = trial.label[usable]
      scored += int(usable.sum())
      frame_correct += int(np.sum(classes[usable] == labels))
      for w in windows:
        # The decoder's own trailing vote, fed the same chunks.
        vote = streaming.TrailingVote(w, num_classes)
        votes = np.concatenate([vote.push(classes[s:s + chunk_size])
                                for s in range(0, len(classes), chunk_size)] or
                               [np.zeros((0,), np.int32)])
        correct[w] += int(np.sum(votes[usable] == labels))
  accuracy: Callable[[int], float] = lambda c: c / scored if scored else float('nan')
  return {
      'frame_accuracy': accuracy(frame_correct),
      'vote_accuracy': {str(w): accuracy(correct[w]) for w in windows},
      'frames': scored,
      'trials': len(raw_trials),
      'chunk_size': int(chunk_size),
      'filter_mode': 'causal',
      'train_filter_mode': conditioning.mode,
  }
