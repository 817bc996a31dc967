r"""The embedded default: All-ConvNet, intra-session, on synthetic data.

  python -m experiments.main --config=experiments/configs/default.py --workdir=/tmp/default

Sized to finish in a few minutes on a 2-core CPU: 4 synthetic subjects, session 1
only (4 folds), 300 frames per trial, every 3rd frame trained on, 6 epochs,
batch 256 (the full recipe is 28
epochs at batch 1000; see `intra_session.py`). Expect (synthetic data): per-frame
accuracy far above chance (12.5%) and 150-frame vote accuracy near 100%.

The config tree is a public interface: later versions add keys, never rename.
"""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  config.dataset = ml_collections.ConfigDict()
  config.dataset.name = 'synthetic_hdsemg/small'
  config.dataset.data_dir = config_dict.placeholder(str)  # None: TFDS's default folder.
  config.dataset.manual_dir = config_dict.placeholder(str)
  config.dataset.filters = ()  # e.g. ('notch:60:50', 'bandpass:20:380'); see preprocessing.filters.

  config.protocol = ml_collections.ConfigDict()
  config.protocol.name = 'intra_session'
  config.protocol.sessions = config_dict.placeholder(tuple)  # None: every session.
  config.protocol.sessions = (1,)  # The default runs session 1 only.
  config.protocol.subjects = config_dict.placeholder(tuple)  # The data pool; None: all.
  config.protocol.folds = config_dict.placeholder(tuple)  # Which folds run; None: all.

  config.model = ml_collections.ConfigDict()
  config.model.name = 'all_convnet'
  config.model.features = (64, 64, 128, 128, 128, 256)
  config.model.kernel_sizes = (3, 3, 3, 3, 3, 1)
  config.model.strides = (1, 1, 2, 1, 1, 1)
  config.model.bn_momentum = 0.9
  config.model.bn_epsilon = 1e-5
  config.model.conv_impl = 'auto'  # 'xla', 'im2col', 'hybrid'; see hdsemg_jax.models.conv_impls.
  # 'autodiff' for Flax's own BatchNorm backward pass; see hdsemg_jax.models.batch_norm.
  config.model.batchnorm_grad = 'closed_form'

  config.train = ml_collections.ConfigDict()
  config.train.epochs = 6
  config.train.batch_size = 256
  config.train.learning_rate = 0.1
  config.train.momentum = 0.9
  config.train.weight_decay = 1e-4
  config.train.lr_boundaries = (16 / 28, 24 / 28)  # Fractions of the run; lr /= 10 at each.
  config.train.frame_stride = 3  # Train on every n-th usable frame; evaluation scores all.

  config.eval = ml_collections.ConfigDict()
  config.eval.vote_windows = (1, 40, 150)
  config.eval.batch_size = 1000

  config.checkpoint = ml_collections.ConfigDict()
  # Save the training state every n steps (0: only at the end of each fold and seed); a rerun on
  # the same workdir continues from the latest one.
  config.checkpoint.every_steps = 0

  config.adapt = ml_collections.ConfigDict()
  # Adaptation to the target of inter-session/-subject folds: 'none'; 'adabn' (BatchNorm
  # statistics re-estimated on the unlabelled test frames, Du et al. 2017); 'finetune' (the
  # pre-trained model fine-tuned on the first `finetune_trials` trials of each target gesture,
  # which are then not tested: All-ConvNet+TL). intra_session takes 'none' only.
  config.adapt.method = 'none'
  config.adapt.finetune_trials = 1
  config.adapt.finetune_layers = ('all',)  # Top-level parameter names, e.g. ('head',); 'all'.
  config.adapt.finetune_epochs = 4
  config.adapt.finetune_learning_rate = 0.01
  # Score 'none'/'adabn' on the test trials that 'finetune' would leave, for a like-for-like
  # comparison (the fine-tune trials are then simply not used).
  config.adapt.score_on_finetune_split = False

  config.seeds = (0,)

  # Devices, resolved before JAX starts and recorded in config.json and the rows (see
  # hdsemg_jax.training.parallel): 'auto' (sharding if several devices are visible, else
  # none), 'none', 'pmap' or 'sharding'. train.batch_size is the global batch.
  config.parallel = 'auto'
  # How many host devices XLA splits the CPU into: 'auto' (runtime.auto_num_cpu_devices) or N.
  config.num_cpu_devices = 'auto'
  # Train all seeds of a fold at once, vmapped in one compiled program.
  config.seed_parallel = False
  return config
