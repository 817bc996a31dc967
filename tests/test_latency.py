"""Tests of `experiments.latency` (from plain arguments) and `saved_model.random_model`.

No timing is asserted beyond the order of percentiles: the tests must pass on a slow
or busy machine.
"""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments import latency
from experiments.configs import datasets, default, tiny
from hdsemg_jax import models, saved_model
from hdsemg_jax.preprocessing import filters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FS = 1000.0
GRID = (16, 4)
NUM_CLASSES = 5
CHAIN = tuple(datasets.FLEXEMG['filters'])


def tiny_kwargs() -> dict:
  """The tiny All-ConvNet's keys, with the default config's other All-ConvNet keys."""
  model = default.get_config().model
  return {**tiny.TINY_MODEL,
          **{k: model[k] for k in ('bn_momentum', 'bn_epsilon', 'conv_impl', 'batchnorm_grad')}}


@pytest.fixture(scope='module')
def conditioning() -> filters.Conditioning:
  return filters.Conditioning(CHAIN, 'causal', FS)


@pytest.fixture(scope='module')
def tiny_model(conditioning) -> saved_model.Model:
  return saved_model.random_model('all_convnet', tiny_kwargs(), NUM_CLASSES, GRID, conditioning,
                                  seed=0, eval_batch_size=64)


def test_random_model_predicts_a_class_per_frame_and_carries_its_conditioning(tiny_model,
                                                                             conditioning):
  frames = np.random.default_rng(0).normal(size=(100, *GRID)).astype(np.float32)
  classes = tiny_model.predict(frames)
  assert classes.shape == (100,)
  assert classes.min() >= 0 and classes.max() < NUM_CLASSES
  info = tiny_model.info
  assert info.conditioning == conditioning
  assert info.conditioning.filters == CHAIN and info.conditioning.sampling_rate_hz == FS
  assert info.model == 'all_convnet' and info.num_classes == NUM_CLASSES
  assert info.grid_shape == GRID and len(info.class_names) == NUM_CLASSES
  assert info.dataset == saved_model.RANDOM_WEIGHTS and info.eval_batch_size == 64
  # Only the network's own keys: what a run's model.json holds, enough to rebuild it.
  assert set(info.model_kwargs) == set(models.MODEL_KEYS['all_convnet'])
  assert tuple(info.model_kwargs['features']) == tiny.TINY_MODEL['features']
  # The same seed draws the same network; another seed, another.
  again = saved_model.random_model('all_convnet', tiny_kwargs(), NUM_CLASSES, GRID, conditioning)
  other = saved_model.random_model('all_convnet', tiny_kwargs(), NUM_CLASSES, GRID, conditioning,
                                   seed=1)
  np.testing.assert_array_equal(again.predict(frames), classes)
  assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(tiny_model.params),
                                                       jax.tree.leaves(other.params)))


def test_random_model_refuses_missing_keys_and_unknown_models(conditioning):
  kwargs = tiny_kwargs()
  del kwargs['strides']
  with pytest.raises(ValueError, match='model.strides'):
    saved_model.random_model('all_convnet', kwargs, NUM_CLASSES, GRID, conditioning)
  with pytest.raises(ValueError, match='not known'):
    saved_model.random_model('no_such_net', tiny_kwargs(), NUM_CLASSES, GRID, conditioning)


def test_default_model_is_the_default_config_network_with_the_flexemg_chain():
  model = latency.model_from_config(latency.default_config())
  info = model.info
  config_model = default.get_config().model
  assert info.model == config_model.name
  assert {k: tuple(v) if isinstance(v, (list, tuple)) else v
          for k, v in info.model_kwargs.items()} == {
              k: config_model[k] for k in models.MODEL_KEYS[config_model.name]}
  assert info.conditioning.filters == CHAIN
  assert info.conditioning.sampling_rate_hz == latency.SAMPLING_RATE_HZ
  assert info.grid_shape == latency.GRID_SHAPE and info.num_classes == latency.NUM_CLASSES


def test_measure_jax_rows_table_and_report(tiny_model):
  chunk_sizes = (4, 7)
  rows = latency.measure(tiny_model, runtimes=('jax',), window=5, samples=20,
                         chunk_sizes=chunk_sizes, chunk_repeats=6, batch=8, warmup=5,
                         chunk_warmup=2, throughput_repeats=2)
  assert [r['runtime'] for r in rows] == ['jax']
  row = rows[0]
  # The decoder that was timed runs the model's chain, at its rate, voting over the window.
  assert tuple(row['decoder_filters']) == CHAIN
  assert row['decoder_sampling_rate_hz'] == FS and row['decoder_window'] == 5
  for figures in (row['decision_1'], row['model_1'], *row['chunks'].values()):
    assert 0 < figures['p50_ms'] <= figures['p99_ms']
  assert sorted(row['chunks']) == list(chunk_sizes)
  assert row['batch_frames_per_s'] > 0

  text = latency.table(rows, chunk_sizes, batch=8)
  lines = text.splitlines()
  assert len(lines) == 2 + len(rows)
  assert 'chunk of 4 p50 / p99 (ms)' in lines[0] and 'batch 8 (frames/s)' in lines[0]
  assert lines[2].startswith('| jax | jax ') and lines[2].count('|') == lines[0].count('|')

  printed = latency.report(rows, tiny_model, host=latency.machine(), load_before='b',
                           load_after='a', window=5, chunk_sizes=chunk_sizes, batch=8)
  assert text in printed
  assert 'causal notch:60:50, bandpass:20:450 at 1000 Hz, vote over 5 frames' in printed
  assert 'random weights' in printed and 'Best single-sample decision: jax' in printed


def test_measure_refuses_unknown_runtimes(tiny_model):
  with pytest.raises(ValueError, match='unknown runtime'):
    latency.measure(tiny_model, runtimes=('tensorflow',))


@pytest.mark.slow  # An ONNX export: about 10 s.
def test_measure_onnx_runtimes_decode_with_the_same_chain(tiny_model):
  # The ONNX decoders are built from the exported file's JSON: the chain must travel with it.
  rows = latency.measure(tiny_model, runtimes=('onnxruntime', 'onnxruntime-default'), window=3,
                         samples=10, chunk_sizes=(5,), chunk_repeats=3, batch=8, warmup=3,
                         chunk_warmup=1, throughput_repeats=1)
  assert [r['runtime'] for r in rows] == ['onnxruntime', 'onnxruntime-default']
  for row in rows:
    assert tuple(row['decoder_filters']) == CHAIN and row['decoder_sampling_rate_hz'] == FS
    assert row['decoder_window'] == 3
    assert 0 < row['decision_1']['p50_ms'] <= row['decision_1']['p99_ms']
  assert len(latency.table(rows, (5,), batch=8).splitlines()) == 2 + 2


@pytest.mark.slow  # Subprocesses.
def test_cli_help_and_usage_errors():
  def run(*args):
    return subprocess.run([sys.executable, '-m', 'experiments.latency', *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
  helped = run('--help')
  # absl exits 1 after --help, as every command here does; the help is the whole output.
  assert '--chunk_sizes' in helped.stdout and 'flexemg' in helped.stdout, helped.stderr[-2000:]
  assert 'Traceback' not in helped.stderr
  for args, message in [(['--run_dir=/nowhere'], '--run_dir needs --fold.'),
                        (['--chunk_sizes=0'], '--chunk_sizes takes positive'),
                        (['--runtimes=tensorflow'], 'unknown tensorflow'),
                        (['--run_dir=/nowhere', '--fold=F', '--filters=demean'],
                         '--filters is for the random-weights model')]:
    proc = run(*args)
    assert proc.returncode == 2, (args, proc.stderr[-2000:])
    assert proc.stderr.startswith('error: ') and message in proc.stderr, proc.stderr[-2000:]
