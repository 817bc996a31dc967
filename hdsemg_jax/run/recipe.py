"""The training recipe of one fold: train (or pre-train), fine-tune, AdaBN.

`train_fold` runs the phases that the resolved config asks for on the seeds of
one fold and returns their final states, before scoring:

1. `train` on the fold's training trials (called pre-training when a fine-tune
   phase follows). ``intra_session_pretrain`` pre-trains once per seed for all its
   folds: one shared checkpoint, which later folds restore at its final step.
2. `finetune` on the fold's ``finetune`` trials (``adapt.method='finetune'``, or the
   ``intra_session_pretrain`` protocol), with ``adapt.finetune_*``.
3. `align` (``adapt.method='align'`` or ``'align+adabn'``): the target's grid
   displacement estimated from the unlabelled test inputs against the training
   trials' electrode co-activation (`hdsemg_jax.preprocessing.alignment`); the test
   trials are then shifted back before AdaBN and scoring. Transductive, like AdaBN:
   test inputs, never labels.
4. `adabn` (``adapt.method='adabn'`` or ``'align+adabn'``): BatchNorm statistics
   re-estimated on the unlabelled frames of the (aligned) test trials
   (`hdsemg_jax.training.adabn`).

``train.augment`` applies to every training phase.

One seed trains alone (`trainer.fit`); several train in one vmapped program
(`trainer.fit_seeds`). Where checkpoints go and where curves are written is the
caller's (``checkpoints_for``, ``on_epoch_for``), so this module knows nothing of
the run directory.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Sequence

import numpy as np
from flax import nnx

from hdsemg_jax import models, ops
from hdsemg_jax.data import frames as frames_lib
from hdsemg_jax.data import trials as trials_lib
from hdsemg_jax.data.trials import Trial
from hdsemg_jax.preprocessing import alignment
from hdsemg_jax.protocols import Fold
from hdsemg_jax.run.settings import PRETRAIN_PROTOCOL
from hdsemg_jax.run.setup import RunSetup
from hdsemg_jax.training import adabn as adabn_lib
from hdsemg_jax.training import optimizer, state as state_lib, steps, trainer

# (phase, checkpoint key) -> where that phase checkpoints; None: nowhere.
CheckpointsFor = Callable[[str, str], 'trainer.Checkpoints | None']
# (seed, phase) -> the trainer's on_epoch callback; None: no curves.
OnEpochFor = Callable[[int, str], 'Callable[[int, dict[str, float]], None] | None']

PRETRAIN_KEY = '_pretrain'


@dataclasses.dataclass
class Trained:
  """The outcome of training the seeds of one fold, before scoring."""
  graphdef: nnx.GraphDef
  states: list[state_lib.TrainState]
  num_params: int  # Trainable: the parameters.
  num_total_params: int  # The parameters and the BatchNorm statistics.
  num_train_frames: int
  num_finetune_frames: int
  train_seconds: float  # Every phase of every seed.
  test_trials: list[Trial]  # What the models are scored on (aligned where the config aligns).
  align_shift: tuple[int, int] | None = None  # The estimated displacement that was undone.


def build_models(setup: RunSetup, seeds: Sequence[int]) -> list[nnx.Module]:
  """One freshly initialised model per seed."""
  return [setup.settings.model.build(setup.spec.num_classes, setup.spec.grid_shape, seed)
          for seed in seeds]


def _fit(setup: RunSetup, built: Sequence[nnx.Module], frames: np.ndarray, labels: np.ndarray,
         train_settings: trainer.TrainSettings, seeds: Sequence[int], *, name: str,
         phase: str, checkpoints, on_epoch_for: OnEpochFor | None,
         trainable: Sequence[str] | None = None) -> tuple[nnx.GraphDef, list]:
  """One phase over ``seeds``: `trainer.fit` for one, `trainer.fit_seeds` for several."""
  plan, settings = setup.plan, setup.settings
  options = steps.StepOptions.create(
      augment=settings.augment, wrap_axis=setup.spec.wrap_axis,
      compiler_options=ops.train_compiler_options(
          settings.model.network_kwargs['conv_impl'],
          train_settings.batch_size // plan.num_devices))
  callbacks = ([on_epoch_for(s, phase) for s in seeds] if on_epoch_for is not None else None)
  common = dict(name=name, checkpoints=checkpoints, every_steps=settings.checkpoint_every_steps,
                trainable=trainable, plan=plan, options=options)
  try:
    if len(seeds) == 1:
      graphdef, state = trainer.fit(built[0], frames, labels, train_settings, seeds[0],
                                    on_epoch=callbacks[0] if callbacks else None, **common)
      return graphdef, [state]
    return trainer.fit_seeds(built, frames, labels, train_settings, seeds, on_epoch=callbacks,
                             **common)
  finally:
    if checkpoints is not None:
      checkpoints.close()


def _label(fold: Fold, seeds: Sequence[int]) -> str:
  return (f'fold {fold.id} seed {seeds[0]}' if len(seeds) == 1 else
          f'fold {fold.id} seeds {",".join(map(str, seeds))}')


def train(setup: RunSetup, fold: Fold, seeds: Sequence[int], *, phase: str,
          checkpoints_for: CheckpointsFor, on_epoch_for: OnEpochFor | None
          ) -> tuple[nnx.GraphDef, list, int]:
  """Trains fresh models of ``seeds`` on the fold's training trials; also their frame count."""
  frames, labels = frames_lib.training_frames(trials_lib.select(setup.trials, fold.train),
                                              setup.settings.frame_stride)
  shared = setup.settings.protocol.name == PRETRAIN_PROTOCOL
  checkpoints = checkpoints_for('train', PRETRAIN_KEY if shared else fold.id)
  graphdef, states = _fit(setup, build_models(setup, seeds), frames, labels, setup.settings.train,
                          seeds, name=_label(fold, seeds), phase=phase,
                          checkpoints=checkpoints, on_epoch_for=on_epoch_for)
  return graphdef, states, int(len(frames))


def finetune(setup: RunSetup, fold: Fold, seeds: Sequence[int], graphdef: nnx.GraphDef,
             states: list, *, checkpoints_for: CheckpointsFor,
             on_epoch_for: OnEpochFor | None) -> tuple[nnx.GraphDef, list, int]:
  """The trained models fine-tuned on the fold's ``finetune`` trials (``adapt.finetune_*``)."""
  adapt, plan, train = setup.settings.adapt, setup.plan, setup.settings.train
  frames, labels = frames_lib.training_frames(trials_lib.select(setup.trials, fold.finetune),
                                              setup.settings.frame_stride)
  # The whole fine-tune set in a batch if it is smaller than train.batch_size, rounded
  # down to a multiple of the device count (every device gets an equal share).
  batch = min(train.batch_size, len(frames) // plan.num_devices * plan.num_devices)
  if batch == 0:
    raise ValueError(f'fold {fold.id}: {len(frames)} fine-tuning frames cannot be split over '
                     f'{plan.num_devices} devices; use fewer devices or more '
                     'adapt.finetune_trials.')
  finetune_settings = dataclasses.replace(
      train, epochs=adapt.finetune_epochs, batch_size=batch,
      learning_rate=adapt.finetune_learning_rate, lr_boundaries=())
  trainable = optimizer.check_trainable(states[0].params, adapt.finetune_layers)
  pretrained = [nnx.merge(graphdef, s.params, s.batch_stats) for s in states]
  graphdef, states = _fit(setup, pretrained, frames, labels, finetune_settings, seeds,
                          name=_label(fold, seeds) + ' (finetune)', phase='finetune',
                          checkpoints=checkpoints_for('finetune', fold.id),
                          on_epoch_for=on_epoch_for, trainable=trainable)
  return graphdef, states, int(len(frames))


def align(setup: RunSetup, fold: Fold,
          test_trials: list[Trial]) -> tuple[list[Trial], tuple[int, int]]:
  """The test trials with their estimated grid displacement undone, and that shift.

  The source statistic comes from the fold's training trials; the estimate reads
  the whole test trials (inputs only: labels are never read).
  """
  adapt = setup.settings.adapt
  source = alignment.coactivation([t.emg for t in trials_lib.select(setup.trials, fold.train)],
                                  adapt.align_window)
  shift = alignment.estimate_shift(source, [t.emg for t in test_trials], adapt.align_max_shift,
                                   setup.spec.wrap_axis, adapt.align_window)
  shift = (int(shift[0]), int(shift[1]))
  aligned = [dataclasses.replace(t, emg=alignment.align(t.emg, shift, setup.spec.wrap_axis))
             for t in test_trials]
  return aligned, shift


def adabn(setup: RunSetup, test_trials: list[Trial], graphdef: nnx.GraphDef,
          states: list) -> list:
  """``states`` with BatchNorm statistics of the unlabelled test frames (AdaBN)."""
  target = frames_lib.target_frames(test_trials)
  return [adabn_lib.adabn_state(graphdef, s, target, setup.settings.eval.batch_size)
          for s in states]


def train_fold(setup: RunSetup, fold: Fold, seeds: Sequence[int], *,
               checkpoints_for: CheckpointsFor = lambda phase, key: None,
               on_epoch_for: OnEpochFor | None = None) -> Trained:
  """Every phase the config asks for, on the seeds of one fold (module docstring)."""
  seeds = [int(s) for s in seeds]
  start = time.perf_counter()
  adapt = setup.settings.adapt
  finetunes = bool(fold.finetune) and adapt.finetunes
  graphdef, states, num_train_frames = train(
      setup, fold, seeds, phase='pretrain' if finetunes else 'train',
      checkpoints_for=checkpoints_for, on_epoch_for=on_epoch_for)
  model = nnx.merge(graphdef, states[0].params, states[0].batch_stats)
  num_params, num_total_params = models.num_params(model), models.num_values(model)
  num_finetune_frames = 0
  if finetunes:
    graphdef, states, num_finetune_frames = finetune(
        setup, fold, seeds, graphdef, states, checkpoints_for=checkpoints_for,
        on_epoch_for=on_epoch_for)
  test_trials, shift = trials_lib.select(setup.trials, fold.test), None
  if adapt.aligns:
    test_trials, shift = align(setup, fold, test_trials)
  if adapt.adabn:
    states = adabn(setup, test_trials, graphdef, states)
  return Trained(graphdef=graphdef, states=states, num_params=num_params,
                 num_total_params=num_total_params,
                 num_train_frames=num_train_frames, num_finetune_frames=num_finetune_frames,
                 train_seconds=time.perf_counter() - start, test_trials=test_trials,
                 align_shift=shift)
