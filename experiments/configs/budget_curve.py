r"""All-ConvNet's accuracy against the training frames it sees: where the budget stops paying.

  python -m experiments.budget_curve --config=experiments/configs/budget_curve.py:flexemg \
      --config.dataset.manual_dir=../shared/data/flexemg --workdir=workdirs/budget_flexemg

A suite (`experiments/configs/compare_models.py`, same keys) of one model at several
training budgets: ``all_convnet@<schedule>-s<stride>`` trains on every
``<stride>``-th usable training frame for the suite's ``train.epochs`` (batch and
learning rate unchanged), with the learning-rate schedule ``step`` (the authors'
tenfold drops, placed at the same fractions of however many steps the budget has)
or ``cosine``. Frames seen = usable training frames / stride x epochs; the budget
report (`hdsemg_jax.reporting.budget`) plots the suite's metric and the per-frame
accuracy against it, per protocol, so the comparison's CPU sizing can be chosen
where the curve flattens. One seed by default: the curve's steps are compared at
a fixed seed and folds, not the models.

The flexemg ladder: strides 64, 32 (the comparison's budget before this curve), 16,
8, 4 with ``step``, and 32, 8 with ``cosine``; intra-session and
leave-one-subject-out (session 1, as the comparison). RESULTS.md, "The training
budget", has the curve this gave.
"""

import ml_collections

from experiments.configs import compare_models

STEP_STRIDES = (64, 32, 16, 8, 4)
COSINE_STRIDES = (32, 8)


def label(schedule: str, stride: int) -> str:
  """The suite label of All-ConvNet at one budget."""
  return f'all_convnet@{schedule}-s{stride}'


def get_config(dataset: str = 'synthetic_hdsemg/small') -> ml_collections.ConfigDict:
  config = compare_models.get_config(dataset)
  # The curve's own sizing, fixed here so that it does not follow the suite's (which it
  # chose): 4 epochs of 64 from compare_models, each variant's stride below, and the
  # classical key at its default (networks ignore it, but it is part of each run's config).
  config.train.epochs, config.train.batch_size = 4, 64
  config.model.train_window_stride = None
  config.seeds = (0,)
  config.suite.protocols = ('intra_session', 'leave_one_subject_out')
  ladder = [('step', s) for s in STEP_STRIDES] + [('cosine', s) for s in COSINE_STRIDES]
  if not dataset.startswith('flexemg'):
    ladder = [('step', 4), ('step', 2), ('cosine', 2)]  # Small data: a quick ladder.
  config.suite.models = tuple(label(schedule, stride) for schedule, stride in ladder)
  config.suite.reference = label(*ladder[1])
  for schedule, stride in ladder:
    config.suite.model_overrides[label(schedule, stride)] = ml_collections.ConfigDict(
        {'train': {'frame_stride': stride, 'lr_schedule': schedule}})
  return config
