"""A tiny smoke run of `experiments.benchmark`: every field is there and positive.

No timing is asserted: the tests must pass on a slow or busy machine.
"""

import json
import os
import subprocess
import sys

from experiments import benchmarking
from hdsemg_jax import models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_default_all_convnet_forward_flops_match_a_count_by_hand():
  # 2 x output pixels x kernel window x input channels x output channels, per layer.
  by_hand = 2 * (128 * 9 * 1 * 64 + 128 * 9 * 64 * 64 + 32 * 9 * 64 * 128 + 2 * 32 * 9 * 128 * 128
                 + 32 * 128 * 256 + 32 * 256 * 8)
  for impl in ('xla', 'hybrid'):
    model = models.build('all_convnet', 8, seed=0, conv_impl=impl)
    assert benchmarking.forward_flops(model, (16, 8)) == by_hand == 35_405_824


def test_benchmark_smoke_run_reports_every_field(tmp_path):
  json_out = tmp_path / 'bench.json'
  # experiments.benchmark defines absl flags (as experiments.main does), so it runs apart.
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.benchmark', '--config=experiments/configs/tiny.py',
       '--batch_sizes=4', '--conv_impl=auto,xla', '--seconds=0.02', '--repeats=1',
       '--latency_samples=5', '--batchnorm_grad=closed_form,autodiff',
       f'--json_out={json_out}'],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = json.loads(json_out.read_text())
  assert [r['conv_impl'] for r in results] == ['auto', 'xla']
  assert [r['batchnorm_grad'] for r in results] == ['closed_form', 'autodiff']
  for result in results:
    assert result['framework'] == 'jax' and result['device_count'] >= 1 and result['device_kind']
    assert result['num_params'] > 0 and result['forward_flops_per_frame'] > 0
    assert [run['batch_size'] for run in result['runs']] == [4]
    for run in result['runs']:
      for field in ('compile_train_s', 'compile_predict_s', 'train_frames_per_s',
                    'infer_frames_per_s', 'train_gflops', 'infer_gflops'):
        assert run[field] > 0, field
    for field in ('p50_ms', 'p90_ms', 'latency_gflops'):
      assert result['latency'][field] > 0, field
  # The Markdown table: a row per (formulation, batch size), then one per latency.
  assert proc.stdout.count('| jax |') == 2 + 2
  assert proc.stdout.count('| jax | xla + autodiff BN |') == 2
  assert proc.stdout.count('| jax | auto |') == 2
  assert 'batch-1 latency' in proc.stdout
