r"""The benchmark suite of one dataset: networks, classical baselines and chance, per protocol.

  python -m experiments.compare_models --config=experiments/configs/compare_models.py:flexemg \
      --config.manual_dir=../shared/data/flexemg --workdir=workdirs/compare_flexemg --dry_run

For the dataset after ':' (default synthetic_hdsemg/small), every model of
``models`` runs on every protocol of ``protocols`` it applies to, each in its own
sub-workdir ``<workdir>/<protocol>/<model>`` through
`hdsemg_jax.run.experiment.train_and_evaluate` (so a rerun resumes), with the
protocol config of `experiments.configs.datasets.protocol_config` plus the
suite's settings below. Then one report compares them (see
`experiments.compare_models`).

Models (``RECIPES``): ``all_convnet`` and ``geng_convnet`` trained from scratch;
``geng_convnet_pretrain``, Geng et al.'s recipe (pre-train on every fold's
training trials, fine-tune on the target's own: protocol
``intra_session_pretrain``), intra-session only; the classical baselines ``lda``,
``logreg`` and ``linear_svm`` on windowed time-domain features; ``chance``
(majority class of the training frames). Networks run every seed of ``seeds``;
classical models and chance are seed-free and run the first seed only.

Size knobs (None: the dataset's preset in `datasets.PRESETS`, else the default
config): ``epochs``, ``frame_stride``, ``batch_size``; ``seeds``; the data pool
``subjects``, ``sessions`` (None: the protocol config's) and ``folds``.
``common`` (a nested tree, e.g. ``{'adapt': {'method': 'adabn'}}``) is applied to
every run's config, ``protocol_overrides[<protocol>]`` to that protocol's runs (e.g.
a smaller data pool for leave-one-subject-out), ``overrides[<model>]`` to that
model's runs only (e.g. a narrower All-ConvNet for a smoke test).
"""

import ml_collections
from ml_collections import config_dict

PROTOCOLS = ('intra_session', 'inter_session', 'leave_one_subject_out')

# model label -> model.name, whether it is seed-free (classical), and, where it is restricted
# to some protocols, the protocol each of those runs as.
RECIPES = {
    'all_convnet': dict(model='all_convnet', classical=False),
    'geng_convnet': dict(model='geng_convnet', classical=False),
    'geng_convnet_pretrain': dict(model='geng_convnet', classical=False,
                                  protocols={'intra_session': 'intra_session_pretrain'}),
    'lda': dict(model='lda', classical=True),
    'logreg': dict(model='logreg', classical=True),
    'linear_svm': dict(model='linear_svm', classical=True),
    'chance': dict(model='chance', classical=True),
}


def get_config(dataset: str = 'synthetic_hdsemg/small') -> ml_collections.ConfigDict:
  suite = ml_collections.ConfigDict()
  suite.dataset = dataset
  suite.data_dir = config_dict.placeholder(str)
  suite.manual_dir = config_dict.placeholder(str)
  suite.protocols = PROTOCOLS
  suite.models = tuple(RECIPES)
  suite.seeds = (0, 1, 2)
  suite.epochs = config_dict.placeholder(int)
  suite.frame_stride = config_dict.placeholder(int)
  suite.batch_size = config_dict.placeholder(int)
  suite.subjects = config_dict.placeholder(tuple)
  suite.sessions = config_dict.placeholder(tuple)
  suite.folds = config_dict.placeholder(tuple)
  suite.vote_windows = (1, 40, 150)
  # The classical models' settings (model.* of their runs; see hdsemg_jax.classical). None:
  # the experiment's default (train_window_stride: train.frame_stride).
  suite.classical = ml_collections.ConfigDict()
  suite.classical.td_features = ('mav', 'wl', 'zc', 'ssc', 'log_rms')
  suite.classical.zc_threshold = 0.02
  suite.classical.ssc_threshold = 0.02
  suite.classical.C = 1.0
  suite.classical.train_window_stride = config_dict.placeholder(int)
  # The report: the metric of the table and tests, and the model tested against the others.
  suite.metric = 'decision_accuracy/150'
  suite.reference = 'all_convnet'
  suite.common = ml_collections.ConfigDict()
  suite.protocol_overrides = ml_collections.ConfigDict()
  suite.overrides = ml_collections.ConfigDict()
  if arg_is_flexemg(dataset):
    apply_flexemg_budget(suite)
  return suite


def arg_is_flexemg(dataset: str) -> bool:
  return dataset.split('/')[0] == 'flexemg'


def apply_flexemg_budget(suite: ml_collections.ConfigDict) -> None:
  """The flexemg comparison sized to run in under an hour on a 2-core CPU (see RESULTS.md).

  Every 32nd usable training frame, 4 epochs of batches of 64 (the single-run preset:
  every 8th, 8 epochs of 256; fewer frames with the preset's batch left about a dozen
  steps per run, too few: a seed stayed at chance); leave-one-subject-out on session 1 only (training on the other two
  subjects' session 1, testing on all of the held-out subject's session 1), since
  scoring a subject's three sessions per seed would take most of the hour.
  Evaluation always scores every usable test frame.
  """
  suite.frame_stride = 32
  suite.epochs = 4
  suite.batch_size = 64
  suite.protocol_overrides.leave_one_subject_out = ml_collections.ConfigDict(
      {'protocol': {'sessions': (1,)}})
