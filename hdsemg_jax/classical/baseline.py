"""Classical baselines: linear classifiers on windowed time-domain features, and chance.

``fit_and_score(train_trials, test_trials, num_classes, settings, windows)``
fits and scores one fold; it returns the metrics of
`hdsemg_jax.evaluation.evaluate.score` plus decision accuracies and costs, ready
for a results row. Models (``model.name``): ``lda``, ``logreg``, ``linear_svm``
(`classical.models`) and ``chance``.

Decisions. For every window size ``w`` of ``windows`` (``eval.vote_windows``) a
model of its own is fitted on the features of ``w``-frame training windows and
decides every ``w``-frame test window of `classical.decisions` (the vote's
windows): ``decision_accuracy[str(w)]``. The model of ``w = 1`` (always fitted)
classifies single frames; its per-frame predictions give ``frame_accuracy``,
``balanced_accuracy``, ``confusion_matrix`` and ``vote_accuracy`` exactly as a
network's do (`evaluate.score`: majority votes over ``w`` per-frame
predictions), so ``decision_accuracy['1'] == vote_accuracy['1'] ==``
``frame_accuracy``.

Training windows: those of `decisions.windows` on the training trials (ending
at usable frames, never across a label change), every
``settings.train_window_stride``-th of each trial. ``chance`` predicts the most frequent label among all usable
training frames (ties: the smallest class) and computes no features.

Settings (`ClassicalSettings`, from the config's ``model.*`` keys): with
``model.selection.inner_folds >= 2`` (the default), every window size's features,
threshold and regularisation are selected by inner cross-validation over the
training trials (`classical.selection`), and ``selection`` in the result says
what was chosen and its inner score. With ``inner_folds = 0`` the fixed
settings are used: ``td_features`` (names of `classical.features.FEATURES`),
``zc_threshold`` and ``ssc_threshold`` (fractions of the training signal's RMS,
see `classical.features`), ``C`` (inverse L2 strength of ``logreg`` and
``linear_svm``; ``lda`` estimates its shrinkage, Ledoit-Wolf). Seeds never change
a result.

Costs: ``num_params`` counts one window size's fitted coefficients and
intercepts (every window size's model has the same size);
``flops_per_decision[str(w)]`` counts one direct evaluation of the features
over a ``w``-frame window (`features.flops_per_window`) plus standardisation and
the linear scores (`models.flops_per_decision`). ``train_seconds`` covers feature
extraction and fitting of all window sizes. ``inference_seconds_per_frame`` is
the time of features plus prediction of the one-frame model over the usable
test frames, per frame; ``inference_seconds_per_decision[str(w)]`` the same per
``w``-frame window (batched over each trial with running sums, so not the
latency of one isolated decision).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Sequence

import numpy as np

from hdsemg_jax.classical import decisions, features, models, selection as selection_lib
from hdsemg_jax.classical.models import CHANCE
from hdsemg_jax.data.trials import Trial
from hdsemg_jax.evaluation import evaluate

DECISION_RULE = 'window'


@dataclasses.dataclass(frozen=True)
class ClassicalSettings:
  """A classical model and its features (the config's ``model.*`` keys); checked on creation.

  Attributes:
    name: a model of `classical.models.MODELS`.
    td_features: feature names of `features.FEATURES`.
    zc_threshold, ssc_threshold: fractions of the training signal's RMS.
    C: inverse L2 strength (``logreg``, ``linear_svm``).
    train_window_stride: every n-th training window of each trial.
    selection: the inner cross-validation that replaces the four above where on.
  """
  name: str
  td_features: tuple[str, ...]
  zc_threshold: float
  ssc_threshold: float
  C: float
  train_window_stride: int
  selection: selection_lib.SelectionSettings

  def __post_init__(self):
    if not isinstance(self.selection, selection_lib.SelectionSettings):
      raise TypeError('selection must be a classical.selection.SelectionSettings.')
    models.build(self.name, self.C)  # An unknown name or a bad C fails here.
    object.__setattr__(self, 'td_features', features.check_features(self.td_features))
    for key in ('zc_threshold', 'ssc_threshold'):
      value = getattr(self, key)
      if isinstance(value, bool) or not (isinstance(value, (int, float)) and value >= 0
                                         and math.isfinite(value)):
        raise ValueError(f'model.{key} must be a finite number >= 0; got {value!r}.')
    if isinstance(self.train_window_stride, bool) or not (
        isinstance(self.train_window_stride, int) and self.train_window_stride >= 1):
      raise ValueError(f'model.train_window_stride must be a whole number >= 1; got '
                       f'{self.train_window_stride!r}.')


class _Extractor:
  """Features of the windows of trials, with one window size's settings."""

  def __init__(self, names: Sequence[str], zc: float, ssc: float, scale: float):
    self.names = tuple(names)
    self.zc, self.ssc, self.scale = float(zc), float(ssc), scale

  def __call__(self, trial: Trial, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    return features.window_features(trial.emg, trial.label >= 0, starts, stops, self.names,
                                    zc_threshold=self.zc, ssc_threshold=self.ssc,
                                    scale=self.scale)


def _setting(settings: ClassicalSettings, train_trials: Sequence[Trial], window: int,
             scale: float) -> tuple[_Extractor, Any, dict[str, Any] | None]:
  """The features and unfitted model of ``window``-frame decisions, and what selection chose."""
  if not settings.selection.enabled:
    return (_Extractor(settings.td_features, settings.zc_threshold, settings.ssc_threshold,
                       scale), models.build(settings.name, settings.C), None)
  chosen, score, folds, unit = selection_lib.select(settings.name, train_trials, window,
                                          settings.selection, settings.train_window_stride, scale)
  threshold = 0.0 if chosen.threshold is None else chosen.threshold
  return (_Extractor(chosen.td_features, threshold, threshold, scale),
          chosen.build(settings.name), {**chosen.describe(settings.name), 'inner_score': score,
                                         'inner_folds': folds, 'inner_unit': unit})


def _training_set(extract: _Extractor, trials: Sequence[Trial], window: int,
                  stride: int) -> tuple[np.ndarray, np.ndarray]:
  xs, ys = [], []
  for t in trials:
    starts, stops = decisions.training_windows(t.label, window, stride)
    if starts.size:
      xs.append(extract(t, starts, stops))
      ys.append(decisions.window_labels(t.label, starts))
  if not xs:
    raise ValueError('the training trials hold no usable frames to fit on.')
  return np.concatenate(xs), np.concatenate(ys)


def _majority(trials: Sequence[Trial], num_classes: int) -> int:
  labels = np.concatenate([t.label[t.label >= 0] for t in trials]) if trials else np.zeros(0)
  if labels.size == 0:
    raise ValueError('the training trials hold no usable frames to fit on.')
  return int(np.argmax(np.bincount(labels.astype(np.int64), minlength=num_classes)))


def fit_and_score(train_trials: Sequence[Trial], test_trials: Sequence[Trial], num_classes: int,
                  settings: ClassicalSettings, windows: Sequence[int]) -> dict[str, Any]:
  """Fits ``settings.name`` on ``train_trials`` and scores it on ``test_trials``.

  Returns `evaluate.score`'s keys (``frame_accuracy``, ``balanced_accuracy``,
  ``vote_accuracy``, ``confusion_matrix``) plus ``decision_accuracy``
  ({str(w): accuracy}), ``decision_rule`` (``'window'``), ``num_params``,
  ``flops_per_decision`` ({str(w): operations}), ``train_seconds``,
  ``inference_seconds_per_frame``, ``inference_seconds_per_decision``
  ({str(w): seconds}), ``num_train_windows`` ({str(w): count}) and ``selection``
  (None, or ``{'inner_folds', 'candidates', 'windows': {str(w): the chosen setting
  and its 'inner_score'}}``, window 1 included).
  """
  name = settings.name
  windows = [int(w) for w in windows]
  if not windows or min(windows) < 1:
    raise ValueError(f'eval.vote_windows must be positive window sizes; got {windows}.')
  fit_windows = sorted({1, *windows})
  test_windows = {w: [decisions.windows(t.label, w) for t in test_trials] for w in fit_windows}
  truth = {w: [decisions.window_labels(t.label, s) for t, (s, _) in zip(test_trials, b)]
           for w, b in test_windows.items()}

  decided: dict[int, list[np.ndarray]] = {}
  infer_seconds: dict[int, float] = {}
  start = time.perf_counter()
  if name == CHANCE:
    majority = _majority(train_trials, num_classes)
    train_seconds = time.perf_counter() - start
    for w in fit_windows:
      start = time.perf_counter()
      decided[w] = [np.full(s.shape, majority, np.int32) for s, _ in test_windows[w]]
      infer_seconds[w] = time.perf_counter() - start
    fitted_params, flops, chosen = 0, {str(w): 0 for w in windows}, None
    num_train_windows = {str(w): int(sum(int(np.sum(t.label >= 0)) for t in train_trials))
                         for w in windows}
  else:
    scale = features.signal_scale(train_trials)
    extract, fitted, selected, num_train_windows = {}, {}, {}, {}
    for w in fit_windows:
      extract[w], model, selected[w] = _setting(settings, train_trials, w, scale)
      x, y = _training_set(extract[w], train_trials, w, settings.train_window_stride)
      fitted[w] = model.fit(x, y)
      num_train_windows[str(w)] = int(len(y))
    train_seconds = time.perf_counter() - start
    for w in fit_windows:
      start = time.perf_counter()
      decided[w] = [fitted[w].predict(extract[w](t, s, e)).astype(np.int32) if s.size else
                    np.zeros(0, np.int32) for t, (s, e) in zip(test_trials, test_windows[w])]
      infer_seconds[w] = time.perf_counter() - start
    num_channels = int(np.prod(train_trials[0].emg.shape[1:]))
    fitted_params = max(models.num_params(m) for m in fitted.values())
    flops = {str(w): features.flops_per_window(extract[w].names, num_channels, w)
             + models.flops_per_decision(fitted[w], len(extract[w].names) * num_channels)
             for w in windows}
    num_train_windows = {str(w): num_train_windows[str(w)] for w in windows}
    chosen = None if not settings.selection.enabled else {
        'inner_folds': settings.selection.inner_folds,  # As configured; each window: as used.
        'candidates': len(selection_lib.candidates(name, settings.selection)),
        'windows': {str(w): selected[w] for w in fit_windows}}

  # Per-frame predictions: the one-frame windows are the usable frames, in order.
  per_frame = []
  for t, d in zip(test_trials, decided[1]):
    p = np.full(t.label.shape, -1, np.int32)
    p[t.label >= 0] = d
    per_frame.append(p)
  scores = evaluate.score(per_frame, test_trials, num_classes, windows)
  num_frames = sum(int(np.sum(t.label >= 0)) for t in test_trials)
  per_decision = {}
  for w in windows:
    count = sum(d.size for d in decided[w])
    per_decision[str(w)] = infer_seconds[w] / count if count else float('nan')
  return {
      **scores,
      'decision_accuracy': {str(w): decisions.accuracy(decided[w], truth[w]) for w in windows},
      'decision_rule': DECISION_RULE,
      'num_params': int(fitted_params),
      'flops_per_decision': flops,
      'train_seconds': round(train_seconds, 3),
      'inference_seconds_per_frame': infer_seconds[1] / num_frames if num_frames else float('nan'),
      'inference_seconds_per_decision': per_decision,
      'num_train_windows': num_train_windows,
      'selection': chosen,
  }
