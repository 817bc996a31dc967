"""A run's config resolved once: checked config, devices, parallel plan, adaptation, folds.

`resolve` does everything that depends on the config alone, before any training,
and the resolved pieces are what the rest of the run reads. The dry run and the
real run call it alike, so ``--dry_run`` prints exactly the folds the run uses
(fine-tune trials included) and fails where the run would.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import ml_collections

from hdsemg_jax import config as config_lib
from hdsemg_jax import classical, models, process_setup, protocols
from hdsemg_jax.data import trials as trials_lib
from hdsemg_jax.data.trials import DatasetSpec, Trial
from hdsemg_jax.preprocessing import filters
from hdsemg_jax.training import augment as augment_lib
from hdsemg_jax.training import parallel


@dataclasses.dataclass(frozen=True)
class RunSetup:
  """Everything the run reads from its config, resolved."""
  config: ml_collections.ConfigDict  # Checked; device keys resolved (what config.json holds).
  devices: process_setup.DeviceSettings
  plan: parallel.Plan
  adapt: config_lib.Adaptation
  spec: DatasetSpec
  trials: Sequence[Trial]  # Conditioned by dataset.filters.
  raw_trials: Sequence[Trial] | None  # As read, unfiltered: kept for eval.online only.
  folds: Sequence[protocols.Fold]
  seeds: tuple[int, ...]
  augment: augment_lib.AugmentSettings  # train.augment, checked against the grid.


def condition(trials: Sequence[Trial], dataset_config: ml_collections.ConfigDict,
              spec: DatasetSpec) -> list[Trial]:
  """The trials filtered by ``dataset.filters`` in ``dataset.filter_mode``."""
  return filters.apply_filters(list(trials), dataset_config.filters, spec.sampling_rate_hz,
                               mode=dataset_config.filter_mode)


def load_data(dataset_config: ml_collections.ConfigDict) -> tuple[DatasetSpec, list[Trial]]:
  """Reads the configured dataset (preparing it on first use) and conditions its signals."""
  spec, raw = trials_lib.load(dataset_config.name, dataset_config.data_dir,
                              dataset_config.manual_dir)
  return spec, condition(raw, dataset_config, spec)


# Classical models have no BatchNorm to adapt and no fine-tuning; alignment only moves the
# test inputs, so it applies to them as to the networks.
CLASSICAL_ADAPT_METHODS = ('none', 'align')


def _check_classical(config: ml_collections.ConfigDict) -> None:
  classical.features.check_features(config.model.td_features)
  if config.eval.shifts or config.eval.online:
    raise ValueError(f'eval.shifts and eval.online score networks; the classical model '
                     f'{config.model.name!r} takes neither.')
  if config.adapt.method not in CLASSICAL_ADAPT_METHODS:
    raise ValueError(f'adapt.method={config.adapt.method!r} does not apply to the classical model '
                     f'{config.model.name!r} (it takes {", ".join(CLASSICAL_ADAPT_METHODS)}).')
  if config.protocol.name == config_lib.PRETRAIN_PROTOCOL:
    raise ValueError(f'protocol.name={config_lib.PRETRAIN_PROTOCOL!r} pre-trains a network; the '
                     f'classical model {config.model.name!r} runs intra_session instead.')


def resolve(config: ml_collections.ConfigDict) -> RunSetup:
  """Checks ``config`` and resolves it (on a copy; ``config`` is not changed).

  Sets the CPU's device count, so call it before any JAX computation where
  ``num_cpu_devices`` matters (`experiments.main` does).
  """
  config = config.copy_and_resolve_references()
  config_lib.check(config)
  if classical.is_classical(config.model.name):
    _check_classical(config)
  else:
    models.check_name(config.model.name)
  adapt = config_lib.adaptation(config)
  if config.eval.online and adapt.aligns:
    raise ValueError('eval.online replays the recordings as they arrive, without the '
                     f'transductive alignment of adapt.method={adapt.method!r}; use one or the '
                     'other.')
  devices = process_setup.configure_devices(config.parallel, config.num_cpu_devices)
  with config.unlocked():  # config.json records what 'auto' resolved to.
    config.parallel = devices.parallel
    config.num_cpu_devices = str(devices.num_cpu_devices)
  plan = parallel.Plan.create(devices.parallel)
  plan.check_batch(int(config.train.batch_size), 'train.batch_size')
  plan.check_batch(int(config.eval.batch_size), 'eval.batch_size')
  spec, raw = trials_lib.load(config.dataset.name, config.dataset.data_dir,
                              config.dataset.manual_dir)
  trials = condition(raw, config.dataset, spec)
  folds = protocols.folds_for_run(trials, config.protocol, adapt)
  augment = augment_lib.from_config(config, spec.grid_shape, spec.wrap_axis)
  return RunSetup(config=config, devices=devices, plan=plan, adapt=adapt, spec=spec,
                  trials=trials, raw_trials=raw if config.eval.online else None, folds=folds,
                  seeds=tuple(int(s) for s in config.seeds), augment=augment)


def describe(setup: RunSetup) -> str:
  """The fold table as text: what ``--dry_run`` prints."""
  return protocols.describe_folds(setup.spec, setup.trials, setup.folds)
