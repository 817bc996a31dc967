"""The config tree: its keys and defaults, and the checks of its keys and types.

`default_config()` holds every key with its default (the embedded default
experiment); experiment configs override it (`experiments/configs/`). `check`
rejects a key the tree does not have and a value of the wrong type, and turns
comma lists given for tuple keys into tuples, so the command line, the notebook
and code building configs by hand get the same checks. `upgrade_stored` reads
an older run's ``config.json`` with the keys added since at the values that run
had in effect, so that resuming compares like with like. What the values mean,
and whether they are allowed, is `hdsemg_jax.run.settings`'.
"""

from __future__ import annotations

from typing import Any, Mapping

import ml_collections
from ml_collections import config_dict

class ConfigError(ValueError):
  """A config or command-line value a run cannot use, refused before anything is written.

  The message starts with the key (or the file or flag) and says what is expected.
  """


def default_config() -> ml_collections.ConfigDict:
  """Every key of the config tree at its default: the embedded default experiment."""
  config = ml_collections.ConfigDict()

  config.dataset = ml_collections.ConfigDict()
  config.dataset.name = 'synthetic_hdsemg/small'
  config.dataset.data_dir = config_dict.placeholder(str)  # None: TFDS's default folder.
  config.dataset.manual_dir = config_dict.placeholder(str)
  config.dataset.filters = ()  # e.g. ('notch:60:50', 'bandpass:20:380'); see preprocessing.filters.
  # 'zero_phase' (forward-backward over each whole trial) or 'causal' (forward only, as the
  # streaming decoder runs them): train the model the way it will run online.
  config.dataset.filter_mode = 'zero_phase'

  config.protocol = ml_collections.ConfigDict()
  config.protocol.name = 'intra_session'
  # None: every session. The default runs session 1 only.
  config.protocol.sessions = config_dict.placeholder(tuple)
  config.protocol.sessions = (1,)
  config.protocol.subjects = config_dict.placeholder(tuple)  # The data pool; None: all.
  config.protocol.folds = config_dict.placeholder(tuple)  # Which folds run; None: all.

  config.model = ml_collections.ConfigDict()
  config.model.name = 'all_convnet'
  config.model.features = (64, 64, 128, 128, 128, 256)
  config.model.kernel_sizes = (3, 3, 3, 3, 3, 1)
  config.model.strides = (1, 1, 2, 1, 1, 1)
  config.model.bn_momentum = 0.9
  config.model.bn_epsilon = 1e-5
  config.model.conv_impl = 'auto'  # 'xla' (plain Flax) or 'hybrid'; see hdsemg_jax.ops.conv.
  # 'autodiff' for Flax's own BatchNorm backward pass; see hdsemg_jax.ops.batch_norm.
  config.model.batchnorm_grad = 'closed_form'
  # geng_convnet's own keys (all_convnet ignores them; it reads the three above the norms).
  config.model.conv_features = (64, 64)
  config.model.local_features = (64, 64)
  config.model.dense_features = (512, 512, 128)
  config.model.dropout = 0.5
  config.model.dropout_layers = 2  # Dropout after the first n dense layers.
  # The classical baselines' keys (model.name 'lda', 'logreg', 'linear_svm' or 'chance';
  # hdsemg_jax.classical): per-channel time-domain features of each decision's window,
  # thresholds as fractions of the training signal's RMS, inverse L2 strength C, and every n-th
  # training window (None: train.frame_stride). Seeds never change them.
  config.model.td_features = ('mav', 'wl', 'zc', 'ssc', 'log_rms')
  config.model.zc_threshold = 0.02
  config.model.ssc_threshold = 0.02
  config.model.C = 1.0
  config.model.train_window_stride = config_dict.placeholder(int)
  # Per-fold model selection of the classical baselines (hdsemg_jax.classical.selection): each
  # decision window's features, zc/ssc threshold and regularisation (LDA's shrinkage, 'auto' =
  # Ledoit-Wolf; C of logreg and linear_svm) chosen by inner cross-validation over whole
  # training trials, never the test trials. inner_folds=0 uses the fixed keys above instead.
  config.model.selection = ml_collections.ConfigDict()
  config.model.selection.inner_folds = 3
  config.model.selection.td_feature_sets = ('log_rms', 'mav,wl,zc,ssc', 'mav,wl,zc,ssc,log_rms')
  config.model.selection.thresholds = (0.0, 0.02, 0.1)
  config.model.selection.shrinkages = ('auto', '0.01', '0.1')
  config.model.selection.Cs = (0.01, 0.1, 1.0)
  # What the inner folds deal out: 'auto' = what the protocol holds out (leave-one-subject-out:
  # subjects, inter-session: sessions, intra-session: trials), or 'subject', 'session', 'trial'.
  config.model.selection.inner_unit = 'auto'

  config.train = ml_collections.ConfigDict()
  config.train.epochs = 6
  config.train.batch_size = 256
  config.train.learning_rate = 0.1
  config.train.momentum = 0.9
  config.train.weight_decay = 1e-4
  config.train.lr_boundaries = (16 / 28, 24 / 28)  # Fractions of the run; lr /= 10 at each.
  # 'step': the drops at lr_boundaries (the authors'); 'cosine': cosine decay to 0. Either is
  # placed on the run's actual steps (hdsemg_jax.training.optimizer).
  config.train.lr_schedule = 'step'
  config.train.frame_stride = 3  # Train on every n-th usable frame; evaluation scores all.
  # Augmentation of every training batch on the device (hdsemg_jax.training.augment); off by
  # default. max_shift: (rows, columns) in whole electrodes, circular along the axis that wraps
  # round the forearm, a zero-filled translation otherwise; gain_jitter: std of a per-electrode
  # log gain; electrode_dropout: probability that an electrode of a frame is zeroed.
  config.train.augment = ml_collections.ConfigDict()
  config.train.augment.max_shift = (0, 0)
  config.train.augment.gain_jitter = 0.0
  config.train.augment.electrode_dropout = 0.0

  config.eval = ml_collections.ConfigDict()
  config.eval.vote_windows = (1, 40, 150)
  config.eval.batch_size = 1000
  # Robustness: also score the test frames displaced by each of these shifts, 'rows:columns'
  # (e.g. ('-2:0', '0:0', '2:0')); results under the rows' shift_scores and shift_robustness.png.
  config.eval.shifts = ()
  # Online evaluation: replay every test trial, unfiltered, through the streaming decoder in
  # chunks of online_chunk samples (causal filters, vote over the last w frames); the rows'
  # online field sits beside the offline figures (hdsemg_jax.evaluation.online).
  config.eval.online = False
  config.eval.online_chunk = 10

  config.checkpoint = ml_collections.ConfigDict()
  # Save the training state every n steps (0: only at the end of each fold and seed); a rerun on
  # the same workdir continues from the latest one.
  config.checkpoint.every_steps = 0

  config.adapt = ml_collections.ConfigDict()
  # Adaptation to the target of inter-session/-subject folds: 'none'; 'adabn' (BatchNorm
  # statistics re-estimated on the unlabelled test frames, Du et al. 2017); 'finetune' (the
  # pre-trained model fine-tuned on the first `finetune_trials` trials of each target gesture,
  # which are then not tested: All-ConvNet+TL); 'align', 'align+adabn' (below).
  # intra_session takes 'none' only.
  config.adapt.method = 'none'
  config.adapt.finetune_trials = 1
  config.adapt.finetune_layers = ('all',)  # Top-level parameter names, e.g. ('head',); 'all'.
  config.adapt.finetune_epochs = 4
  config.adapt.finetune_learning_rate = 0.01
  # Score 'none'/'adabn' on the test trials that 'finetune' would leave, for a like-for-like
  # comparison (the fine-tune trials are then simply not used).
  config.adapt.score_on_finetune_split = False
  # 'align' / 'align+adabn' (label-free, transductive like AdaBN): the target's grid displacement
  # is estimated from its unlabelled test inputs against the training data's electrode
  # co-activation (hdsemg_jax.preprocessing.alignment), within +-max_shift (rows, columns), and
  # undone before scoring (and before AdaBN).
  config.adapt.align_max_shift = (2, 2)
  config.adapt.align_window = 25  # Frames per RMS window of the co-activation statistic.

  config.seeds = (0,)

  # Devices, resolved before JAX starts and recorded in config.json and the rows (see
  # hdsemg_jax.training.parallel): 'auto' (sharding if several devices are visible, else
  # none), 'none', 'pmap' or 'sharding'. train.batch_size is the global batch.
  config.parallel = 'auto'
  # How many host devices XLA splits the CPU into: 'auto' (process_setup.auto_num_cpu_devices) or N.
  config.num_cpu_devices = 'auto'
  # Train all seeds of a fold at once, vmapped in one compiled program.
  config.seed_parallel = False
  return config


# Keys added after runs were already written, at the values those runs had in effect (the
# device keys: one device, seeds in turn; classical models: fixed settings, no selection, and
# once selection existed, inner folds by trial); every other added key is read at its default.
_IN_EFFECT_BEFORE_ADDED = {'parallel': 'none', 'num_cpu_devices': '1', 'seed_parallel': False,
                           'model': {'selection': {'inner_folds': 0, 'inner_unit': 'trial'}}}


def _flatten(value: Any, prefix: str = '') -> dict[str, Any]:
  if isinstance(value, Mapping):
    out: dict[str, Any] = {}
    for k, v in value.items():
      out.update(_flatten(v, f'{prefix}{k}.'))
    return out
  return {prefix[:-1]: value}


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
  out = dict(base)
  for k, v in over.items():
    out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
  return out


def upgrade_stored(stored: Mapping[str, Any]) -> dict[str, Any]:
  """A stored ``config.json`` with the keys added since it was written, at their old values."""
  defaults = _merge(default_config().to_dict(), _IN_EFFECT_BEFORE_ADDED)
  # JSON has lists where the config has tuples.
  defaults = _jsonable(defaults)
  return _merge(defaults, stored)


def _jsonable(value: Any) -> Any:
  if isinstance(value, Mapping):
    return {k: _jsonable(v) for k, v in value.items()}
  if isinstance(value, (tuple, list)):
    return [_jsonable(v) for v in value]
  return value


def differences(stored: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
  """``'key: stored -> new'`` for every key whose value differs, after `upgrade_stored`."""
  import json  # Only for printing values.
  a, b = _flatten(upgrade_stored(_jsonable(stored))), _flatten(_jsonable(new))
  missing = object()
  lines = []
  for key in sorted(set(a) | set(b)):
    old, now = a.get(key, missing), b.get(key, missing)
    if old != now:
      show = lambda v: '(absent)' if v is missing else json.dumps(v)  # noqa: E731
      lines.append(f'{key}: {show(old)} -> {show(now)}')
  return lines


# ---------------------------------------------------------------------------------------------
# Checks.


def _type_name(value: Any) -> str:
  return type(value).__name__


def _compatible(default: Any, value: Any) -> bool:
  if default is None or value is None:
    return True  # Placeholders and optional keys: any value of the key's own declared type.
  if isinstance(default, bool) or isinstance(value, bool):
    return isinstance(default, bool) and isinstance(value, bool)
  if isinstance(default, float):
    return isinstance(value, (int, float))
  if isinstance(default, (tuple, list)):
    if not isinstance(value, (tuple, list)):
      return False
    element_types = {type(d) for d in default}
    return len(element_types) != 1 or all(_compatible(default[0], v) for v in value)
  return isinstance(value, type(default))


def _split_list(value: Any, default: Any) -> Any:
  """A comma list given for a tuple key (``'S01,S02'`` or ``('S01,S02',)``) as a tuple.

  absl/ml_collections parse ``--config.seeds=0,1,2`` as a tuple but leave
  ``--config.protocol.folds=S01,S02`` one string; both mean a list.
  """
  if isinstance(value, (tuple, list)) and len(value) == 1 and value[0] is None:
    return None  # --config.protocol.sessions=None: the flag parser's (None,).
  if isinstance(value, (tuple, list)) and len(value) == 1 and isinstance(value[0], str):
    value = value[0]
  if not isinstance(value, str) or ',' not in value and not isinstance(default, tuple):
    return value
  items = tuple(v.strip() for v in value.split(',') if v.strip())
  kind = type(default[0]) if isinstance(default, tuple) and default else None
  if kind in (int, float) and not isinstance(default[0], bool):
    try:
      return tuple(kind(v) for v in items)
    except ValueError:
      return items  # The type check names the key.
  return items


def _is_tuple_key(config: ml_collections.ConfigDict, key: str, default: Any) -> bool:
  if isinstance(default, tuple):
    return True
  # Placeholders of type tuple hold None by default.
  field = config.get_ref(key) if hasattr(config, 'get_ref') else None
  return field is not None and field.get_type() is tuple


def check(config: ml_collections.ConfigDict,
          default: ml_collections.ConfigDict | None = None, prefix: str = 'config') -> None:
  """Refuses keys ``default`` (`default_config()`) lacks and values of the wrong type.

  Comma lists for tuple keys become tuples in ``config`` first (see `_split_list`).
  """
  default = default_config() if default is None else default
  for key in config.keys():
    if key not in default:
      raise ValueError(f'{prefix}.{key} is not a config key (keys of {prefix}: '
                       f'{", ".join(sorted(default.keys()))}).')
  for key, ref in default.items():
    if key not in config:
      continue
    value = config[key]
    if isinstance(ref, ml_collections.ConfigDict):
      if isinstance(value, ml_collections.ConfigDict):
        check(value, ref, f'{prefix}.{key}')
      continue
    if _is_tuple_key(default, key, ref) and value is not None:
      split = _split_list(value, ref if ref is not None else ())
      if split is not value:
        with config.unlocked():
          config[key] = split
        value = split
    if not _compatible(ref, value):
      want = _type_name(ref) + (f' of {_type_name(ref[0])}' if isinstance(ref, tuple) and ref
                                else '')
      raise ValueError(f'{prefix}.{key}={value!r} has the wrong type: expected {want}.')
