r"""Decision latency and throughput of the streaming decoder on every runtime.

  python -m experiments.latency                          # the default All-ConvNet, random weights
  python -m experiments.latency --run_dir=RUN --fold=S01-s1 --seed=0   # a trained model
  PYTHONPATH=/path/to/torch python -m experiments.latency   # adds the PyTorch reference

For each runtime it measures, on one sample stream of random data:

* decision, 1 sample: `hdsemg_jax.streaming.Decoder.push` of a single sample (channel
  check, causal filters, the model on one frame, the trailing vote), p50 and p99;
* model only, 1 frame: the runtime's classify call alone, p50 and p99;
* chunk of k samples: ``push`` of k samples at once (all k frames decided), p50 and p99;
* batch: frames per second of the classify call on ``--batch`` frames (median of repeats).

Runtimes: ``jax`` (`Decoder.from_model`, jit-compiled, XLA's default CPU threading),
``onnxruntime`` (the model exported by `hdsemg_jax.deployment.export`, session with
one intra-op thread, sequential execution, all graph optimizations:
`hdsemg_jax.deployment.artifacts.onnx_session`), ``onnxruntime-default`` (the same
file with ONNX Runtime's default session options), and ``torch`` if PyTorch is
importable in this process (`experiments.torch_reference.all_convnet` of the same
layer sizes, eval mode, random weights: it runs the same amount of work, not the
same numbers; its stride-2 padding differs, see that file). Prints a Markdown table
with the machine (CPU model, cores, ``uptime`` load before and after).

Target (a benchmark figure, not a test): single-frame decision p50 <= 0.3 ms and
p99 <= 1 ms through the best runtime.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import numpy as np
from absl import app, flags

_RUN_DIR = flags.DEFINE_string('run_dir', None, 'A run to take the model from (with --fold, '
                               '--seed); default: the default config\'s model, random weights.')
_FOLD = flags.DEFINE_string('fold', None, 'Fold of the saved model (with --run_dir).')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the saved model (with --run_dir).')
_FILTERS = flags.DEFINE_list('filters', ['notch:50', 'bandpass:20:380:4'],
                             'Filter chain run causally by the decoder (without --run_dir; '
                             'a saved model brings its own).')
_WINDOW = flags.DEFINE_integer('window', 150, 'Vote window of the decoder, frames.')
_SAMPLES = flags.DEFINE_integer('samples', 3000, 'Timed single-sample pushes per runtime.')
_CHUNKS = flags.DEFINE_list('chunk_sizes', ['10', '50'], 'Chunk sizes (samples) to time.')
_CHUNK_REPEATS = flags.DEFINE_integer('chunk_repeats', 300, 'Timed pushes per chunk size.')
_BATCH = flags.DEFINE_integer('batch', 1000, 'Frames per call for the throughput figure.')
_RUNTIMES = flags.DEFINE_list('runtimes', ['jax', 'onnxruntime', 'onnxruntime-default', 'torch'],
                              'Runtimes to measure (torch is skipped if not importable).')
_TORCH_THREADS = flags.DEFINE_integer('torch_threads', 1, 'torch.set_num_threads.')
_JSON_OUT = flags.DEFINE_string('json_out', None, 'Also write the measurements as JSON.')

FS = 1000.0


def machine() -> dict[str, Any]:
  cpu = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
  except (OSError, StopIteration):
    pass
  return {'cpu': cpu, 'cores': os.cpu_count(), 'python': platform.python_version()}


def uptime() -> str:
  try:
    return subprocess.run(['uptime'], capture_output=True, text=True, timeout=10).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return 'load %.2f %.2f %.2f' % os.getloadavg()


def _version(name: str) -> str | None:
  try:
    return importlib.metadata.version(name)
  except importlib.metadata.PackageNotFoundError:
    return None


def timings(fn: Callable[[Any], Any], inputs: list[Any], warmup: int) -> np.ndarray:
  """Seconds per call of ``fn`` on each of ``inputs`` (after ``warmup`` untimed calls)."""
  for x in inputs[:warmup]:
    fn(x)
  out = np.empty(len(inputs) - warmup)
  for i, x in enumerate(inputs[warmup:]):
    start = time.perf_counter()
    fn(x)
    out[i] = time.perf_counter() - start
  return out


def percentiles(seconds: np.ndarray) -> dict[str, float]:
  return {'p50_ms': 1e3 * float(np.percentile(seconds, 50)),
          'p99_ms': 1e3 * float(np.percentile(seconds, 99))}


def throughput(classify: Callable[[np.ndarray], Any], frames: np.ndarray,
               repeats: int = 7) -> float:
  classify(frames)
  rates = []
  for _ in range(repeats):
    start = time.perf_counter()
    classify(frames)
    rates.append(len(frames) / (time.perf_counter() - start))
  return float(np.median(rates))


def measure(name: str, settings: str, make_decoder: Callable[[], Any],
            classify: Callable[[np.ndarray], Any], stream: np.ndarray,
            frames: np.ndarray) -> dict[str, Any]:
  """All figures of one runtime."""
  decoder = make_decoder()
  warmup = 200
  n = min(_SAMPLES.value + warmup, len(stream))
  single = timings(decoder.push, [stream[i:i + 1] for i in range(n)], warmup)
  model_only = timings(classify, [frames[i:i + 1] for i in range(min(n, len(frames)))], warmup)
  row = {'runtime': name, 'settings': settings, 'decision_1': percentiles(single),
         'model_1': percentiles(model_only), 'chunks': {}}
  for k in [int(c) for c in _CHUNKS.value]:
    decoder.reset()
    count = min(_CHUNK_REPEATS.value + 20, len(stream) // k)
    row['chunks'][k] = percentiles(timings(
        decoder.push, [stream[i * k:(i + 1) * k] for i in range(count)], 20))
  row['batch_frames_per_s'] = throughput(classify, frames[:_BATCH.value])
  row['load_after'] = os.getloadavg()[0]
  print(json.dumps(row), file=sys.stderr, flush=True)
  return row


def _model() -> Any:
  from experiments.configs import default
  from hdsemg_jax import models, saved_model
  from hdsemg_jax.training import state as state_lib
  if _RUN_DIR.value:
    if not _FOLD.value:
      raise app.UsageError('--run_dir needs --fold.')
    import hdsemg_jax
    return hdsemg_jax.load_model(_RUN_DIR.value, _FOLD.value, _SEED.value)
  config = default.get_config()
  module = models.build_from_config(config.model.to_dict(), 8, (16, 8), seed=0)
  graphdef, params, batch_stats = state_lib.split_model(module)
  kwargs = {k: v for k, v in config.model.to_dict().items() if k != 'name'}
  info = saved_model.ModelInfo(
      model=config.model.name, model_kwargs=kwargs, num_classes=8, grid_shape=(16, 8),
      class_names=tuple(f'gesture_{i + 1}' for i in range(8)), dataset='(random weights)',
      dataset_version='', fold='-', seed=0, eval_batch_size=1000, sampling_rate_hz=FS,
      filters=tuple(_FILTERS.value), filter_mode='causal')
  return saved_model.Model(info, graphdef, params, batch_stats)


def _torch_classifier(model: Any) -> tuple[Callable[[np.ndarray], np.ndarray], str] | None:
  try:
    import torch
  except ImportError:
    return None
  from experiments import torch_reference
  torch.set_num_threads(_TORCH_THREADS.value)
  kwargs = model.info.model_kwargs
  net = torch_reference.all_convnet(
      num_classes=model.info.num_classes, features=tuple(kwargs['features']),
      kernel_sizes=tuple(kwargs['kernel_sizes']), strides=tuple(kwargs['strides'])).eval()

  def classify(frames: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
      return net(torch.from_numpy(frames).unsqueeze(1)).argmax(-1).numpy()

  return classify, f'torch {torch.__version__}, {torch.get_num_threads()} thread(s), eval'


def table(rows: list[dict[str, Any]], chunk_sizes: list[int]) -> str:
  head = ['runtime', 'settings', 'decision, 1 sample p50 / p99 (ms)',
          'model only, 1 frame p50 / p99 (ms)',
          *[f'chunk of {k} p50 / p99 (ms)' for k in chunk_sizes],
          f'batch {_BATCH.value} (frames/s)']
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  fmt = lambda p: f"{p['p50_ms']:.3f} / {p['p99_ms']:.3f}"  # noqa: E731
  for r in rows:
    cells = [r['runtime'], r['settings'], fmt(r['decision_1']), fmt(r['model_1']),
             *[fmt(r['chunks'][k]) for k in chunk_sizes], f"{r['batch_frames_per_s']:,.0f}"]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  import jax

  from hdsemg_jax import streaming
  load_before = uptime()
  model = _model()
  info = model.info
  rng = np.random.default_rng(0)
  channels = info.grid_shape[0] * info.grid_shape[1]
  stream = rng.normal(scale=0.1, size=(max(_SAMPLES.value + 200, 20_000), channels)).astype(
      np.float32)
  frames = rng.normal(size=(max(_BATCH.value, 2000), *info.grid_shape)).astype(np.float32)
  decoder_kwargs = dict(grid_shape=info.grid_shape, num_classes=info.num_classes,
                        sampling_rate_hz=info.sampling_rate_hz or FS, filters=info.filters,
                        window=_WINDOW.value)
  rows = []
  wanted = set(_RUNTIMES.value)
  if 'jax' in wanted:
    classify = streaming.jax_classifier(model, max_batch=max(_BATCH.value, 1))
    rows.append(measure('jax', f'jax {jax.__version__}, jit, XLA CPU defaults',
                        lambda: streaming.Decoder(classify, **decoder_kwargs), classify, stream,
                        frames))
  if wanted & {'onnxruntime', 'onnxruntime-default'}:
    from hdsemg_jax.deployment import artifacts, export
    with tempfile.TemporaryDirectory() as tmp:
      result = export.export_model(model, tmp, 'onnx', frames[:256],
                                   parity_source='random frames (latency benchmark)')
      if 'onnxruntime' in wanted:
        artifact = artifacts.load_artifact(result.artifact, threads=1)
        rows.append(measure(
            'onnxruntime', f'onnxruntime {_version("onnxruntime")}: 1 intra-op thread, '
            'sequential, all graph optimizations',
            lambda: streaming.Decoder.from_artifact(result.artifact, window=_WINDOW.value),
            artifact.classify, stream, frames))
      if 'onnxruntime-default' in wanted:
        import onnxruntime as ort
        session = ort.InferenceSession(result.artifact, providers=['CPUExecutionProvider'])

        def ort_default(x: np.ndarray) -> np.ndarray:
          return np.argmax(session.run(['logits'], {'frames': x})[0], -1)

        rows.append(measure('onnxruntime-default', 'default session options',
                            lambda: streaming.Decoder(ort_default, **decoder_kwargs),
                            ort_default, stream, frames))
  if 'torch' in wanted:
    made = _torch_classifier(model)
    if made is None:
      print('torch is not importable here: skipped.', file=sys.stderr)
    else:
      classify_torch, settings = made
      rows.append(measure('torch', settings,
                          lambda: streaming.Decoder(classify_torch, **decoder_kwargs),
                          classify_torch, stream, frames))
  load_after = uptime()
  chunk_sizes = [int(c) for c in _CHUNKS.value]
  num_params = sum(int(np.size(x)) for x in jax.tree.leaves(model.params))
  # The runtime closest to the target: the smallest of p50 / 0.3 ms and p99 / 1 ms, whichever
  # is further off.
  best = min(rows, key=lambda r: max(r['decision_1']['p50_ms'] / 0.3,
                                     r['decision_1']['p99_ms'] / 1.0)) if rows else None
  lines = [
      f"Machine: {machine()['cpu']}, {machine()['cores']} cores, Python "
      f"{machine()['python']}",
      f'Load (uptime) before: `{load_before}`',
      f'Load (uptime) after: `{load_after}`',
      f'Model: {info.model} ({num_params:,} parameters), {info.grid_shape[0]} x '
      f'{info.grid_shape[1]} grid, {info.num_classes} classes, '
      f'{"fold " + info.fold if _RUN_DIR.value else "random weights"}; decoder: causal '
      f'{", ".join(info.filters) or "no filters"} at {info.sampling_rate_hz or FS:g} Hz, vote '
      f'over {_WINDOW.value} frames',
      '',
      table(rows, chunk_sizes),
  ]
  if best:
    p = best['decision_1']
    met = p['p50_ms'] <= 0.3 and p['p99_ms'] <= 1.0
    lines += ['', f"Best single-sample decision: {best['runtime']}, p50 {p['p50_ms']:.3f} ms, "
                  f"p99 {p['p99_ms']:.3f} ms: target (p50 <= 0.3 ms, p99 <= 1 ms) "
                  f"{'met' if met else 'not met'}."]
  print('\n'.join(lines))
  if _JSON_OUT.value:
    with open(_JSON_OUT.value, 'w') as f:
      json.dump({'machine': machine(), 'load_before': load_before, 'load_after': load_after,
                 'rows': rows}, f, indent=1)


if __name__ == '__main__':
  app.run(main)
