r"""Measures how fast the configured model trains and predicts on this machine.

  python -m experiments.benchmark --config=experiments/configs/default.py
  python -m experiments.benchmark --config=experiments/configs/default.py \
      --batch_sizes=1,32,256,1000,4096 --conv_impl=auto,xla --json_out=/tmp/bench.json
  # The default against the straightforward Flax version (XLA's convolutions and
  # compilation defaults, Flax's autodiff BatchNorm gradient), alternately:
  python -m experiments.benchmark --batch_sizes=1,32,256,1000,4096 \
      --conv_impl=auto,xla --batchnorm_grad=closed_form,autodiff

For each convolution formulation (``--conv_impl``, a comma-separated list; default:
the config's ``model.conv_impl``), paired with a BatchNorm gradient (``--batchnorm_grad``:
one for all or one per formulation; default: ``model.batchnorm_grad``), and batch
size it prints one JSON line: compile times, steady-state training throughput (the project's own train step: SGD recipe,
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

from absl import flags
from ml_collections import config_flags

from experiments import cli

_CONFIG = config_flags.DEFINE_config_file('config', 'experiments/configs/default.py',
                                          'Experiment config file (its model is measured).')
_BATCH_SIZES = flags.DEFINE_list('batch_sizes', None,
                                 "Batch sizes to measure (default: the config's train.batch_size).")
_CONV_IMPL = flags.DEFINE_list('conv_impl', None,
                               'Convolution formulations to compare (default: model.conv_impl).')
_BATCHNORM_GRAD = flags.DEFINE_list(
    'batchnorm_grad', None, "BatchNorm backward passes ('closed_form', 'autodiff'): one for every "
    'formulation or one per --conv_impl entry (default: model.batchnorm_grad).')
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


def pair_variants(conv_impls: Sequence[str],
                  batchnorm_grads: Sequence[str]) -> list[tuple[str, str]]:
  """(formulation, BatchNorm gradient) pairs: one gradient for all, or one per formulation."""
  if len(batchnorm_grads) == 1:
    return [(impl, batchnorm_grads[0]) for impl in conv_impls]
  if len(batchnorm_grads) != len(conv_impls):
    raise ValueError(f'--batchnorm_grad has {len(batchnorm_grads)} entries for '
                     f'{len(conv_impls)} --conv_impl entries; give one, or one per formulation.')
  return list(zip(conv_impls, batchnorm_grads))


def run(config: Any, *, batch_sizes: Sequence[int], variants: Sequence[tuple[str, str]],
        precision: str, grid_shape: Sequence[int], num_classes: int, seconds: float,
        repeats: int, latency_samples: int) -> list[dict[str, Any]]:
  """One result per (formulation, BatchNorm gradient): device, model, runs and latency."""
  # Imported here so that --help answers without starting JAX.
  from experiments import benchmarking
  from hdsemg_jax import models
  from hdsemg_jax.ops import conv as conv_ops

  def build(impl: str, batchnorm_grad: str):
    model_config = {**config.model.to_dict(), 'conv_impl': impl, 'batchnorm_grad': batchnorm_grad}
    return models.build_from_config(model_config, num_classes, grid_shape, seed=0)

  def report(variant: tuple[str, str], **fields: Any) -> None:
    print(json.dumps({'conv_impl': variant[0], 'batchnorm_grad': variant[1], **fields}),
          flush=True)

  results = []
  for impl, batchnorm_grad in variants:
    model = build(impl, batchnorm_grad)
    results.append({**benchmarking.device_info(), 'model': config.model.name, 'conv_impl': impl,
                    'batchnorm_grad': batchnorm_grad, 'precision': precision,
                    'grid_shape': list(grid_shape), 'num_classes': num_classes,
                    'num_params': models.num_params(model),
                    'forward_flops_per_frame': benchmarking.forward_flops(model, grid_shape),
                    'runs': []})
  for batch_size in batch_sizes:
    for variant, result in zip(variants, results):
      measured = benchmarking.measure_batch(build(*variant), grid_shape, num_classes, batch_size,
                                            conv_impl=variant[0], precision=precision,
                                            seconds=seconds, repeats=repeats)
      measured['conv_impl_resolved'] = conv_ops.resolve(variant[0], batch_size)
      measured['load_avg_1min'] = os.getloadavg()[0]
      result['runs'].append(benchmarking.add_gflops(measured, result['forward_flops_per_frame']))
      report(variant, **result['runs'][-1])
  for variant, result in zip(variants, results):
    latency = benchmarking.measure_latency(build(*variant), grid_shape, precision=precision,
                                           samples=latency_samples)
    latency['conv_impl_resolved'] = conv_ops.resolve(variant[0], 1)
    latency['load_avg_1min'] = os.getloadavg()[0]
    result['latency'] = benchmarking.add_gflops(latency, result['forward_flops_per_frame'])
    report(variant, latency=result['latency'])
  return results


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise cli.UsageError(f'unexpected arguments: {list(argv[1:])}')
  from experiments import benchmarking
  from hdsemg_jax.reporting import results as results_files
  config = _CONFIG.value
  batch_sizes = [int(b) for b in (_BATCH_SIZES.value or [config.train.batch_size])]
  conv_impls = _CONV_IMPL.value or [config.model.conv_impl]
  batchnorm_grads = _BATCHNORM_GRAD.value or [config.model.batchnorm_grad]
  try:
    pairs = pair_variants(conv_impls, batchnorm_grads)
  except ValueError as e:
    raise cli.UsageError(str(e)) from e
  results = run(config, batch_sizes=batch_sizes, variants=pairs,
                precision=_PRECISION.value, grid_shape=[int(s) for s in _GRID_SHAPE.value],
                num_classes=_NUM_CLASSES.value, seconds=_SECONDS.value, repeats=_REPEATS.value,
                latency_samples=_LATENCY_SAMPLES.value)
  print(json.dumps(results))
  if _JSON_OUT.value:
    with open(_JSON_OUT.value, 'w') as f:
      json.dump(results, f, indent=1)
  others = []
  for path in _COMPARE.value:
    loaded = results_files.read_json(path, 'a benchmark result')
    others.extend(loaded if isinstance(loaded, list) else [loaded])
  print(benchmarking.table(results + others))


if __name__ == '__main__':
  cli.run(main)
