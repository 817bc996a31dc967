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

False activations during rest (with ``rest_class``). A user at rest sees the
decoder fail as the prosthesis twitching: a gesture switched on for a while and
off again. A per-frame error rate cannot say how often that happens (at 1000 Hz,
one 200 ms twitch is 200 wrong frames, and "wrong frames per minute" depends on
the rate), so the measure counts onsets. Only usable rest frames count: frames
labelled ``rest_class``; -1 frames and gesture frames are ignored. For a decision
sequence (the trailing votes at window w; w = 1 gives the per-frame classes), a
*false activation* is the onset of a maximal run of consecutive rest frames of
one trial whose decision is not ``rest_class``:

* a run carried over consecutive rest frames counts once, however long;
* a run ends at any frame that is not a rest frame (a -1 frame, a label change)
  even where the decision stays wrong, so the same wrong decision on the rest
  frames after it is a new onset (the frames in between are not scored, and a
  rest segment is a separate period of rest);
* a run already under way at the first rest frame of a segment (or trial) counts
  as an onset: the user starts resting with a gesture switched on;
* runs never continue from one trial into the next (trials are separate
  recordings).

Pooled over the trials: ``rest_minutes`` = rest frames / sampling rate / 60,
false activations per minute = onsets / rest minutes, and the rest false
fraction = rest frames decided as non-rest / rest frames (how long the wrong
gestures last, beside how often they start). Both are NaN with no rest frames.
"""

from __future__ import annotations

import dataclasses
import math
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


@dataclasses.dataclass(frozen=True)
class RestCounts:
  """Rest frames and their false activations, of one trial or summed over trials.

  Kept as counts so that trials pool by adding (`__add__`) before any rate is taken.

  Attributes:
    onsets: false activations (onsets of runs of non-rest decisions on rest frames).
    rest_frames: frames labelled with the rest class.
    false_frames: rest frames whose decision is not the rest class.
  """
  onsets: int = 0
  rest_frames: int = 0
  false_frames: int = 0

  def __add__(self, other: 'RestCounts') -> 'RestCounts':
    return RestCounts(self.onsets + other.onsets, self.rest_frames + other.rest_frames,
                      self.false_frames + other.false_frames)

  def rest_minutes(self, sampling_rate_hz: float) -> float:
    return self.rest_frames / _checked_rate(sampling_rate_hz) / 60.0

  def per_minute(self, sampling_rate_hz: float) -> float:
    """False activations per minute of rest; NaN without rest frames."""
    minutes = self.rest_minutes(sampling_rate_hz)
    return self.onsets / minutes if self.rest_frames else float('nan')

  def false_fraction(self) -> float:
    """Fraction of rest frames decided as non-rest; NaN without rest frames."""
    return self.false_frames / self.rest_frames if self.rest_frames else float('nan')


def _checked_rate(sampling_rate_hz: float) -> float:
  rate = float(sampling_rate_hz)
  if not (math.isfinite(rate) and rate > 0):
    raise ValueError(f'the sampling rate must be positive and finite; got {sampling_rate_hz!r}.')
  return rate


def rest_counts(decisions: np.ndarray, labels: np.ndarray, rest_class: int) -> RestCounts:
  """`RestCounts` of one trial: its per-frame ``decisions`` against its ``labels`` (both (T,)).

  See the module docstring for the definition of an onset.
  """
  decisions, labels = np.asarray(decisions), np.asarray(labels)
  if decisions.ndim != 1 or decisions.shape != labels.shape:
    raise ValueError(f'decisions and labels must be one trial\'s (T,) arrays of equal length; '
                     f'got {decisions.shape} and {labels.shape}.')
  rest = labels == rest_class
  wrong = rest & (decisions != rest_class)
  # An onset is a wrong rest frame whose previous frame is not one (or that starts the
  # trial); a -1 frame or another label is never a wrong rest frame, so it ends a run.
  onsets = wrong & ~np.concatenate([[False], wrong[:-1]])
  return RestCounts(int(onsets.sum()), int(rest.sum()), int(wrong.sum()))


def false_activations(decisions: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                      rest_class: int, sampling_rate_hz: float) -> dict[str, Any]:
  """False activations during rest, pooled over trials (see the module docstring).

  Args:
    decisions: per trial, the decided class of every frame, (T,) each.
    labels: per trial, every frame's label (-1: unusable), (T,) each.
    rest_class: the class index of rest.
    sampling_rate_hz: frames per second, to turn rest frames into minutes.

  Returns:
    ``{'false_activations': onsets, 'rest_frames', 'rest_minutes',
    'false_activations_per_minute', 'rest_false_fraction'}``; the last two NaN
    without rest frames.

  Raises:
    ValueError: different numbers of trials, a trial whose arrays differ in
      shape, or a sampling rate that is not positive.
  """
  if len(decisions) != len(labels):
    raise ValueError(f'{len(decisions)} trials of decisions but {len(labels)} of labels.')
  rate = _checked_rate(sampling_rate_hz)
  counts = sum((rest_counts(d, l, rest_class) for d, l in zip(decisions, labels)), RestCounts())
  return {
      'false_activations': counts.onsets,
      'rest_frames': counts.rest_frames,
      'rest_minutes': counts.rest_minutes(rate),
      'false_activations_per_minute': counts.per_minute(rate),
      'rest_false_fraction': counts.false_fraction(),
  }


def online_scores(model_or_predict: Any, raw_trials: Sequence[Trial],
                  conditioning: filters_lib.Conditioning, windows: Iterable[int],
                  chunk_size: int, num_classes: int, rest_class: int | None = None,
                  sampling_rate_hz: float | None = None) -> dict[str, Any]:
  """Online accuracies (and false activations) of a model on unfiltered test trials.

  See the module docstring for the definitions.

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
    rest_class: the class index of rest; when given, false activations during rest
      are also counted for the vote at every window (None: not counted, and the
      result has none of their keys).
    sampling_rate_hz: the recordings' rate, to count rest in minutes; default the
      conditioning's. Needed only with ``rest_class``.

  Returns:
    ``{'frame_accuracy', 'vote_accuracy': {str(w): accuracy}, 'frames': usable frames
    scored, 'trials', 'chunk_size', 'filter_mode': 'causal', 'train_filter_mode'}``;
    accuracies are NaN when no frame is usable. With ``rest_class`` also
    ``'rest_class'``, ``'rest_minutes'`` and, each ``{str(w): value}``,
    ``'false_activations'`` (onsets), ``'false_activations_per_minute'`` and
    ``'rest_false_fraction'``; the last two are NaN without rest frames. Window 1
    gives the per-frame classes' figures.

  Raises:
    ValueError: a bad filter chain or mode, window, chunk size, rest class, no
      sampling rate (or one differing from the conditioning's) with a rest class,
      or a trial whose grid differs from the first's.
  """
  windows = [int(w) for w in windows]
  if any(w < 1 for w in windows):
    raise ValueError(f'eval.vote_windows must be positive; got {windows}.')
  if rest_class is not None:
    rest_class = int(rest_class)
    if not 0 <= rest_class < num_classes:
      raise ValueError(f'rest_class must be a class index below {num_classes}; got {rest_class}.')
    sampling_rate_hz = _rest_rate(sampling_rate_hz, conditioning)
  rest = {w: RestCounts() for w in windows}
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
        if rest_class is not None:
          rest[w] += rest_counts(votes, trial.label, rest_class)
  accuracy: Callable[[int], float] = lambda c: c / scored if scored else float('nan')
  scores = {
      'frame_accuracy': accuracy(frame_correct),
      'vote_accuracy': {str(w): accuracy(correct[w]) for w in windows},
      'frames': scored,
      'trials': len(raw_trials),
      'chunk_size': int(chunk_size),
      'filter_mode': 'causal',
      'train_filter_mode': conditioning.mode,
  }
  if rest_class is not None:
    # From the labels: the same rest frames for every window, and there without windows.
    rest_frames = sum(int(np.sum(t.label == rest_class)) for t in raw_trials)
    scores.update({
        'rest_class': rest_class,
        'rest_minutes': RestCounts(rest_frames=rest_frames).rest_minutes(sampling_rate_hz),
        'false_activations': {str(w): rest[w].onsets for w in windows},
        'false_activations_per_minute': {str(w): rest[w].per_minute(sampling_rate_hz)
                                         for w in windows},
        'rest_false_fraction': {str(w): rest[w].false_fraction() for w in windows},
    })
  return scores


def _rest_rate(sampling_rate_hz: float | None,
               conditioning: filters_lib.Conditioning) -> float:
  """The rate that turns rest frames into minutes: the one given, else the conditioning's."""
  carried = conditioning.sampling_rate_hz
  if sampling_rate_hz is None:
    if carried is None:
      raise ValueError('counting false activations per minute needs the sampling rate: pass '
                       'sampling_rate_hz (the conditioning carries none).')
    return carried
  rate = _checked_rate(sampling_rate_hz)
  if carried is not None and rate != carried:
    raise ValueError(f'sampling_rate_hz={rate:g} differs from the conditioning\'s {carried:g} Hz.')
  return rate
