"""Speed measurements of a model: compile time, throughput, latency, achieved FLOP/s.

`experiments.benchmark` is the command line (this module is its library, a tool beside
the experiments rather than part of `hdsemg_jax`); `experiments/torch_reference.py`
reports the same fields for PyTorch so both can be tabulated side by side.

Training is measured with the project's own train step (`steps.make_train_step`
on `state.create` with `optimizer.sgd_recipe`, what `trainer.fit` runs), the
frames on the device and every step gathering its batch there, so the figures
are those of a real run. Steady-state figures exclude compilation: each
function is compiled (and timed) once, run a few times to warm up, then timed
over several repeats whose median is reported.

FLOPs are analytic: two per multiply-add of the convolutions and matrix products
of the model's forward pass, from the layer shapes, whatever formulation computes
them (XLA's cost analysis also counts patch extraction and other data movement,
so it is not comparable between formulations). A training step counts three
forward passes: the forward pass, the input gradient and the weight gradient of
every layer. BatchNorm, activations and the optimizer are not counted.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hdsemg_jax import ops
from hdsemg_jax.evaluation import cost
from hdsemg_jax.training import optimizer, state as state_lib, steps

# Forward + input gradient + weight gradient.
TRAIN_FLOPS_PER_FORWARD = 3
PRECISIONS = ('float32', 'bfloat16')


def forward_flops(model: nnx.Module, frame_shape: Sequence[int]) -> int:
  """FLOPs of one frame's forward pass through the convolutions and matrix products."""
  return int(cost.model_forward_flops(model, frame_shape))


def _cast(tree: Any, dtype: Any) -> Any:
  return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a,
                      tree)


def _median_rate(run: Callable[[], Any], frames_per_call: int, seconds: float, repeats: int,
                 warmup: int) -> float:
  """Median frames/s over ``repeats`` timings of as many calls as fill ``seconds``."""
  for _ in range(warmup):
    jax.block_until_ready(run())
  start = time.perf_counter()
  jax.block_until_ready(run())
  calls = max(2, int(seconds / repeats / max(time.perf_counter() - start, 1e-6)))
  rates = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(calls):
      out = run()
    jax.block_until_ready(out)
    rates.append(calls * frames_per_call / (time.perf_counter() - start))
  return statistics.median(rates)


def _timed_compile(jitted, *args) -> tuple[Any, float]:
  start = time.perf_counter()
  compiled = jitted.lower(*args).compile()
  return compiled, time.perf_counter() - start


def measure_batch(model: nnx.Module, frame_shape: Sequence[int], num_classes: int,
                  batch_size: int, *, conv_impl: str = 'xla', precision: str = 'float32',
                  seconds: float = 4.0, repeats: int = 5, warmup: int = 3,
                  seed: int = 0) -> dict[str, float]:
  """Compile times and steady-state training and inference throughput at ``batch_size``.

  ``model`` is not changed (the train state holds copies of its parameters). The
  train step is compiled with the options a run of ``model.conv_impl=conv_impl``
  gets (`hdsemg_jax.ops.train_compiler_options`).
  """
  if precision not in PRECISIONS:
    raise ValueError(f'precision={precision!r} is not known (known: {", ".join(PRECISIONS)}).')
  dtype = jnp.dtype(precision)
  rng = np.random.default_rng(seed)
  # A few batches' worth of frames on the device, gathered per step like trainer.fit does.
  num_frames = 4 * batch_size
  frames = jax.device_put(rng.standard_normal((num_frames, *frame_shape)).astype(dtype))
  labels = jax.device_put(rng.integers(0, num_classes, num_frames).astype(np.int32))
  batches = [jax.device_put(rng.permutation(num_frames)[:batch_size].astype(np.int32))
             for _ in range(4)]

  tx = optimizer.sgd_recipe(learning_rate=0.01, momentum=0.9, weight_decay=1e-4,
                            lr_boundaries=(0.5,), total_steps=10**9)
  graphdef, state = state_lib.create(model, tx, seed)
  state = state.replace(params=_cast(state.params, dtype), opt_state=_cast(state.opt_state, dtype),
                        batch_stats=_cast(state.batch_stats, dtype))
  # The train step donates its state, so the model's own arrays must not be in it.
  state = jax.tree.map(jnp.copy, state)
  options = ops.train_compiler_options(conv_impl, batch_size)
  train_step, compile_train = _timed_compile(
      steps.make_train_step(graphdef, tx, steps.StepOptions.create(compiler_options=options)),
                                             state, frames, labels, batches[0])
  holder = {'state': state, 'i': 0}

  def train():
    holder['i'] += 1
    holder['state'], metrics = train_step(holder['state'], frames, labels,
                                          batches[holder['i'] % len(batches)])
    return metrics

  train_rate = _median_rate(train, batch_size, seconds, repeats, warmup)

  x = frames[:batch_size]
  predict, compile_predict = _timed_compile(steps.make_predict(graphdef),
                                            holder['state'].params, holder['state'].batch_stats, x)
  infer_rate = _median_rate(
      lambda: predict(holder['state'].params, holder['state'].batch_stats, x), batch_size,
      seconds, repeats, warmup)
  return {'batch_size': batch_size, 'compile_train_s': compile_train,
          'compile_predict_s': compile_predict, 'train_frames_per_s': train_rate,
          'infer_frames_per_s': infer_rate}


def measure_latency(model: nnx.Module, frame_shape: Sequence[int], *, precision: str = 'float32',
                    samples: int = 2000, warmup: int = 50, seed: int = 0) -> dict[str, float]:
  """Single-frame prediction latency: a host frame in, its class back on the host."""
  dtype = jnp.dtype(precision)
  graphdef, params, batch_stats = state_lib.split_model(model)
  params, batch_stats = _cast(params, dtype), _cast(batch_stats, dtype)
  predict = steps.make_predict(graphdef)
  frames = np.random.default_rng(seed).standard_normal((samples, 1, *frame_shape)).astype(dtype)
  for i in range(warmup):
    np.asarray(predict(params, batch_stats, frames[i % samples]))
  times = np.empty(samples)
  for i in range(samples):
    start = time.perf_counter()
    np.asarray(predict(params, batch_stats, frames[i]))
    times[i] = time.perf_counter() - start
  return {'p50_ms': 1e3 * float(np.percentile(times, 50)),
          'p90_ms': 1e3 * float(np.percentile(times, 90))}


def add_gflops(result: dict[str, Any], flops_per_frame: int) -> dict[str, Any]:
  """Adds achieved GFLOP/s to a result of `measure_batch`/`measure_latency` (or PyTorch's)."""
  out = dict(result)
  if 'train_frames_per_s' in out:
    train_flops = TRAIN_FLOPS_PER_FORWARD * flops_per_frame
    out['train_gflops'] = out['train_frames_per_s'] * train_flops / 1e9
    out['infer_gflops'] = out['infer_frames_per_s'] * flops_per_frame / 1e9
  if 'p50_ms' in out:
    out['latency_gflops'] = flops_per_frame / (out['p50_ms'] * 1e-3) / 1e9
  return out


def device_info() -> dict[str, Any]:
  """The backend, the kind and number of devices a computation here runs on."""
  devices = jax.devices()
  return {'framework': 'jax', 'version': jax.__version__, 'backend': jax.default_backend(),
          'device_kind': devices[0].device_kind, 'device_count': len(devices)}


def table(results: Sequence[dict[str, Any]]) -> str:
  """A Markdown table of `experiments.benchmark` / torch_reference JSON outputs, one row per run."""
  header = ('| framework | impl | batch | train frames/s | infer frames/s | train GFLOP/s '
            '| infer GFLOP/s | compile s |')
  lines = [header, '|---|---|---:|---:|---:|---:|---:|---:|']

  def impl(res: dict[str, Any]) -> str:
    # A formulation, and the BatchNorm gradient where it is not the default.
    name = res.get('conv_impl', '-')
    return name + (' + autodiff BN' if res.get('batchnorm_grad') == 'autodiff' else '')

  for res in results:
    for run in res['runs']:
      lines.append(
          f"| {res['framework']} | {impl(res)} | {run['batch_size']} "
          f"| {run['train_frames_per_s']:.0f} | {run['infer_frames_per_s']:.0f} "
          f"| {run.get('train_gflops', 0):.1f} | {run.get('infer_gflops', 0):.1f} "
          f"| {run['compile_train_s'] + run['compile_predict_s']:.2f} |")
  lat = [r for r in results if r.get('latency')]
  if lat:
    lines += ['', '| framework | impl | batch-1 latency p50 ms | p90 ms |', '|---|---|---:|---:|']
    for res in lat:
      lines.append(f"| {res['framework']} | {impl(res)} "
                   f"| {res['latency']['p50_ms']:.3f} | {res['latency']['p90_ms']:.3f} |")
  return '\n'.join(lines)
