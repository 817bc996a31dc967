"""Checks that need several (fake CPU) devices, run by tests/test_parallel.py in a subprocess.

XLA splits the CPU into devices only before JAX starts, so these run in a fresh
process: ``python tests/parallel_worker.py NUM_DEVICES CHECK [DATA_DIR]``. Each
check asserts and exits 0, or raises.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

jax.config.update('jax_num_cpu_devices', int(sys.argv[1]))

import numpy as np  # noqa: E402

from experiments.configs import tiny  # noqa: E402
from hdsemg_jax import models, process_setup  # noqa: E402
from hdsemg_jax.run import experiment
from hdsemg_jax.evaluation import evaluate  # noqa: E402
from hdsemg_jax.training import parallel, steps, trainer  # noqa: E402

process_setup.enable_compilation_cache()

# Tolerances for one program against another: XLA may order reductions differently.
TOL = dict(rtol=2e-4, atol=2e-5)
TRACES: list[str] = []


def _count_traces() -> None:
  """Counts every trace of the train step body (a trace precedes every compilation)."""
  original = steps.train_step_fn

  def counted(*args, **kwargs):
    step = original(*args, **kwargs)

    def traced(*a):
      TRACES.append('step')
      return step(*a)
    return traced

  steps.train_step_fn = counted


def _data():
  rng = np.random.default_rng(0)
  # 8 classes whose frames differ in mean, so that training has something to learn.
  labels = rng.integers(0, 8, 264).astype(np.int32)  # 264 = 8 full batches of 32, and 8 more.
  frames = (rng.normal(size=(264, 16, 8)) + labels[:, None, None] / 4).astype(np.float32)
  return frames, labels


def _config(epochs=2):
  return trainer.TrainSettings(epochs=epochs, batch_size=32, learning_rate=0.1,
                                        momentum=0.9, weight_decay=1e-4, lr_boundaries=(0.5,))


def _model(seed):
  return models.build('all_convnet', 8, seed=seed, **tiny.TINY_MODEL)


def _assert_close(a, b, what):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), err_msg=what, **TOL)


def check_modes() -> None:
  """none, pmap and sharding agree; seed-parallel equals seeds one at a time; one trace each."""
  assert jax.device_count() == 4, jax.devices()
  _count_traces()
  frames, labels = _data()
  test = frames[:70]  # Not a multiple of the eval batch: the last batch is padded.
  results = {}
  for mode in ('none', 'pmap', 'sharding'):
    plan = parallel.Plan.create(mode)
    assert plan.num_devices == (1 if mode == 'none' else 4)
    TRACES.clear()
    per_seed, curves = [], []
    for seed in (0, 1):
      summaries = []
      graphdef, state = trainer.fit(_model(seed), frames, labels, _config(), seed, plan=plan,
                                    on_epoch=lambda e, s, out=summaries: out.append(s))
      assert int(state.step) == 16
      per_seed.append(state)
      curves.append(summaries)
    # Both seeds, 16 steps each: one compilation (the seeds share the program).
    assert TRACES == ['step'], (mode, TRACES)
    TRACES.clear()
    stacked_curves = [[], []]
    _, stacked = trainer.fit_seeds(
        [_model(0), _model(1)], frames, labels, _config(), [0, 1], plan=plan,
        on_epoch=[lambda e, s, out=out: out.append(s) for out in stacked_curves])
    assert TRACES == ['step'], (mode, TRACES)
    for i in (0, 1):
      _assert_close((per_seed[i].params, per_seed[i].batch_stats),
                    (stacked[i].params, stacked[i].batch_stats), f'{mode} seed-parallel seed {i}')
      for a, b in zip(curves[i], stacked_curves[i]):
        np.testing.assert_allclose([a['loss'], a['accuracy']], [b['loss'], b['accuracy']],
                                   **TOL)
    predictions = evaluate.predict_frames(plan.predictor(graphdef, per_seed[0]), test, 32)
    assert predictions.shape == (len(test),)
    results[mode] = per_seed, curves, predictions

  ref_states, ref_curves, ref_predictions = results['none']
  assert ref_curves[0][-1]['loss'] < ref_curves[0][0]['loss']  # It trained.
  for mode in ('pmap', 'sharding'):
    states, curves, predictions = results[mode]
    for i in (0, 1):
      _assert_close((ref_states[i].params, ref_states[i].batch_stats),
                    (states[i].params, states[i].batch_stats), f'{mode} vs none, seed {i}')
      for a, b in zip(ref_curves[i], curves[i]):
        np.testing.assert_allclose([a['loss'], a['accuracy']], [b['loss'], b['accuracy']],
                                   **TOL)
    # Equal parameters up to rounding: equal classes but for a rare near-tie.
    assert np.mean(predictions == ref_predictions) > 0.95, (mode, predictions, ref_predictions)
  # The BN statistics did move away from their initial values (the comparison means something).
  bn = jax.tree.leaves(ref_states[0].batch_stats)
  assert any(np.abs(np.asarray(x)).max() > 1e-3 and not np.allclose(x, 1.0) for x in bn)
  print('modes agree')


def check_experiment(data_dir: str) -> None:
  """One fold, two seeds, pre-train and fine-tune: one compilation per (fold, phase)."""
  _count_traces()
  rows = {}
  for mode, seed_parallel in (('pmap', False), ('sharding', True)):
    config = tiny.get_config()
    config.dataset.data_dir = data_dir
    config.protocol.name = 'inter_session'
    config.protocol.sessions = None
    config.protocol.subjects = (1,)
    config.adapt.method = 'finetune'
    config.adapt.finetune_epochs = 2
    config.train.epochs = 2
    config.eval.batch_size = 64
    config.parallel = mode
    config.seed_parallel = seed_parallel
    TRACES.clear()
    trainer._compiled_step.cache_clear()  # pylint: disable=protected-access
    workdir = os.path.join(os.environ['WORKDIR'], mode)
    out = experiment.train_and_evaluate(config, workdir)
    folds = {r['fold'] for r in out}
    assert len(out) == 2 and len(folds) == 1, out
    # Per fold: one trace for pre-training and one for fine-tuning, whatever the seeds.
    assert TRACES == ['step'] * 2, (mode, TRACES)
    for r in out:
      assert r['parallel'] == mode and r['seed_parallel'] == seed_parallel
      assert r['num_devices'] == 4 and r['num_cpu_devices'] == 4
      assert r['provenance']['device_count'] == 4
    rows[mode] = out
  # Seeds one at a time under pmap, all at once under sharding: the same models up to rounding.
  for a, b in zip(rows['pmap'], rows['sharding'], strict=True):
    assert a['seed'] == b['seed']
    assert abs(a['frame_accuracy'] - b['frame_accuracy']) < 0.01, (a, b)
  print('experiment compiled once per phase')


def check_multihost() -> None:
  """One of two processes (2 CPU devices each): pmap and sharding over all 4 devices agree."""
  assert process_setup.initialize_distributed()
  assert jax.process_count() == 2 and jax.device_count() == 4 and jax.local_device_count() == 2
  frames, labels = _data()
  out = {}
  for mode in ('pmap', 'sharding'):
    plan = parallel.Plan.create(mode)
    assert plan.num_devices == 4
    graphdef, state = trainer.fit(_model(0), frames, labels, _config(1), 0, plan=plan)
    predictions = evaluate.predict_frames(plan.predictor(graphdef, state), frames[:70], 32)
    out[mode] = state, predictions
  _assert_close((out['pmap'][0].params, out['pmap'][0].batch_stats),
                (out['sharding'][0].params, out['sharding'][0].batch_stats), 'pmap vs sharding')
  assert np.mean(out['pmap'][1] == out['sharding'][1]) > 0.95
  total = sum(float(np.abs(np.asarray(x)).sum()) for x in jax.tree.leaves(out['pmap'][0].params))
  print(f'process {jax.process_index()}: modes agree, |params| {total:.3f}')


if __name__ == '__main__':
  check = sys.argv[2]
  if check == 'modes':
    check_modes()
  elif check == 'multihost':
    check_multihost()
  elif check == 'experiment':
    check_experiment(sys.argv[3])
  else:
    raise SystemExit(f'unknown check {check}')
