"""A run's config as typed settings: every key read here once, checked, named in errors.

`from_config(config)` turns a checked ConfigDict (`hdsemg_jax.config.check`:
known keys, right types) into frozen `Settings`, and refuses every value a run
would refuse later: non-positive epochs, batch sizes, windows or chunks, a
learning rate that is not a positive number, malformed shifts or filter specs,
an unknown model (every model listed, the classical ones included), adaptation a
protocol or model does not take. Each error is a `ConfigError` whose message
starts with the key. Nothing here reads data or starts JAX, so ``--dry_run``
and the run fail alike, before anything is written.

The defaults live in `hdsemg_jax.config.default_config` only; these classes have
none. The libraries take the parts (`trainer.TrainSettings`,
`classical.ClassicalSettings`, `protocols.ProtocolSettings`,
`augment.AugmentSettings`) or plain values; they never see a ConfigDict.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import ml_collections

from hdsemg_jax import classical, models, protocols
from hdsemg_jax.config import ConfigError
from hdsemg_jax.evaluation import robustness
from hdsemg_jax.preprocessing import filters
from hdsemg_jax.training import augment, optimizer, trainer

# Adaptation to the target of a fold (config.adapt.method).
ADAPT_METHODS = ('none', 'adabn', 'finetune', 'align', 'align+adabn')
# Protocols whose test data is another session or subject: those that adaptation is for.
ADAPT_PROTOCOLS = ('inter_session', 'leave_one_subject_out')
# Pre-trains on every fold's training trials, then fine-tunes on the target's own.
PRETRAIN_PROTOCOL = 'intra_session_pretrain'
# Classical models have no BatchNorm to adapt and no fine-tuning; alignment only moves the
# test inputs, so it applies to them as to the networks.
CLASSICAL_ADAPT_METHODS = ('none', 'align')


def all_model_names() -> tuple[str, ...]:
  """Every ``model.name``: the networks, then the classical models."""
  return (*sorted(models.MODEL_KEYS), *classical.MODELS)


@dataclasses.dataclass(frozen=True)
class DatasetSettings:
  """Which dataset, where, and its conditioning as configured (``dataset.*``)."""
  name: str
  data_dir: str | None
  manual_dir: str | None
  filters: tuple[str, ...]  # Parsed and checked for syntax; against the rate in `setup`.
  filter_mode: str

  def conditioning(self, sampling_rate_hz: float) -> filters.Conditioning:
    """The filter chain at the dataset's rate (checked against its Nyquist frequency)."""
    return filters.Conditioning(self.filters, self.filter_mode, sampling_rate_hz)


@dataclasses.dataclass(frozen=True)
class ModelSettings:
  """``model.name`` and what builds it: a network's own keys, or a classical model's settings."""
  name: str
  network_kwargs: Mapping[str, Any]  # The network's own model.* keys; empty for classical.
  classical: classical.ClassicalSettings | None

  @property
  def is_classical(self) -> bool:
    return self.classical is not None

  def build(self, num_classes: int, grid_shape: Sequence[int], seed: int):
    """A freshly initialised network (parameters from ``seed``)."""
    return models.build_from_config({'name': self.name, **self.network_kwargs}, num_classes,
                                    grid_shape, seed)


@dataclasses.dataclass(frozen=True)
class EvalSettings:
  """``eval.*``: decision windows, batch, the shifts to score under, online replay."""
  vote_windows: tuple[int, ...]
  batch_size: int
  shifts: tuple[tuple[int, int], ...]
  online: bool
  online_chunk: int


@dataclasses.dataclass(frozen=True)
class Adaptation:
  """``adapt.*``, checked against the protocol and model."""
  method: str
  finetune_trials: int
  finetune_layers: tuple[str, ...]
  finetune_epochs: int
  finetune_learning_rate: float
  score_on_finetune_split: bool
  protocol: str
  align_max_shift: tuple[int, int]
  align_window: int

  @property
  def aligns(self) -> bool:
    return self.method in ('align', 'align+adabn')

  @property
  def adabn(self) -> bool:
    return self.method in ('adabn', 'align+adabn')

  @property
  def splits_folds(self) -> bool:
    """Whether the fold's first target trials move from test to fine-tune."""
    return self.protocol in ADAPT_PROTOCOLS and (
        self.method == 'finetune' or self.score_on_finetune_split)

  @property
  def finetunes(self) -> bool:
    """Whether a fine-tune phase follows training (where the fold has fine-tune trials)."""
    return self.method == 'finetune' or self.protocol == PRETRAIN_PROTOCOL


@dataclasses.dataclass(frozen=True)
class Settings:
  """Everything a run reads from its config."""
  dataset: DatasetSettings
  protocol: protocols.ProtocolSettings
  model: ModelSettings
  train: trainer.TrainSettings
  frame_stride: int  # Train on every n-th usable frame of each trial.
  augment: augment.AugmentSettings  # Checked against the grid in `setup`.
  eval: EvalSettings
  adapt: Adaptation
  checkpoint_every_steps: int
  seeds: tuple[int, ...]
  parallel: str  # As configured ('auto' resolves in `setup`).
  num_cpu_devices: str
  seed_parallel: bool

  @property
  def run_seeds(self) -> tuple[int, ...]:
    """The seeds that get a row: all, or the first only for a model seeds do not change."""
    return self.seeds[:1] if self.model.is_classical else self.seeds


# ---------------------------------------------------------------------------------------------
# Checks of single values; each names its key.


def _whole(value: Any, key: str, minimum: int) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise ConfigError(f'{key}={value!r}: expected a whole number >= {minimum}.')
  return int(value)


def _number(value: Any, key: str, *, minimum: float, strict: bool = False,
            below: float | None = None) -> float:
  ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        and (value > minimum if strict else value >= minimum)
        and (below is None or value < below))
  if not ok:
    bounds = f'{">" if strict else ">="} {minimum:g}' + (f' and < {below:g}' if below else '')
    raise ConfigError(f'{key}={value!r}: expected a finite number {bounds}.')
  return float(value)


def _windows(values: Any, key: str) -> tuple[int, ...]:
  values = tuple(values or ())
  if not values:
    raise ConfigError(f'{key}: give at least one window (frames), e.g. 1,40,150.')
  return tuple(_whole(v, f'{key} element', 1) for v in values)


def _seeds(values: Any) -> tuple[int, ...]:
  values = tuple(values or ())
  if not values:
    raise ConfigError('seeds: give at least one seed, e.g. --config.seeds=0 or 0,1,2.')
  seeds = tuple(_whole(v, 'seeds element', 0) for v in values)
  if len(set(seeds)) != len(seeds):
    raise ConfigError(f'seeds={seeds}: a seed is repeated.')
  return seeds


def _boundaries(values: Any) -> tuple[float, ...]:
  values = tuple(float(_number(v, 'train.lr_boundaries element', minimum=0, strict=True,
                               below=1)) for v in values or ())
  if list(values) != sorted(values):
    raise ConfigError(f'train.lr_boundaries={values}: expected increasing fractions of the run.')
  return values


def _shift_pair(value: Any, key: str) -> tuple[int, int]:
  try:
    rows, cols = value
  except (TypeError, ValueError):
    raise ConfigError(f'{key}={value!r}: expected (rows, columns).') from None
  return _whole(rows, key, 0), _whole(cols, key, 0)


def _checked(key: str, fn, *args, **kwargs):
  """``fn(*args, **kwargs)``, with a library's ValueError turned into a `ConfigError`."""
  try:
    return fn(*args, **kwargs)
  except ConfigError:
    raise
  except ValueError as e:
    message = str(e)
    raise ConfigError(message if message.startswith(key) else f'{key}: {message}') from None


# ---------------------------------------------------------------------------------------------
# The groups.


def _dataset(config: ml_collections.ConfigDict) -> DatasetSettings:
  ds = config.dataset
  specs = tuple(ds.filters or ())
  _checked('dataset.filters', filters.parse_filter_chain, specs)
  _checked('dataset.filter_mode', filters.check_filter_mode, ds.filter_mode)
  return DatasetSettings(name=str(ds.name), data_dir=ds.data_dir, manual_dir=ds.manual_dir,
                         filters=specs, filter_mode=str(ds.filter_mode))


def _protocol(config: ml_collections.ConfigDict) -> protocols.ProtocolSettings:
  p = config.protocol
  if p.name not in protocols.PROTOCOLS:
    raise ConfigError(f'protocol.name={p.name!r} is not known (known: '
                      f'{", ".join(sorted(protocols.PROTOCOLS))}).')

  def ints(values, key):
    return None if values is None else tuple(_whole(v, f'{key} element', 0) for v in values)
  return protocols.ProtocolSettings(
      name=str(p.name), subjects=ints(p.subjects, 'protocol.subjects'),
      sessions=ints(p.sessions, 'protocol.sessions'),
      folds=None if p.folds is None else tuple(str(f) for f in p.folds))


def _model(config: ml_collections.ConfigDict, frame_stride: int) -> ModelSettings:
  m = config.model
  name = str(m.name)
  if classical.is_classical(name):
    stride = m.train_window_stride
    sel = m.selection
    selection = _checked('model.selection', classical.SelectionSettings,
                         inner_folds=sel.inner_folds, td_feature_sets=tuple(sel.td_feature_sets),
                         thresholds=tuple(sel.thresholds), shrinkages=tuple(sel.shrinkages),
                         Cs=tuple(sel.Cs),
                         unit=(protocols.HELD_OUT_UNIT.get(str(config.protocol.name), 'trial')
                               if sel.inner_unit == 'auto' else str(sel.inner_unit)))
    settings = _checked('model', classical.ClassicalSettings, name=name, selection=selection,
                        td_features=tuple(m.td_features), zc_threshold=m.zc_threshold,
                        ssc_threshold=m.ssc_threshold, C=m.C,
                        train_window_stride=frame_stride if stride is None
                        else _whole(stride, 'model.train_window_stride', 1))
    return ModelSettings(name=name, network_kwargs={}, classical=settings)
  if name not in models.MODEL_KEYS:
    raise ConfigError(f'model.name={name!r} is not known (known: '
                      f'{", ".join(all_model_names())}).')
  return ModelSettings(name=name, network_kwargs={k: m[k] for k in models.MODEL_KEYS[name]},
                       classical=None)


def _train(config: ml_collections.ConfigDict) -> trainer.TrainSettings:
  t = config.train
  return trainer.TrainSettings(
      epochs=_whole(t.epochs, 'train.epochs', 1),
      batch_size=_whole(t.batch_size, 'train.batch_size', 1),
      learning_rate=_number(t.learning_rate, 'train.learning_rate', minimum=0, strict=True),
      momentum=_number(t.momentum, 'train.momentum', minimum=0, below=1),
      weight_decay=_number(t.weight_decay, 'train.weight_decay', minimum=0),
      lr_boundaries=_boundaries(t.lr_boundaries),
      lr_schedule=_checked('train.lr_schedule', _lr_schedule, t.lr_schedule))


def _lr_schedule(kind: str) -> str:
  if kind not in optimizer.LR_SCHEDULES:
    raise ValueError(f'train.lr_schedule={kind!r} is not known (known: '
                     f'{", ".join(optimizer.LR_SCHEDULES)}).')
  return str(kind)


def _augment(config: ml_collections.ConfigDict) -> augment.AugmentSettings:
  a = config.train.augment
  return _checked('train.augment', augment.AugmentSettings,
                  max_shift=_shift_pair(a.max_shift, 'train.augment.max_shift'),
                  gain_jitter=a.gain_jitter, electrode_dropout=a.electrode_dropout)


def _eval(config: ml_collections.ConfigDict) -> EvalSettings:
  e = config.eval
  return EvalSettings(
      vote_windows=_windows(e.vote_windows, 'eval.vote_windows'),
      batch_size=_whole(e.batch_size, 'eval.batch_size', 1),
      shifts=tuple(_checked('eval.shifts', robustness.parse_shifts, e.shifts)),
      online=bool(e.online), online_chunk=_whole(e.online_chunk, 'eval.online_chunk', 1))


def _adaptation(config: ml_collections.ConfigDict) -> Adaptation:
  a = config.adapt
  protocol = str(config.protocol.name)
  if a.method not in ADAPT_METHODS:
    raise ConfigError(f'adapt.method={a.method!r} is not known (known: '
                      f'{", ".join(ADAPT_METHODS)}).')
  if a.method != 'none' and protocol not in ADAPT_PROTOCOLS:
    hint = (' (the target subject is fine-tuned on by the protocol itself)'
            if protocol == PRETRAIN_PROTOCOL else
            f'; for pre-training plus fine-tuning within a session use protocol.name='
            f'{PRETRAIN_PROTOCOL!r}')
    raise ConfigError(f'adapt.method={a.method!r} applies to the protocols '
                      f'{", ".join(ADAPT_PROTOCOLS)}, not {protocol!r}; set adapt.method=none'
                      + hint + '.')
  layers = a.finetune_layers
  layers = (layers,) if isinstance(layers, str) else tuple(str(n) for n in layers)
  if not layers:
    raise ConfigError("adapt.finetune_layers: give top-level parameter names or 'all'.")
  return Adaptation(
      method=str(a.method), finetune_trials=_whole(a.finetune_trials, 'adapt.finetune_trials', 1),
      finetune_layers=layers,
      finetune_epochs=_whole(a.finetune_epochs, 'adapt.finetune_epochs', 1),
      finetune_learning_rate=_number(a.finetune_learning_rate, 'adapt.finetune_learning_rate',
                                     minimum=0, strict=True),
      score_on_finetune_split=bool(a.score_on_finetune_split), protocol=protocol,
      align_max_shift=_shift_pair(a.align_max_shift, 'adapt.align_max_shift'),
      align_window=_whole(a.align_window, 'adapt.align_window', 1))


def _check_combinations(s: Settings) -> None:
  """What a model or protocol does not take, though each value is fine alone."""
  if s.model.is_classical:
    name = s.model.name
    if s.eval.shifts or s.eval.online:
      raise ConfigError(f'eval.shifts and eval.online score networks; the classical model '
                        f'{name!r} takes neither.')
    if s.adapt.method not in CLASSICAL_ADAPT_METHODS:
      raise ConfigError(f'adapt.method={s.adapt.method!r} does not apply to the classical model '
                        f'{name!r} (it takes {", ".join(CLASSICAL_ADAPT_METHODS)}).')
    if s.protocol.name == PRETRAIN_PROTOCOL:
      raise ConfigError(f'protocol.name={PRETRAIN_PROTOCOL!r} pre-trains a network; the '
                        f'classical model {name!r} runs intra_session instead.')
  if s.eval.online and s.adapt.aligns:
    raise ConfigError('eval.online replays the recordings as they arrive, without the '
                      f'transductive alignment of adapt.method={s.adapt.method!r}; use one or '
                      'the other.')


def from_config(config: ml_collections.ConfigDict) -> Settings:
  """The settings of a config that `hdsemg_jax.config.check` has passed.

  Raises:
    ConfigError: a value the run would refuse, naming its key.
  """
  frame_stride = _whole(config.train.frame_stride, 'train.frame_stride', 1)
  settings = Settings(
      dataset=_dataset(config), protocol=_protocol(config), model=_model(config, frame_stride),
      train=_train(config), frame_stride=frame_stride,
      augment=_augment(config), eval=_eval(config), adapt=_adaptation(config),
      checkpoint_every_steps=_whole(config.checkpoint.every_steps, 'checkpoint.every_steps', 0),
      seeds=_seeds(config.seeds), parallel=str(config.parallel),
      num_cpu_devices=str(config.num_cpu_devices), seed_parallel=bool(config.seed_parallel))
  _check_combinations(settings)
  return settings
