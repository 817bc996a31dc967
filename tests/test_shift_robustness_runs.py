"""Electrode-shift robustness through the experiment: augmentation, alignment, eval.shifts.

On `synthetic_hdsemg/shifted` every later session is session 1 displaced by a known
whole-electrode shift (its metadata): the alignment a run estimates from unlabelled
test inputs must undo exactly that shift.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import tiny
from hdsemg_jax import models
from hdsemg_jax.run import experiment
from hdsemg_jax.training import augment as augment_lib
from hdsemg_jax.training import optimizer, state as state_lib, steps, trainer
from tfds_builders import prepare
from tfds_builders.synthetic_hdsemg import synthetic_hdsemg_dataset_builder as synthetic


@pytest.fixture(scope='module')
def shifted_data_dir(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp('tfds_shifted'))
  prepare.prepare('synthetic_hdsemg/shifted', data_dir=data_dir)
  return data_dir


@pytest.mark.slow
def test_inter_session_run_aligns_to_the_known_shift_with_augmentation(shifted_data_dir,
                                                                      tmp_path):
  config = tiny.get_config()
  config.dataset.name = 'synthetic_hdsemg/shifted'
  config.dataset.data_dir = shifted_data_dir
  config.protocol.name = 'inter_session'
  config.protocol.sessions = None
  config.protocol.subjects = (1,)
  config.train.epochs = 1
  config.seeds = (0,)
  config.train.augment.max_shift = (1, 1)
  config.train.augment.gain_jitter = 0.1
  config.adapt.method = 'align+adabn'
  config.adapt.align_max_shift = (3, 4)
  config.eval.shifts = ('0:-1', '0:0', '0:1')
  rows = experiment.train_and_evaluate(config, str(tmp_path))
  truth = dict(enumerate(synthetic.SHIFTED_SESSION_SHIFTS, start=1))
  assert [r['fold'] for r in rows] == ['S01-s1>s2', 'S01-s1>s3', 'S01-s1>s4']
  for r in rows:
    dr, dc = truth[int(r['fold'][-1])]
    assert r['align_shift'] == [-dr, -dc], r['fold']
    assert r['adapt_method'] == 'align+adabn'
    assert r['augment'] == {'max_shift': [1, 1], 'gain_jitter': 0.1, 'electrode_dropout': 0.0}
    assert [s['shift'] for s in r['shift_scores']] == [[0, -1], [0, 0], [0, 1]]
    # The unshifted robustness score is the row's own score.
    assert r['shift_scores'][1]['frame_accuracy'] == r['frame_accuracy']
  assert (tmp_path / 'shift_robustness.png').exists()


def _step_inputs():
  model = models.build('all_convnet', 3, seed=0, features=(8,), kernel_sizes=(3,), strides=(1,))
  tx = optimizer.sgd_recipe(learning_rate=0.1, momentum=0.9, weight_decay=1e-4,
                            lr_boundaries=(), total_steps=10)
  graphdef, state = state_lib.create(model, tx, 0)
  rng = np.random.default_rng(0)
  frames = jnp.asarray(rng.normal(size=(16, 6, 4)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 3, 16), jnp.int32)
  return graphdef, tx, state, frames, labels


def test_augmentation_in_the_step_is_a_function_of_seed_and_step():
  graphdef, tx, state, frames, labels = _step_inputs()
  settings = augment_lib.AugmentSettings(max_shift=(2, 1), gain_jitter=0.2, electrode_dropout=0.1)
  augmented = jax.jit(steps.train_step_fn(graphdef, tx, options=steps.StepOptions.create(
      augment=settings, wrap_axis=0)))
  plain = jax.jit(steps.train_step_fn(graphdef, tx))
  batch = jnp.arange(8)
  copy = lambda s: jax.tree.map(jnp.copy, s)  # noqa: E731
  a, _ = augmented(copy(state), frames, labels, batch)
  b, _ = augmented(copy(state), frames, labels, batch)
  jax.tree.map(np.testing.assert_array_equal, a.params, b.params)  # Same (seed, step).
  c, _ = plain(copy(state), frames, labels, batch)
  later, _ = augmented(copy(state).replace(step=state.step + 1), frames, labels, batch)
  differs = lambda x, y: any(not np.array_equal(p, q) for p, q in  # noqa: E731
                             zip(jax.tree.leaves(x.params), jax.tree.leaves(y.params)))
  assert differs(a, c)  # Augmentation changed what the step saw...
  assert differs(a, later)  # ...and another step draws other shifts, gains and dropouts.
  # Off: the step is exactly the one without augmentation.
  off = steps.StepOptions.create(augment=augment_lib.AugmentSettings(), wrap_axis=0)
  assert off == steps.StepOptions(wrap_axis=0) and off.augment is None


def test_augmented_training_resumes_to_the_same_state():
  _, _, _, frames, labels = _step_inputs()
  cfg = trainer.TrainSettings(epochs=2, batch_size=4, learning_rate=0.1, momentum=0.9,
                              weight_decay=1e-4, lr_boundaries=())
  options = steps.StepOptions.create(
      augment=augment_lib.AugmentSettings(max_shift=(2, 1), gain_jitter=0.2), wrap_axis=0)

  def model():
    return models.build('all_convnet', 3, seed=0, features=(8,), kernel_sizes=(3,),
                        strides=(1,))

  _, straight = trainer.fit(model(), np.asarray(frames), np.asarray(labels), cfg, 0,
                            options=options)
  from tests.test_training import _MemoryCheckpoints, _Preempted
  checkpoints = _MemoryCheckpoints(fail_after=1)
  with pytest.raises(_Preempted):
    trainer.fit(model(), np.asarray(frames), np.asarray(labels), cfg, 0, options=options,
                checkpoints=checkpoints, every_steps=3)
  _, resumed = trainer.fit(model(), np.asarray(frames), np.asarray(labels), cfg, 0,
                           options=options, checkpoints=checkpoints, every_steps=3)
  for a, b in zip(jax.tree.leaves(straight.params), jax.tree.leaves(resumed.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
