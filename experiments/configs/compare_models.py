r"""The benchmark suite of one dataset: networks, classical baselines and chance, per protocol.

  python -m experiments.compare_models --config=experiments/configs/compare_models.py:flexemg \
      --config.dataset.manual_dir=../shared/data/flexemg --workdir=workdirs/compare_flexemg --dry_run

The suite config is an ordinary experiment config (the same tree and key names
as `experiments.main`'s, pointed at the dataset after ':' with its preset,
default synthetic_hdsemg/small) plus one group, ``suite``: every model of
``suite.models`` runs on every protocol of ``suite.protocols`` it applies to, each
in its own sub-workdir ``<workdir>/<protocol>/<model>`` through
`hdsemg_jax.run.experiment`, so a rerun resumes. A run's config is this tree with
``protocol.name`` set, then ``suite.protocol_overrides[<protocol>]``, the model's
own keys (`experiments.compare_models.SUITE_MODELS`) and
``suite.model_overrides[<model>]`` applied, all in experiment keys. Then one
report compares them (see `experiments.compare_models`).

Models: ``all_convnet`` and ``geng_convnet`` trained from scratch;
``geng_convnet_pretrain``, Geng et al.'s recipe (pre-train on every fold's
training trials, fine-tune on the target's own: protocol
``intra_session_pretrain``), intra-session only; the classical baselines ``lda``,
``logreg`` and ``linear_svm`` on windowed time-domain features (``model.td_features``
and the other classical ``model.*`` keys); ``chance`` (majority class of the
training frames). Networks run every seed of ``seeds``; classical models and
chance are seed-free and run the first seed only.

Size: the experiment keys themselves (``train.epochs``, ``train.frame_stride``,
``train.batch_size``, ``seeds``, ``protocol.subjects`` / ``sessions`` / ``folds``).
"""

import ml_collections

from experiments.configs import datasets

PROTOCOLS = ('intra_session', 'inter_session', 'leave_one_subject_out')
MODELS = ('all_convnet', 'geng_convnet', 'geng_convnet_pretrain', 'lda', 'logreg',
          'linear_svm', 'chance')


def suite_defaults() -> ml_collections.ConfigDict:
  """The ``suite`` group: which runs, and how the report compares them."""
  suite = ml_collections.ConfigDict()
  suite.protocols = PROTOCOLS
  suite.models = MODELS
  # The report: the metric of the table and tests, and the model tested against the others.
  suite.metric = 'decision_accuracy/150'
  suite.reference = 'all_convnet'
  # Experiment keys per protocol and per model label, e.g. {'leave_one_subject_out':
  # {'protocol': {'sessions': (1,)}}} or {'all_convnet': {'model': {'features': (8, 8)}}}.
  suite.protocol_overrides = ml_collections.ConfigDict()
  suite.model_overrides = ml_collections.ConfigDict()
  return suite


def get_config(dataset: str = 'synthetic_hdsemg/small') -> ml_collections.ConfigDict:
  # protocol.name is each run's own; the tree's value is only a placeholder.
  config = datasets.protocol_config(PROTOCOLS[0], dataset)
  config.seeds = (0, 1, 2)
  config.suite = suite_defaults()
  if dataset.split('/')[0] == 'flexemg':
    apply_flexemg_budget(config)
  return config


def apply_flexemg_budget(config: ml_collections.ConfigDict) -> None:
  """The flexemg comparison sized for a 2-core CPU where the budget curve flattens (RESULTS.md).

  Networks: every 16th usable training frame, 4 epochs of batches of 64, the authors'
  step schedule placed on those steps (the single-run preset: every 8th, 8 epochs of
  256). The budget curve (`experiments/configs/budget_curve.py`, RESULTS.md "The
  training budget") chose it: at 150 frames All-ConvNet is flat from every 32nd frame
  on, per frame a halved stride still gained 4.3 points intra-session at 32 -> 16 and
  2.4 at 16 -> 8, for twice the training time each; a cosine schedule scored as the
  step one. Every 64th frame is too few steps (intra-session falls to about 50%).
  Classical models keep every 32nd training window (``model.train_window_stride``):
  40- and 150-frame windows 32 frames apart already overlap, and their per-fold
  selection fits dozens of candidates, the suite's largest classical cost.
  Leave-one-subject-out on session 1 only (training on the other two subjects'
  session 1, testing on all of the held-out subject's session 1), since scoring a
  subject's three sessions per seed would triple it. Evaluation always scores every
  usable test frame.
  """
  config.train.frame_stride = 16
  config.train.epochs = 4
  config.train.batch_size = 64
  config.model.train_window_stride = 32
  config.suite.protocol_overrides.leave_one_subject_out = ml_collections.ConfigDict(
      {'protocol': {'sessions': (1,)}})
