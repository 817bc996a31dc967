r"""Decision latency and throughput of the streaming decoder on every runtime.

  python -m experiments.latency                          # the default All-ConvNet, random weights
  python -m experiments.latency --run_dir=RUN --fold=S01-s1 --seed=0   # a trained model
  PYTHONPATH=/path/to/torch python -m experiments.latency   # adds the PyTorch reference

The model, without ``--run_dir``: `default_config` (the default experiment config
pointed at flexemg: ``experiments.configs.datasets.protocol_config('intra_session',
'flexemg')``) gives the network (``model.*``, the default All-ConvNet) and the filter
chain (``dataset.filters``, the flexemg preset's ``datasets.FLEXEMG['filters']``:
``notch:60:50``, ``bandpass:20:450``), at flexemg's 1000 Hz; the grid and classes are
CapgMyo's 16 x 8 and 8 (as `experiments.benchmark`), since no dataset is read; the
weights are random (`hdsemg_jax.saved_model.random_model`, seed 0). ``--filters``
replaces the chain. A saved model (``--run_dir``) brings its own network, grid,
classes and conditioning.

For each runtime it measures, on one sample stream of random data:

* decision, 1 sample: `hdsemg_jax.streaming.Decoder.push` of a single sample (channel
  check, causal filters, the model on one frame, the trailing vote), p50 and p99;
* model only, 1 frame: the runtime's classify call alone, p50 and p99;
* chunk of k samples: ``push`` of k samples at once (all k frames decided), p50 and p99;
* batch: frames per second of the classify call on ``--batch`` frames (median of repeats).

Runtimes: ``jax`` (`streaming.jax_classifier`, what `Decoder.from_model` runs: jit-compiled,
XLA's default CPU threading),
``onnxruntime`` (the model exported by `hdsemg_jax.deployment.export`, session with
one intra-op thread, sequential execution, all graph optimizations:
`hdsemg_jax.deployment.artifacts.onnx_session`), ``onnxruntime-default`` (the same
file with ONNX Runtime's default session options), and ``torch`` if PyTorch is
importable in this process (`experiments.torch_reference.all_convnet` of the same
layer sizes, eval mode, random weights: it runs the same amount of work, not the
same numbers; its stride-2 padding differs, see that file). Every decoder runs the
model's filter chain causally. Prints a Markdown table with the machine (CPU model,
cores, ``uptime`` load before and after).

The library: `model_from_config` (a random-weights model of a config), `measure` (the
rows of a model on some runtimes, from plain arguments), `table` and `report`; only
`main` reads flags.

Target (a benchmark figure, not a test): single-frame decision p50 <= 0.3 ms and
p99 <= 1 ms through the best runtime.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Sequence

import ml_collections
import numpy as np
from absl import flags

from experiments import cli

RUNTIMES = ('jax', 'onnxruntime', 'onnxruntime-default', 'torch')
# The random-weights model's frames: CapgMyo's grid and gestures (as experiments.benchmark),
# sampled at flexemg's rate (the rate its filter chain is meant for).
GRID_SHAPE = (16, 8)
NUM_CLASSES = 8
SAMPLING_RATE_HZ = 1000.0
# Untimed calls before the single-sample / single-frame timings, and before each chunk size's.
WARMUP = 200
CHUNK_WARMUP = 20
THROUGHPUT_REPEATS = 7
# The target: single-sample decision p50 / p99, ms.
TARGET_P50_MS = 0.3
TARGET_P99_MS = 1.0

_RUN_DIR = flags.DEFINE_string('run_dir', None, 'A run to take the model from (with --fold, '
                               '--seed); default: the default config\'s model, random weights.')
_FOLD = flags.DEFINE_string('fold', None, 'Fold of the saved model (with --run_dir).')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the saved model (with --run_dir).')
_FILTERS = flags.DEFINE_list('filters', None,
                             'Filter chain run causally by the decoder (without --run_dir: a '
                             'saved model brings its own); default: the flexemg preset\'s '
                             'dataset.filters (experiments/configs/datasets.py); --filters= '
                             'for none.')
_WINDOW = flags.DEFINE_integer('window', 150, 'Vote window of the decoder, frames.')
_SAMPLES = flags.DEFINE_integer('samples', 3000, 'Timed single-sample pushes per runtime.')
_CHUNKS = flags.DEFINE_list('chunk_sizes', ['10', '50'], 'Chunk sizes (samples) to time.')
_CHUNK_REPEATS = flags.DEFINE_integer('chunk_repeats', 300, 'Timed pushes per chunk size.')
_BATCH = flags.DEFINE_integer('batch', 1000, 'Frames per call for the throughput figure.')
_RUNTIMES = flags.DEFINE_list('runtimes', list(RUNTIMES),
                              'Runtimes to measure (torch is skipped if not importable).')
_TORCH_THREADS = flags.DEFINE_integer('torch_threads', 1, 'torch.set_num_threads.')
_JSON_OUT = flags.DEFINE_string('json_out', None, 'Also write the measurements as JSON.')


def default_config() -> ml_collections.ConfigDict:
  """The default experiment config pointed at flexemg: its model and filter chain."""
  from experiments.configs import datasets
  return datasets.protocol_config('intra_session', 'flexemg')


def model_from_config(config: ml_collections.ConfigDict, *,
                      grid_shape: Sequence[int] = GRID_SHAPE, num_classes: int = NUM_CLASSES,
                      sampling_rate_hz: float = SAMPLING_RATE_HZ, seed: int = 0) -> Any:
  """The random-weights `hdsemg_jax.saved_model.Model` of ``config``.

  The network is ``config.model``; its conditioning ``config.dataset.filters`` and
  ``filter_mode`` at ``sampling_rate_hz`` (the config is checked as a run checks it:
  a bad key or filter spec is a `hdsemg_jax.config.ConfigError`).
  """
  from hdsemg_jax import saved_model
  from hdsemg_jax.run import setup as run_setup
  config, settings = run_setup.check_config(config)
  if settings.model.is_classical:
    raise ValueError(f'model.name={settings.model.name!r} is a classical model; the decoder '
                     'benchmark measures networks.')
  return saved_model.random_model(
      settings.model.name, settings.model.network_kwargs, num_classes, grid_shape,
      settings.dataset.conditioning(sampling_rate_hz), seed=seed,
      eval_batch_size=settings.eval.batch_size)


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
               repeats: int = THROUGHPUT_REPEATS) -> float:
  classify(frames)
  rates = []
  for _ in range(repeats):
    start = time.perf_counter()
    classify(frames)
    rates.append(len(frames) / (time.perf_counter() - start))
  return float(np.median(rates))


def measure_runtime(name: str, settings: str, decoder: Any, classify: Callable[[np.ndarray], Any],
                    stream: np.ndarray, frames: np.ndarray, *, samples: int,
                    chunk_sizes: Sequence[int], chunk_repeats: int, batch: int,
                    warmup: int = WARMUP, chunk_warmup: int = CHUNK_WARMUP,
                    throughput_repeats: int = THROUGHPUT_REPEATS) -> dict[str, Any]:
  """All figures of one runtime: ``decoder`` (a fresh `streaming.Decoder`) and its
  ``classify``, on ``stream`` (samples, channels) and ``frames`` (N, H, W)."""
  n = min(samples + warmup, len(stream))
  single = timings(decoder.push, [stream[i:i + 1] for i in range(n)], warmup)
  model_only = timings(classify, [frames[i:i + 1] for i in range(min(n, len(frames)))], warmup)
  row = {'runtime': name, 'settings': settings, 'decoder_filters': list(decoder.filters),
         'decoder_sampling_rate_hz': decoder.sampling_rate_hz, 'decoder_window': decoder.window,
         'decision_1': percentiles(single), 'model_1': percentiles(model_only), 'chunks': {}}
  for k in chunk_sizes:
    decoder.reset()
    count = min(chunk_repeats + chunk_warmup, len(stream) // k)
    row['chunks'][k] = percentiles(timings(
        decoder.push, [stream[i * k:(i + 1) * k] for i in range(count)], chunk_warmup))
  row['batch_frames_per_s'] = throughput(classify, frames[:batch], throughput_repeats)
  row['load_after'] = os.getloadavg()[0]
  print(json.dumps(row), file=sys.stderr, flush=True)
  return row


def _torch_classifier(model: Any, threads: int
                      ) -> tuple[Callable[[np.ndarray], np.ndarray], str] | None:
  try:
    import torch
  except ImportError:
    return None
  from experiments import torch_reference
  torch.set_num_threads(threads)
  kwargs = model.info.model_kwargs
  net = torch_reference.all_convnet(
      num_classes=model.info.num_classes, features=tuple(kwargs['features']),
      kernel_sizes=tuple(kwargs['kernel_sizes']), strides=tuple(kwargs['strides'])).eval()

  def classify(frames: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
      return net(torch.from_numpy(frames).unsqueeze(1)).argmax(-1).numpy()

  return classify, f'torch {torch.__version__}, {torch.get_num_threads()} thread(s), eval'


def measure(model: Any, *, runtimes: Sequence[str] = RUNTIMES, window: int = 150,
            samples: int = 3000, chunk_sizes: Sequence[int] = (10, 50), chunk_repeats: int = 300,
            batch: int = 1000, torch_threads: int = 1, warmup: int = WARMUP,
            chunk_warmup: int = CHUNK_WARMUP, throughput_repeats: int = THROUGHPUT_REPEATS,
            seed: int = 0) -> list[dict[str, Any]]:
  """The rows (`measure_runtime`) of ``model`` (a `saved_model.Model`) on each of ``runtimes``.

  Every decoder votes over ``window`` frames and runs the model's conditioning
  (``model.info.conditioning``) causally. The data are random (``seed``): a stream
  of ``samples + warmup`` samples or more, and as many single frames (``batch`` at least).
  ``torch`` is skipped, with a line on stderr, where PyTorch is not importable; an
  unknown runtime is a ValueError.
  """
  import jax

  from hdsemg_jax import provenance, streaming
  unknown = [r for r in runtimes if r not in RUNTIMES]
  if unknown:
    raise ValueError(f'unknown runtime(s) {", ".join(unknown)} (known: {", ".join(RUNTIMES)}).')
  if min(samples, chunk_repeats, batch, *chunk_sizes) < 1 or min(warmup, chunk_warmup) < 0:
    raise ValueError('samples, chunk_repeats, batch and chunk sizes must be positive, '
                     'warm-ups not negative.')
  info = model.info
  rng = np.random.default_rng(seed)
  channels = info.grid_shape[0] * info.grid_shape[1]
  length = max([samples + warmup, *[k * (chunk_repeats + chunk_warmup) for k in chunk_sizes]])
  stream = rng.normal(scale=0.1, size=(length, channels)).astype(np.float32)
  frames = rng.normal(size=(max(batch, samples + warmup), *info.grid_shape)).astype(np.float32)
  options = dict(samples=samples, chunk_sizes=tuple(chunk_sizes), chunk_repeats=chunk_repeats,
                 batch=batch, warmup=warmup, chunk_warmup=chunk_warmup,
                 throughput_repeats=throughput_repeats)

  def decoder_for(classify: Callable[[np.ndarray], Any]) -> Any:
    return streaming.Decoder(classify, grid_shape=info.grid_shape, num_classes=info.num_classes,
                             sampling_rate_hz=None, filters=info.conditioning, window=window,
                             class_names=info.class_names)

  rows = []
  if 'jax' in runtimes:
    classify = streaming.jax_classifier(model, max_batch=batch)
    rows.append(measure_runtime('jax', f'jax {jax.__version__}, jit, XLA CPU defaults',
                                decoder_for(classify), classify, stream, frames, **options))
  if 'onnxruntime' in runtimes or 'onnxruntime-default' in runtimes:
    from hdsemg_jax.deployment import artifacts, export
    version = provenance.versions(('onnxruntime',))['onnxruntime']
    with tempfile.TemporaryDirectory() as tmp:
      result = export.export_model(model, tmp, 'onnx', frames[:256],
                                   parity_source='random frames (latency benchmark)')
      if 'onnxruntime' in runtimes:
        artifact = artifacts.load_artifact(result.artifact, threads=1)
        rows.append(measure_runtime(
            'onnxruntime', f'onnxruntime {version}: 1 intra-op thread, sequential, all graph '
            'optimizations', streaming.Decoder.from_artifact(result.artifact, window=window),
            artifact.classify, stream, frames, **options))
      if 'onnxruntime-default' in runtimes:
        import onnxruntime as ort
        session = ort.InferenceSession(result.artifact, providers=['CPUExecutionProvider'])

        def ort_default(x: np.ndarray) -> np.ndarray:
          return np.argmax(session.run(['logits'], {'frames': x})[0], -1)

        rows.append(measure_runtime('onnxruntime-default', 'default session options',
                                    decoder_for(ort_default), ort_default, stream, frames,
                                    **options))
  if 'torch' in runtimes:
    made = _torch_classifier(model, torch_threads)
    if made is None:
      print('torch is not importable here: skipped.', file=sys.stderr)
    else:
      classify_torch, settings = made
      rows.append(measure_runtime('torch', settings, decoder_for(classify_torch),
                                  classify_torch, stream, frames, **options))
  return rows


def table(rows: Sequence[dict[str, Any]], chunk_sizes: Sequence[int], batch: int) -> str:
  """A Markdown table of `measure`'s rows: one line per runtime."""
  head = ['runtime', 'settings', 'decision, 1 sample p50 / p99 (ms)',
          'model only, 1 frame p50 / p99 (ms)',
          *[f'chunk of {k} p50 / p99 (ms)' for k in chunk_sizes],
          f'batch {batch} (frames/s)']
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  fmt = lambda p: f"{p['p50_ms']:.3f} / {p['p99_ms']:.3f}"  # noqa: E731
  for r in rows:
    cells = [r['runtime'], r['settings'], fmt(r['decision_1']), fmt(r['model_1']),
             *[fmt(r['chunks'][k]) for k in chunk_sizes], f"{r['batch_frames_per_s']:,.0f}"]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def best(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
  """The runtime closest to the target: the smallest of p50 / target and p99 / target,
  whichever is further off."""
  return min(rows, key=lambda r: max(r['decision_1']['p50_ms'] / TARGET_P50_MS,
                                     r['decision_1']['p99_ms'] / TARGET_P99_MS),
             default=None)


def report(rows: Sequence[dict[str, Any]], model: Any, *, host: dict[str, Any],
           load_before: str, load_after: str, window: int, chunk_sizes: Sequence[int],
           batch: int) -> str:
  """What the command prints: machine, load, model and decoder, the table, the best runtime."""
  import jax

  from hdsemg_jax import saved_model
  info = model.info
  num_params = sum(int(np.size(x)) for x in jax.tree.leaves(model.params))
  origin = ('random weights' if info.dataset == saved_model.RANDOM_WEIGHTS
            else f'{info.dataset} fold {info.fold} seed {info.seed}')
  conditioning = info.conditioning
  chain = (f'causal {", ".join(conditioning.filters)} at {conditioning.sampling_rate_hz:g} Hz'
           if conditioning.filters else 'no filters')
  lines = [
      f"Machine: {host['cpu']}, {host['cores']} cores, Python {host['python']}",
      f'Load (uptime) before: `{load_before}`',
      f'Load (uptime) after: `{load_after}`',
      f'Model: {info.model} ({num_params:,} parameters), {info.grid_shape[0]} x '
      f'{info.grid_shape[1]} grid, {info.num_classes} classes, {origin}; decoder: {chain}, '
      f'vote over {window} frames',
      '',
      table(rows, chunk_sizes, batch),
  ]
  top = best(rows)
  if top:
    p = top['decision_1']
    met = p['p50_ms'] <= TARGET_P50_MS and p['p99_ms'] <= TARGET_P99_MS
    lines += ['', f"Best single-sample decision: {top['runtime']}, p50 {p['p50_ms']:.3f} ms, "
                  f"p99 {p['p99_ms']:.3f} ms: target (p50 <= {TARGET_P50_MS:g} ms, p99 <= "
                  f"{TARGET_P99_MS:g} ms) {'met' if met else 'not met'}."]
  return '\n'.join(lines)


def _positive_ints(values: Sequence[str], flag: str) -> list[int]:
  try:
    out = [int(v) for v in values]
  except ValueError:
    raise cli.UsageError(f'--{flag} takes whole numbers; got {",".join(values)}.') from None
  if not out or min(out) < 1:
    raise cli.UsageError(f'--{flag} takes positive whole numbers; got {",".join(values)}.')
  return out


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise cli.UsageError(f'unexpected arguments: {argv[1:]}')
  chunk_sizes = _positive_ints(_CHUNKS.value, 'chunk_sizes')
  for flag, value in (('window', _WINDOW.value), ('samples', _SAMPLES.value),
                      ('chunk_repeats', _CHUNK_REPEATS.value), ('batch', _BATCH.value),
                      ('torch_threads', _TORCH_THREADS.value)):
    _positive_ints([str(value)], flag)
  unknown = [r for r in _RUNTIMES.value if r not in RUNTIMES]
  if unknown:
    raise cli.UsageError(f'--runtimes: unknown {", ".join(unknown)} (known: '
                         f'{", ".join(RUNTIMES)}).')
  if _RUN_DIR.value:
    if not _FOLD.value:
      raise cli.UsageError('--run_dir needs --fold.')
    if _FILTERS.value is not None:
      raise cli.UsageError('--filters is for the random-weights model; a saved model '
                           '(--run_dir) brings its own filter chain.')
  elif _FOLD.value:
    raise cli.UsageError('--fold needs --run_dir.')

  from hdsemg_jax import provenance, saved_model
  host = machine()
  load_before = uptime()
  if _RUN_DIR.value:
    model = saved_model.load_model(_RUN_DIR.value, _FOLD.value, _SEED.value)
  else:
    config = default_config()
    if _FILTERS.value is not None:
      config.dataset.filters = tuple(_FILTERS.value)
    model = model_from_config(config)
  rows = measure(model, runtimes=tuple(_RUNTIMES.value), window=_WINDOW.value,
                 samples=_SAMPLES.value, chunk_sizes=chunk_sizes,
                 chunk_repeats=_CHUNK_REPEATS.value, batch=_BATCH.value,
                 torch_threads=_TORCH_THREADS.value)
  load_after = uptime()
  print(report(rows, model, host=host, load_before=load_before, load_after=load_after,
               window=_WINDOW.value, chunk_sizes=chunk_sizes, batch=_BATCH.value))
  if _JSON_OUT.value:
    with open(_JSON_OUT.value, 'w') as f:
      json.dump({'machine': host, 'versions': provenance.versions(('onnxruntime', 'torch')),
                 'model': model.info.as_dict(), 'window': _WINDOW.value,
                 'load_before': load_before, 'load_after': load_after, 'rows': rows}, f,
                indent=1)


if __name__ == '__main__':
  cli.run(main)
