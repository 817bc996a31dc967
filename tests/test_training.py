"""The optimizer recipe and the compiled train step."""

import jax
import numpy as np
import pytest

from hdsemg_jax import checkpointing, models
from hdsemg_jax.training import optimizer, state as state_lib, trainer
from tests.separable_batch import train_on_separable_batch


def _tiny_model(seed=0):
  return models.build('all_convnet', 3, seed=seed, features=(8, 8), kernel_sizes=(3, 1),
                      strides=(1, 1))


def test_weight_decay_applies_to_kernels_only():
  _, params, _ = state_lib.split_model(_tiny_model())
  mask = optimizer.kernel_mask(params)
  flat = {'/'.join(str(getattr(k, 'key', '')) for k in path): v
          for path, v in jax.tree_util.tree_flatten_with_path(mask)[0]}
  assert flat['convs/0/kernel/'] and flat['head/kernel/']
  assert not flat['head/bias/'] and not flat['norms/0/scale/'] and not flat['input_norm/bias/']


def test_learning_rate_drops_tenfold_at_boundaries():
  schedule = optimizer.learning_rate_schedule(0.1, (0.5, 0.75), total_steps=100)
  assert [float(schedule(s)) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx(
      [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_cosine_schedule_spans_the_run_it_is_given():
  # A cut budget gets the whole decay, not the start of a longer run's.
  for total in (10, 1000):
    schedule = optimizer.learning_rate_schedule(0.1, (0.5,), total_steps=total, kind='cosine')
    assert float(schedule(0)) == pytest.approx(0.1)
    assert float(schedule(total // 2)) == pytest.approx(0.05, rel=1e-3)
    assert float(schedule(total)) == pytest.approx(0.0, abs=1e-9)


def test_the_schedule_reaches_the_optimizer():
  step = optimizer.Recipe(0.1, 0.0, 0.0, (0.5,), 100).build()
  cosine = optimizer.Recipe(0.1, 0.0, 0.0, (0.5,), 100, lr_schedule='cosine').build()
  params = {'w': jax.numpy.ones(())}
  grads = {'w': jax.numpy.ones(())}

  def update_at(tx, step_index):
    state = tx.init(params)
    for _ in range(step_index + 1):
      updates, state = tx.update(grads, state, params)
    return float(updates['w'])
  assert update_at(step, 75) == pytest.approx(-0.01)
  assert update_at(cosine, 75) == pytest.approx(-0.1 * 0.5 * (1 + np.cos(np.pi * 0.75)), rel=1e-4)


def test_train_step_lowers_the_loss_on_a_tiny_batch():
  _, state, _, _, losses = train_on_separable_batch(_tiny_model())
  assert losses[-1] < 0.5 * losses[0]
  assert int(state.step) == 30


def test_epoch_order_is_a_function_of_seed_and_epoch():
  a = trainer.epoch_batches(3, 1, 100, 32)
  assert a.shape == (3, 32)
  np.testing.assert_array_equal(a, trainer.epoch_batches(3, 1, 100, 32))
  assert not np.array_equal(a, trainer.epoch_batches(3, 2, 100, 32))
  assert len(set(np.asarray(a).ravel().tolist())) == 96  # No frame twice; the rest dropped.


def test_batch_larger_than_data_is_a_named_error():
  cfg = trainer.TrainSettings(epochs=1, batch_size=64, learning_rate=0.1, momentum=0.9,
                                       weight_decay=0.0, lr_boundaries=())
  with pytest.raises(ValueError, match='train.batch_size=64'):
    trainer.fit(_tiny_model(), np.zeros((10, 6, 4), np.float32), np.zeros(10, np.int32), cfg, 0)


def test_prediction_in_slices_equals_prediction_of_the_whole_batch():
  from hdsemg_jax.training import steps
  tx = optimizer.sgd_recipe(learning_rate=0.1, momentum=0.9, weight_decay=0.0,
                            lr_boundaries=(), total_steps=1)
  graphdef, state = state_lib.create(_tiny_model(), tx, 0)
  frames = np.random.default_rng(0).standard_normal((70, 16, 8)).astype(np.float32)
  whole = np.asarray(jax.jit(steps.predict_fn(graphdef, chunk=0))(state.params, state.batch_stats, frames))
  # 70 frames in slices of 16: four slices and a remainder of 6; 20 in slices of 16: too
  # few to slice.
  sliced = np.asarray(jax.jit(steps.predict_fn(graphdef, chunk=16))(state.params, state.batch_stats, frames))
  np.testing.assert_array_equal(sliced, whole)
  assert len(set(whole.tolist())) > 1  # Not a constant prediction.
  np.testing.assert_array_equal(
      np.asarray(jax.jit(steps.predict_fn(graphdef, chunk=16))(state.params, state.batch_stats, frames[:20])), whole[:20])


class _Preempted(Exception):
  pass


class _MemoryCheckpoints:
  """In-memory checkpoints; ``fail_after`` raises right after that many saves (a preemption)."""

  def __init__(self, fail_after: int | None = None):
    self.saved: list = []
    self.fail_after = fail_after

  def save(self, state):
    # As the real checkpoints store it: plain arrays by path, copied off the (donated) state.
    self.saved.append(jax.tree.map(np.array, checkpointing.to_tree(state)))
    if self.fail_after is not None and len(self.saved) == self.fail_after:
      self.fail_after = None
      raise _Preempted

  def restore(self, like):
    if not self.saved:
      return None
    return checkpointing.from_tree(self.saved[-1], like, 'memory')


def test_training_resumed_mid_epoch_equals_training_straight_through():
  rng = np.random.default_rng(0)
  frames = rng.normal(size=(40, 4, 4)).astype(np.float32)
  labels = rng.integers(0, 3, 40).astype(np.int32)
  cfg = trainer.TrainSettings(epochs=2, batch_size=8, learning_rate=0.1, momentum=0.9,
                                       weight_decay=1e-4, lr_boundaries=(0.5,))
  _, straight = trainer.fit(_tiny_model(), frames, labels, cfg, 0)
  # 5 steps per epoch; a checkpoint every 3 steps; killed right after the one of step 3,
  # inside the first epoch, then resumed from it.
  checkpoints = _MemoryCheckpoints(fail_after=1)
  with pytest.raises(_Preempted):
    trainer.fit(_tiny_model(), frames, labels, cfg, 0, checkpoints=checkpoints, every_steps=3)
  assert [int(s['step']) for s in checkpoints.saved] == [3]
  _, resumed = trainer.fit(_tiny_model(seed=1), frames, labels, cfg, 0, checkpoints=checkpoints,
                           every_steps=3)
  assert [int(s['step']) for s in checkpoints.saved] == [3, 6, 9, 10]
  for a, b in zip(jax.tree.leaves((straight.params, straight.batch_stats)),
                  jax.tree.leaves((resumed.params, resumed.batch_stats))):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
