r"""Measures how fast the configured model trains and predicts on this machine.

  python -m experiments.benchmark --config=experiments/configs/default.py
  python -m experiments.benchmark --config=experiments/configs/default.py \
      --batch_sizes=1,32,256,1000,4096 --conv_impl=auto,xla --json_out=/tmp/bench.json

For each convolution formulation (``--conv_impl``, a comma-separated list; default:
the config's ``model.conv_impl``) and batch size it prints one JSON line: compile
times, steady-state training throughput (the project's own train step: SGD recipe,
BatchNorm in training mode, the batch gathered on the device) and batched inference
throughput, both in frames/s (median of ``--repeats`` timings after warm-up), and the
achieved GFLOP/s of the model's analytic FLOPs; then single-frame latency p50/p90
(batch 1, a host frame in and its class back), the device kind and count, and a
Markdown table of all of it. Batch sizes are measured in turn for every formulation,
so the formulations are compared alternately under the same background load.

The input is random frames of ``--grid_shape`` with ``--num_classes`` classes
(CapgMyo's 16 x 8 grid and 8 gestures by default): speed does not depend on the data,
so no dataset is prepared. `experiments/torch_reference.py` prints the same fields for
PyTorch; pass its JSON with ``--compare`` to tabulate both.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file('config', 'experiments/configs/default.py',
                                          'Experiment config file (its model is measured).')
_BATCH_SIZES = flags.DEFINE_list('batch_sizes', None,
                                 "Batch sizes to measure (default: the config's train.batch_size).")
_CONV_IMPL = flags.DEFINE_list('conv_impl', None,
                               'Convolution formulations to compare (default: model.conv_impl).')
_PRECISION = flags.DEFINE_enum('precision', 'float32', ['float32', 'bfloat16'],
                               'Dtype of parameters, frames and computation.')
_GRID_SHAPE = flags.DEFINE_list('grid_shape', ['16', '8'], 'Electrode grid H,W of the frames.')
_NUM_CLASSES = flags.DEFINE_integer('num_classes', 8, 'Number of classes.')
_SECONDS = flags.DEFINE_float('seconds', 4.0, 'Timed seconds per throughput measurement.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timings per throughput measurement (median).')
_LATENCY_SAMPLES = flags.DEFINE_integer('latency_samples', 2000,
                                        'Single-frame predictions timed for the latency.')
_JSON_OUT = flags.DEFINE_string('json_out', None, 'Also write the results (a JSON list) here.')
_COMPARE = flags.DEFINE_list('compare', [],
                             'JSON files of earlier results (e.g. torch_reference.py --json_out) '
                             'to add to the table.')


def run(config: Any, *, batch_sizes: Sequence[int], conv_impls: Sequence[str], precision: str,
        grid_shape: Sequence[int], num_classes: int, seconds: float, repeats: int,
        latency_samples: int) -> list[dict[str, Any]]:
  """One result per formulation: device, model, per-batch-size runs and latency."""
  # Imported here so that --help answers without starting JAX.
  from hdsemg_jax import benchmarking, experiment, models
  from hdsemg_jax.models import conv_impls as conv_impls_lib

  def build(impl: str):
    kwargs = {**experiment.model_kwargs(config.model), 'conv_impl': impl,
              'grid_shape': tuple(grid_shape)}
    return models.build(config.model.name, num_classes, seed=0, **kwargs)

  results = []
  for impl in conv_impls:
    model = build(impl)
    results.append({**benchmarking.device_info(), 'model': config.model.name, 'conv_impl': impl,
                    'precision': precision,
                    'grid_shape': list(grid_shape), 'num_classes': num_classes,
                    'num_params': models.num_params(model),
                    'forward_flops_per_frame': benchmarking.forward_flops(model, grid_shape),
                    'runs': []})
  for batch_size in batch_sizes:
    for impl, result in zip(conv_impls, results):
      measured = benchmarking.measure_batch(build(impl), grid_shape, num_classes, batch_size,
                                            precision=precision, seconds=seconds,
                                            repeats=repeats)
      measured['conv_impl_resolved'] = conv_impls_lib.resolve(impl, batch_size)
      measured['load_avg_1min'] = os.getloadavg()[0]
      result['runs'].append(benchmarking.add_gflops(measured, result['forward_flops_per_frame']))
      print(json.dumps({'conv_impl': impl, **result['runs'][-1]}), flush=True)
  for impl, result in zip(conv_impls, results):
    latency = benchmarking.measure_latency(build(impl), grid_shape, precision=precision,
                                           samples=latency_samples)
    latency['conv_impl_resolved'] = conv_impls_lib.resolve(impl, 1)
    latency['load_avg_1min'] = os.getloadavg()[0]
    result['latency'] = benchmarking.add_gflops(latency, result['forward_flops_per_frame'])
    print(json.dumps({'conv_impl': impl, 'latency': result['latency']}), flush=True)
  return results


def main(argv: Sequence[str]) -> None:
  del argv
  from hdsemg_jax import benchmarking
  config = _CONFIG.value
  batch_sizes = [int(b) for b in (_BATCH_SIZES.value or [config.train.batch_size])]
  conv_impls = _CONV_IMPL.value or [config.model.get('conv_impl', 'xla')]
  results = run(config, batch_sizes=batch_sizes, conv_impls=conv_impls,
                precision=_PRECISION.value, grid_shape=[int(s) for s in _GRID_SHAPE.value],
                num_classes=_NUM_CLASSES.value, seconds=_SECONDS.value, repeats=_REPEATS.value,
                latency_samples=_LATENCY_SAMPLES.value)
  print(json.dumps(results))
  if _JSON_OUT.value:
    with open(_JSON_OUT.value, 'w') as f:
      json.dump(results, f, indent=1)
  others = []
  for path in _COMPARE.value:
    with open(path) as f:
      loaded = json.load(f)
    others.extend(loaded if isinstance(loaded, list) else [loaded])
  print(benchmarking.table(results + others))


if __name__ == '__main__':
  app.run(main)
