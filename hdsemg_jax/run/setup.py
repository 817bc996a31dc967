"""A run resolved once: settings, devices, parallel plan, data, conditioning, folds.

`resolve(config)` does everything that depends on the config and the data,
before any training and before any file is written: it checks the config
(`hdsemg_jax.config.check`, then `settings.from_config`), sets up the devices,
reads and conditions the data, makes the fold table and checks that every fold
can train (enough frames for a batch, data for every subject and session of the
pool). The dry run and the real run call it alike, so ``--dry_run`` prints
exactly what the run will do and fails where the run would.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Sequence

import jax
import ml_collections

from hdsemg_jax import config as config_lib
from hdsemg_jax import models, process_setup, protocols
from hdsemg_jax.data import trials as trials_lib
from hdsemg_jax.data.trials import DatasetSpec, Trial
from hdsemg_jax.preprocessing import filters
from hdsemg_jax.run import settings as settings_lib
from hdsemg_jax.config import ConfigError
from hdsemg_jax.run.settings import Settings
from hdsemg_jax.training import parallel


@dataclasses.dataclass(frozen=True)
class RunSetup:
  """Everything a run needs, resolved from its config."""
  config: ml_collections.ConfigDict  # Checked; device keys resolved: what config.json holds.
  settings: Settings
  devices: process_setup.DeviceSettings
  plan: parallel.Plan
  spec: DatasetSpec
  conditioning: filters.Conditioning  # dataset.filters and filter_mode at the data's rate.
  trials: Sequence[Trial]  # Conditioned.
  raw_trials: Sequence[Trial] | None  # As read, unfiltered: kept for eval.online only.
  folds: Sequence[protocols.Fold]
  num_train_frames: dict[str, int]  # Per fold id: the frames one training epoch sees.


def check_config(config: ml_collections.ConfigDict) -> tuple[ml_collections.ConfigDict,
                                                             Settings]:
  """A checked copy of ``config`` and its settings; ``config`` itself is not changed."""
  config = config.copy_and_resolve_references()
  try:
    config_lib.check(config)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  return config, settings_lib.from_config(config)


def folds_for_run(trials: Sequence[Trial], settings: Settings) -> list[protocols.Fold]:
  """The protocol's folds, split for fine-tuning where the adaptation asks for it."""
  folds = protocols.make_folds(trials, settings.protocol)
  if settings.adapt.splits_folds:
    folds = [protocols.split_for_finetune(f, trials, settings.adapt.finetune_trials)
             for f in folds]
  return folds


def check_complete(trials: Sequence[Trial], protocol: protocols.ProtocolSettings) -> None:
  """Refuses a data pool in which a subject lacks a session (or part) that others have.

  A copy of a dataset with a folder missing would otherwise lose folds silently.
  """
  subjects = None if protocol.subjects is None else set(protocol.subjects)
  sessions = None if protocol.sessions is None else set(protocol.sessions)
  held = collections.defaultdict(set)
  for t in trials:
    if (subjects is None or t.subject in subjects) and (sessions is None or
                                                        t.session in sessions):
      held[t.subject].add((t.session, t.part))
  everywhere = set().union(*held.values()) if held else set()
  missing = [f'subject {s} session {session} ({part} part)' for s in sorted(held)
             for session, part in sorted(everywhere - held[s])]
  if missing:
    raise ConfigError(
        f'the data holds no trials of {", ".join(missing)}, which the other subjects have: '
        'the copy of the dataset looks incomplete, and its folds would be lost. Restore the '
        'missing recordings (and prepare again in a fresh data_dir), or leave them out with '
        'protocol.subjects / protocol.sessions.')


def fold_ids(config: ml_collections.ConfigDict) -> list[str]:
  """The ids of the folds ``config`` runs, in order: the config checked, the data's trial
  list read (no conditioning, no devices). What splits a run into fold groups."""
  _, settings = check_config(config)
  ds = settings.dataset
  _, raw = trials_lib.load(ds.name, ds.data_dir, ds.manual_dir)
  check_complete(raw, settings.protocol)
  try:
    return [f.id for f in folds_for_run(raw, settings)]
  except ValueError as e:  # The libraries' errors name their keys.
    raise ConfigError(str(e)) from None


def _count_frames(trials: Sequence[Trial], ids: Sequence[str], stride: int) -> int:
  chosen = trials_lib.select(trials, ids)
  return int(sum(len(range(0, int((t.label >= 0).sum()), stride)) for t in chosen))


def _check_batches(settings: Settings, folds: Sequence[protocols.Fold], trials: Sequence[Trial],
                   plan: parallel.Plan) -> dict[str, int]:
  """Train frames per fold; a fold that cannot fill one training batch is refused."""
  counts = {}
  for fold in folds:
    n = _count_frames(trials, fold.train, settings.frame_stride)
    counts[fold.id] = n
    if not settings.model.is_classical and n < settings.train.batch_size:
      raise ConfigError(f'train.batch_size={settings.train.batch_size} is larger than the {n} '
                        f'training frames of fold {fold.id}; lower it (or train.frame_stride) '
                        'or add data.')
    if (fold.finetune and settings.adapt.finetunes and not settings.model.is_classical
        and _count_frames(trials, fold.finetune, settings.frame_stride) < plan.num_devices):
      raise ConfigError(f'adapt.finetune_trials: fold {fold.id} has too few fine-tuning frames '
                        f'for {plan.num_devices} devices; use fewer devices or more trials.')
  return counts


def resolve(config: ml_collections.ConfigDict) -> RunSetup:
  """Checks ``config`` and resolves it (on a copy; ``config`` is not changed).

  Sets the CPU's device count, so call it before any JAX computation where
  ``num_cpu_devices`` matters (`experiments.main` does).

  Raises:
    ConfigError: a value the run would refuse (named), or data the folds cannot use.
    DatasetError: the dataset cannot be read or prepared.
  """
  config, settings = check_config(config)
  devices = _checked_devices(settings)
  with config.unlocked():  # config.json records what 'auto' resolved to.
    config.parallel = devices.parallel
    config.num_cpu_devices = str(devices.num_cpu_devices)
  plan = parallel.Plan.create(devices.parallel)
  for key, size in (('train.batch_size', settings.train.batch_size),
                    ('eval.batch_size', settings.eval.batch_size)):
    try:
      plan.check_batch(size, key)
    except ValueError as e:
      raise ConfigError(str(e)) from None
  ds = settings.dataset
  spec, raw = trials_lib.load(ds.name, ds.data_dir, ds.manual_dir)
  try:
    conditioning = ds.conditioning(spec.sampling_rate_hz)
    settings.augment.check_grid(spec.grid_shape, spec.wrap_axis)
    check_complete(raw, settings.protocol)
    trials = conditioning.apply(raw)
    folds = folds_for_run(trials, settings)
  except ConfigError:
    raise
  except ValueError as e:  # The libraries' errors name their keys.
    raise ConfigError(str(e)) from None
  counts = _check_batches(settings, folds, trials, plan)
  if not settings.model.is_classical:
    try:  # The architecture's keys against each other and the data's grid (a bad one fails here).
      jax.eval_shape(lambda: settings.model.build(spec.num_classes, spec.grid_shape, seed=0))
    except ValueError as e:
      raise ConfigError(str(e)) from None
  return RunSetup(config=config, settings=settings, devices=devices, plan=plan, spec=spec,
                  conditioning=conditioning, trials=trials,
                  raw_trials=raw if settings.eval.online else None, folds=folds,
                  num_train_frames=counts)


def _checked_devices(settings: Settings) -> process_setup.DeviceSettings:
  try:
    return process_setup.configure_devices(settings.parallel, settings.num_cpu_devices)
  except ValueError as e:
    raise ConfigError(str(e)) from None


def describe(setup: RunSetup, workdir: str | None = None) -> str:
  """What ``--dry_run`` prints: the run's plan, then the fold table."""
  s = setup.settings
  lines = [f'model: {s.model.name}']
  if s.model.is_classical:
    c = s.model.classical
    lines[0] += (f' (classical: features {",".join(c.td_features)}, C={c.C:g}, window '
                 f'stride {c.train_window_stride}; one row per fold, seed-free)')
  else:
    built = s.model.build(setup.spec.num_classes, setup.spec.grid_shape, seed=0)
    lines[0] += f', {models.num_params(built):,} parameters'
    t = s.train
    per_fold = ', '.join(f'{fid} {n // t.batch_size}' for fid, n in
                         setup.num_train_frames.items())
    lines.append(f'training: {t.epochs} epochs of batches of {t.batch_size}, learning rate '
                 f'{t.learning_rate:g}, frame stride {s.frame_stride}; steps per '
                 f'epoch: {per_fold}')
    if setup.settings.augment.enabled:
      lines.append(f'augmentation: {dataclasses.asdict(setup.settings.augment)}')
  lines.append(f'seeds: {", ".join(map(str, s.run_seeds))}'
               + (' (trained together, seed_parallel)' if s.seed_parallel
                  and not s.model.is_classical and len(s.seeds) > 1 else ''))
  lines.append(f'devices: parallel={setup.devices.parallel} on {setup.devices.num_devices} '
               f'device(s), {setup.devices.num_processes} process(es), num_cpu_devices='
               f'{setup.devices.num_cpu_devices}')
  a = s.adapt
  lines.append(f'adaptation: {a.method}' + (
      f' (fine-tune {a.finetune_epochs} epochs on the first {a.finetune_trials} trial(s) of '
      f'each target gesture, layers {",".join(a.finetune_layers)})'
      if a.method == 'finetune' else ''))
  c = setup.conditioning
  lines.append(f'conditioning: {", ".join(c.filters) or "none"} ({c.mode}) at '
               f'{c.sampling_rate_hz:g} Hz')
  lines.append(f'evaluation: decision windows {",".join(map(str, s.eval.vote_windows))}'
               + (f', shifts {s.eval.shifts}' if s.eval.shifts else '')
               + (f', online in chunks of {s.eval.online_chunk}' if s.eval.online else ''))
  lines.append(f'workdir: {workdir}' if workdir else 'workdir: (none given)')
  lines.append(protocols.describe_folds(setup.spec, setup.trials, setup.folds))
  return '\n'.join(lines)
