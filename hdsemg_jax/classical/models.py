"""A name-keyed registry of scikit-learn classifiers for windowed features.

Every model is deterministic: closed-form or deterministic solvers, and the one
solver with a random state (liblinear's, for ``linear_svm``) has it fixed, so
seeds never change a fitted model.

* ``lda``: linear discriminant analysis, least-squares solver with shrinkage of
  the shared covariance (stable with hundreds of correlated features): Ledoit-Wolf
  (``'auto'``, the default) or a fixed amount in [0, 1]; the shrinkage
  standardises internally, and LDA's decisions are invariant to feature scaling,
  so no scaler;
* ``logreg``: multinomial logistic regression (L2, inverse strength ``C``,
  L-BFGS) on standardised features;
* ``linear_svm``: one-vs-rest linear SVM (squared hinge, L2, ``C``; liblinear's
  primal solver) on standardised features;
* ``chance``: the majority class of the training frames, whatever the input.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn import discriminant_analysis, dummy, linear_model, pipeline, preprocessing, svm

CHANCE = 'chance'


def parse_shrinkage(value: str, key: str = 'shrinkage') -> str | float:
  """LDA's shrinkage from text: ``'auto'`` (Ledoit-Wolf) or a number in [0, 1]."""
  text = str(value).strip()
  if text == 'auto':
    return text
  try:
    number = float(text)
  except ValueError:
    number = float('nan')
  if not 0.0 <= number <= 1.0:
    raise ValueError(f"{key}: {value!r} is not 'auto' or a number in [0, 1].")
  return number


def _lda(C: float, shrinkage: str = 'auto') -> pipeline.Pipeline:
  del C  # LDA is regularised by its shrinkage.
  return pipeline.make_pipeline(discriminant_analysis.LinearDiscriminantAnalysis(
      solver='lsqr', shrinkage=parse_shrinkage(shrinkage)))


def _logreg(C: float) -> pipeline.Pipeline:
  return pipeline.make_pipeline(
      preprocessing.StandardScaler(),
      linear_model.LogisticRegression(C=C, solver='lbfgs', max_iter=1000, tol=1e-4))


def _linear_svm(C: float) -> pipeline.Pipeline:
  return pipeline.make_pipeline(
      preprocessing.StandardScaler(),
      svm.LinearSVC(C=C, dual=False, max_iter=5000, tol=1e-4, random_state=0))


def _chance(C: float) -> pipeline.Pipeline:
  del C
  return pipeline.make_pipeline(dummy.DummyClassifier(strategy='most_frequent'))


MODELS: dict[str, Callable[[float], pipeline.Pipeline]] = {
    'lda': _lda, 'logreg': _logreg, 'linear_svm': _linear_svm, CHANCE: _chance}


def is_classical(name: str) -> bool:
  """Whether ``model.name`` is fitted here rather than trained as a network."""
  return name in MODELS


def build(name: str, C: float = 1.0, shrinkage: str = 'auto') -> pipeline.Pipeline:
  """The unfitted pipeline of ``name``; an unknown name is an error naming the known ones.

  ``C`` regularises ``logreg`` and ``linear_svm``, ``shrinkage`` (text: ``'auto'`` or
  a number in [0, 1]) ``lda``.
  """
  if name not in MODELS:
    raise ValueError(f'model.name={name!r} is not a classical model (known: '
                     f'{", ".join(MODELS)}).')
  if not float(C) > 0:
    raise ValueError(f'model.C must be positive; got {C}.')
  if name == 'lda':
    return _lda(float(C), shrinkage)
  return MODELS[name](float(C))


def num_params(fitted: pipeline.Pipeline) -> int:
  """Fitted coefficients and intercepts of the final linear model (0 for ``chance``).

  Standardisation's means and scales are preprocessing, not counted.
  """
  final = fitted[-1]
  if not hasattr(final, 'coef_'):
    return 0
  return int(np.size(final.coef_) + np.size(getattr(final, 'intercept_', ())))


def flops_per_decision(fitted: pipeline.Pipeline, num_features: int) -> int:
  """Operations of one decision after feature extraction: scaling and the linear scores.

  Standardisation is a subtraction and a multiplication per feature; the scores
  are a multiply-add per coefficient (2 each) plus the intercepts; the argmax is
  not counted. ``chance`` costs nothing.
  """
  final = fitted[-1]
  if not hasattr(final, 'coef_'):
    return 0
  scaler = 2 * num_features if len(fitted) > 1 else 0
  return int(scaler + 2 * np.size(final.coef_) + np.size(getattr(final, 'intercept_', ())))
