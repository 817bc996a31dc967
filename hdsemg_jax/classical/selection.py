"""Per-fold model selection of a classical baseline by inner cross-validation over training trials.

A fixed feature set and regularisation flatters or hurts a baseline fold by fold,
so with ``model.selection.inner_folds >= 2`` each decision window's model is
chosen on the fold's training trials only:

* Inner folds are whole trials, never frames, so the windows of one trial never
  straddle inner training and validation (`inner_folds`), and they mirror what the
  outer protocol holds out (``unit``): with ``subject`` (leave-one-subject-out) the
  training subjects are dealt to the inner folds (a setting is chosen for how it
  carries to a subject it was not fitted on: chosen within subjects, a richer
  feature set can win inside them and lose on a new person), with ``session`` the
  training sessions, and with ``trial``, or where the training trials hold fewer
  than two subjects (sessions), trials: grouped by (subject, session, part,
  gesture), the n-th trial of each group in trial order goes to inner fold
  ``n mod k``, so every inner fold holds a share of every group (every gesture of
  one-gesture trials, every session and subject of whole-timeline trials).
* Candidates (`candidates`): every feature set of ``td_feature_sets``; for a set
  with ``zc`` or ``ssc``, every threshold of ``thresholds`` (both thresholds
  take the value); and every regularisation: LDA's shrinkage (``'auto'``:
  Ledoit-Wolf, or a fixed value in [0, 1]) or the inverse L2 strength ``C`` of
  ``logreg`` and ``linear_svm``.
* Score: the pooled accuracy of the decided windows (`classical.decisions`, the
  windows a test fold is scored on) of every inner validation fold, each fitted
  on the other inner folds' training windows. The best candidate wins; ties go to
  the first in grid order (feature sets, thresholds, then regularisation, as
  configured), so the selection is deterministic.

Features are scaled by the outer fold's training signal (`features.signal_scale`
of all training trials: inputs of the training data only). The test trials are
not an argument of anything here.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any, Sequence

import numpy as np
import threadpoolctl

from hdsemg_jax.classical import decisions, features, models
from hdsemg_jax.data.trials import Trial

THRESHOLD_FEATURES = ('zc', 'ssc')
# What inner folds deal out, from the coarsest; a protocol's held-out unit.
UNITS = ('subject', 'session', 'trial')


@dataclasses.dataclass(frozen=True)
class SelectionSettings:
  """``model.selection.*``: the inner folds and the grid; checked on creation.

  Attributes:
    inner_folds: inner folds over the training trials; 0 turns selection off
      (the fixed ``model.td_features``, thresholds and ``C`` are used).
    td_feature_sets: candidate feature sets, each names of `features.FEATURES`.
    thresholds: candidate zc/ssc thresholds (fractions of the training RMS).
    shrinkages: LDA's candidates: ``'auto'`` or a number in [0, 1] (as text).
    Cs: ``logreg``'s and ``linear_svm``'s candidate inverse L2 strengths.
    unit: what the inner folds deal out, one of `UNITS` (the run layer sets the outer
      protocol's held-out unit).
  """
  inner_folds: int
  td_feature_sets: tuple[tuple[str, ...], ...]
  thresholds: tuple[float, ...]
  shrinkages: tuple[str, ...]
  Cs: tuple[float, ...]
  unit: str = 'trial'

  def __post_init__(self):
    if self.unit not in UNITS:
      raise ValueError(f'model.selection.inner_unit={self.unit!r}: expected one of '
                       f'{", ".join(UNITS)} (or auto).')
    if isinstance(self.inner_folds, bool) or not isinstance(self.inner_folds, int) or (
        self.inner_folds < 0 or self.inner_folds == 1):
      raise ValueError(f'model.selection.inner_folds={self.inner_folds!r}: expected 0 (no '
                       'selection) or a whole number >= 2.')
    sets = tuple(features.check_features(s.split(',') if isinstance(s, str) else s)
                 for s in self.td_feature_sets)
    if not sets:
      raise ValueError('model.selection.td_feature_sets: give at least one feature set, e.g. '
                       "'log_rms'.")
    object.__setattr__(self, 'td_feature_sets', sets)
    for key in ('thresholds', 'Cs'):
      values = tuple(getattr(self, key))
      minimum_ok = (lambda v: v >= 0) if key == 'thresholds' else (lambda v: v > 0)
      if not values or not all(not isinstance(v, bool) and isinstance(v, (int, float))
                               and math.isfinite(v) and minimum_ok(v) for v in values):
        raise ValueError(f'model.selection.{key}={values!r}: expected one or more finite '
                         f'numbers {">= 0" if key == "thresholds" else "> 0"}.')
      object.__setattr__(self, key, tuple(float(v) for v in values))
    shrinkages = tuple(str(v) for v in self.shrinkages)
    if not shrinkages:
      raise ValueError("model.selection.shrinkages: give at least one, e.g. 'auto'.")
    for value in shrinkages:
      models.parse_shrinkage(value, 'model.selection.shrinkages')
    object.__setattr__(self, 'shrinkages', shrinkages)

  @property
  def enabled(self) -> bool:
    return self.inner_folds >= 2


@dataclasses.dataclass(frozen=True)
class Candidate:
  """One setting of a classical model: features, their threshold, and regularisation."""
  td_features: tuple[str, ...]
  threshold: float | None  # zc's and ssc's; None when the set has neither.
  regularisation: str | float  # LDA: a shrinkage ('auto' or a number); else C.

  def describe(self, name: str) -> dict[str, Any]:
    """The candidate as a results row records it."""
    key = 'shrinkage' if name == 'lda' else 'C'
    return {'td_features': list(self.td_features), 'threshold': self.threshold,
            key: self.regularisation}

  def build(self, name: str):
    """The unfitted scikit-learn pipeline."""
    if name == 'lda':
      return models.build(name, shrinkage=str(self.regularisation))
    return models.build(name, float(self.regularisation))


def candidates(name: str, settings: SelectionSettings) -> list[Candidate]:
  """The grid of ``name`` (a classical model other than chance), in selection order."""
  regularisation = settings.shrinkages if name == 'lda' else settings.Cs
  out = []
  for names in settings.td_feature_sets:
    thresholds = (settings.thresholds if set(names) & set(THRESHOLD_FEATURES) else (None,))
    out.extend(Candidate(names, t, r) for t in thresholds for r in regularisation)
  return out


def inner_folds(trials: Sequence[Trial], k: int, unit: str = 'trial') -> tuple[list[int], str]:
  """The inner fold (0..k-1) of each trial, and the unit they deal out (see the module doc).

  By ``subject`` or ``session`` where the trials hold at least two: the n-th of them in
  sorted order goes to fold n mod k; otherwise by trial.
  """
  if unit != 'trial':
    key = ((lambda t: (t.subject,)) if unit == 'subject' else
           (lambda t: (t.subject, t.session)))
    units = sorted({key(t) for t in trials})
    if len(units) >= 2:
      return [units.index(key(t)) % k for t in trials], unit
  groups: dict[tuple[Any, ...], list[int]] = collections.defaultdict(list)
  for i, t in enumerate(trials):
    groups[(t.subject, t.session, t.part, t.gesture)].append(i)
  fold = [0] * len(trials)
  for members in groups.values():
    for rank, i in enumerate(sorted(members, key=lambda j: (trials[j].trial, j))):
      fold[i] = rank % k
  return fold, 'trial'


class _Features:
  """Every candidate's features of one window size, for each training trial.

  Per trial, the features that take no threshold are computed once and zc/ssc once
  per threshold, over the trial's training windows and its decided (validation)
  windows together; candidates only pick columns.
  """

  def __init__(self, trials: Sequence[Trial], window: int, stride: int, scale: float,
               thresholds: Sequence[float]):
    self.channels = int(np.prod(trials[0].emg.shape[1:]))
    plain = tuple(n for n in features.FEATURES if n not in THRESHOLD_FEATURES)
    self.blocks: list[dict[str, np.ndarray]] = []  # Per trial: feature name -> (windows, C).
    self.labels: list[np.ndarray] = []
    self.num_train: list[int] = []
    for trial in trials:
      train_starts, train_stops = decisions.training_windows(trial.label, window, stride)
      valid_starts, valid_stops = decisions.windows(trial.label, window)
      starts = np.concatenate([train_starts, valid_starts])
      stops = np.concatenate([train_stops, valid_stops])
      blocks: dict[str, np.ndarray] = {}
      if starts.size:
        usable = trial.label >= 0
        groups = [(plain, 0.0)] + [(THRESHOLD_FEATURES, t) for t in thresholds]
        for names, threshold in groups:
          x = features.window_features(trial.emg, usable, starts, stops, names,
                                       zc_threshold=threshold, ssc_threshold=threshold,
                                       scale=scale)
          for j, name in enumerate(names):
            key = name if name not in THRESHOLD_FEATURES else f'{name}@{threshold}'
            blocks[key] = x[:, j * self.channels:(j + 1) * self.channels]
      self.blocks.append(blocks)
      self.labels.append(decisions.window_labels(trial.label, starts))
      self.num_train.append(int(train_starts.size))

  def pooled(self, which: str, candidate: Candidate, members: Sequence[int]
             ) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of the ``which`` ('train' or 'valid') windows of ``members``."""
    keys = [name if name not in THRESHOLD_FEATURES else f'{name}@{candidate.threshold}'
            for name in candidate.td_features]
    xs, ys = [], []
    for i in members:
      if not self.blocks[i]:
        continue
      rows = slice(0, self.num_train[i]) if which == 'train' else slice(self.num_train[i], None)
      xs.append(np.concatenate([self.blocks[i][k][rows] for k in keys], axis=1))
      ys.append(self.labels[i][rows])
    if not xs:
      return np.zeros((0, len(keys) * self.channels), np.float32), np.zeros(0, np.int32)
    return np.concatenate(xs), np.concatenate(ys)


def select(name: str, train_trials: Sequence[Trial], window: int, settings: SelectionSettings,
           stride: int, scale: float) -> tuple[Candidate, float, int, str]:
  """The best candidate of ``name`` for ``window``-frame decisions, its inner score, the
  number of inner folds and the unit they dealt out.

  Raises:
    ValueError: fewer than two inner folds hold trials (too few training trials).
  """
  k = settings.inner_folds
  fold_of, unit = inner_folds(train_trials, k, settings.unit)
  used = sorted(set(fold_of))
  if len(used) < 2:
    raise ValueError(f'model.selection.inner_folds={k}: the fold\'s {len(train_trials)} training '
                     'trial(s) fill fewer than 2 inner folds; selection needs trials to hold '
                     'out (set model.selection.inner_folds=0 to use the fixed settings).')
  grid = candidates(name, settings)
  # Dozens of small fits: BLAS threads contend more than they help (measured 2.5x slower with
  # 2 threads beside other work on 2 cores), most of all beside other workers.
  with threadpoolctl.threadpool_limits(limits=1, user_api='blas'):
    return (*_select(name, grid, train_trials, fold_of, used, window, stride, scale), unit)


def _select(name: str, grid: Sequence[Candidate], train_trials: Sequence[Trial],
            fold_of: Sequence[int], used: Sequence[int], window: int, stride: int,
            scale: float) -> tuple[Candidate, float, int]:
  table = _Features(train_trials, window, stride, scale,
                    sorted({c.threshold for c in grid if c.threshold is not None}))
  best, best_score = grid[0], -1.0
  for candidate in grid:
    correct = total = 0
    for f in used:
      fit_on = [i for i, g in enumerate(fold_of) if g != f]
      held = [i for i, g in enumerate(fold_of) if g == f]
      x, y = table.pooled('train', candidate, fit_on)
      xv, yv = table.pooled('valid', candidate, held)
      if not len(y) or not len(yv):
        continue
      classes, counts = np.unique(y, return_counts=True)
      if len(classes) < 2 or len(y) <= len(classes):
        # Nothing to discriminate, or too few windows to fit (LDA needs more windows than
        # classes): the candidate decides the most frequent label, as chance would.
        predicted = np.full(yv.shape, classes[np.argmax(counts)])
      else:
        predicted = candidate.build(name).fit(x, y).predict(xv)
      correct += int(np.sum(predicted == yv))
      total += int(yv.size)
    score = correct / total if total else float('nan')
    if score > best_score:
      best, best_score = candidate, score
  return best, float(best_score) if best_score >= 0 else float('nan'), len(used)
