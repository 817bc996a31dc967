"""Optional PyTorch reference for `experiments.benchmark` (not a project dependency).

Builds the default All-ConvNet with the same layers as `hdsemg_jax.models.AllConvNet`
and trains it with the same recipe (SGD, momentum 0.9, L2 weight decay 1e-4 on the
convolution kernels only, BatchNorm in training mode), then measures what the JAX
benchmark measures. PyTorch is deliberately kept out of the project's environment;
run this with an interpreter that has it, e.g.

  python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.13.0 numpy
  /tmp/torchvenv/bin/python experiments/torch_reference.py --batch_sizes=1,32,256,1000,4096 \
      --json_out=/tmp/torch.json
  python -m experiments.benchmark --batch_sizes=1,32,256,1000,4096 --compare=/tmp/torch.json

It prints the JSON fields of `experiments.benchmark` (compile_* is the first call's
time here: PyTorch compiles nothing in eager mode).

Nothing in the project or its tests imports this file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch
from torch import nn


def all_convnet(num_classes: int = 8, in_channels: int = 1,
                features=(64, 64, 128, 128, 128, 256), kernel_sizes=(3, 3, 3, 3, 3, 1),
                strides=(1, 1, 2, 1, 1, 1)) -> nn.Module:
  """The reconstruction of `hdsemg_jax.models.all_convnet`, NCHW."""
  # Flax BatchNorm momentum 0.9 keeps 0.9 of the old statistics; PyTorch counts the new share.
  layers: list[nn.Module] = [nn.BatchNorm2d(in_channels, eps=1e-5, momentum=0.1)]
  widths = [in_channels, *features]
  for i, (k, s) in enumerate(zip(kernel_sizes, strides)):
    # 'SAME' for odd k at stride 1 and 2 on even sizes: TF pads (k-1)//2 before... with
    # stride 2 on even sizes TF pads 0 before / 1 after; padding=k//2 shifts the grid by one
    # pixel, which changes no cost.
    layers += [nn.Conv2d(widths[i], widths[i + 1], k, stride=s, padding=k // 2, bias=False),
               nn.BatchNorm2d(widths[i + 1], eps=1e-5, momentum=0.1), nn.ReLU(inplace=True)]
  layers.append(nn.Conv2d(widths[-1], num_classes, 1))

  class Net(nn.Module):

    def __init__(self):
      super().__init__()
      self.body = nn.Sequential(*layers)

    def forward(self, x):
      return self.body(x).mean(dim=(2, 3))

  return Net()


def optimizer(model: nn.Module) -> torch.optim.Optimizer:
  kernels = [p for n, p in model.named_parameters() if p.ndim == 4]
  others = [p for n, p in model.named_parameters() if p.ndim != 4]
  return torch.optim.SGD([{'params': kernels, 'weight_decay': 1e-4},
                          {'params': others, 'weight_decay': 0.0}], lr=0.01, momentum=0.9)


def forward_flops(model: nn.Module, frame_shape=(16, 8)) -> int:
  """Two FLOPs per multiply-add of the convolutions in one frame's forward pass.

  The count of `experiments.benchmarking.forward_flops`, made here from PyTorch's layer
  shapes so the two cross-check each other.
  """
  total = 0

  def hook(module, inputs, output):
    nonlocal total
    kh, kw = module.kernel_size
    total += 2 * output.numel() * kh * kw * module.in_channels // module.groups

  handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
  model.eval()
  with torch.inference_mode():
    model(torch.zeros(1, 1, *frame_shape))
  for h in handles:
    h.remove()
  return total


def _median_rate(fn, frames_per_call: int, seconds: float, repeats: int) -> float:
  """Median frames/s over ``repeats`` timings of as many calls as fill ``seconds``."""
  for _ in range(3):
    fn()
  start = time.perf_counter()
  fn()
  calls = max(2, int(seconds / repeats / max(time.perf_counter() - start, 1e-6)))
  rates = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(calls):
      fn()
    rates.append(calls * frames_per_call / (time.perf_counter() - start))
  return statistics.median(rates)


def _build(channels_last: bool, dtype: torch.dtype) -> tuple[nn.Module, torch.memory_format]:
  torch.manual_seed(0)
  fmt = torch.channels_last if channels_last else torch.contiguous_format
  return all_convnet().to(dtype=dtype, memory_format=fmt), fmt


def measure(batch_size: int, channels_last: bool, dtype: torch.dtype, seconds: float,
            repeats: int) -> dict:
  """The fields of `experiments.benchmarking.measure_batch`; 'compile' is the first call."""
  model, fmt = _build(channels_last, dtype)
  opt = optimizer(model)
  loss_fn = nn.CrossEntropyLoss()
  x = torch.randn(batch_size, 1, 16, 8, dtype=dtype).to(memory_format=fmt)
  y = torch.randint(0, 8, (batch_size,))

  def train_step():
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    return loss

  model.train()
  start = time.perf_counter()
  train_step()
  first_train = time.perf_counter() - start
  train = _median_rate(train_step, batch_size, seconds, repeats)

  model.eval()
  with torch.inference_mode():
    start = time.perf_counter()
    model(x).argmax(-1)
    first_predict = time.perf_counter() - start
    infer = _median_rate(lambda: model(x).argmax(-1), batch_size, seconds, repeats)
  return {'batch_size': batch_size, 'compile_train_s': first_train,
          'compile_predict_s': first_predict, 'train_frames_per_s': train,
          'infer_frames_per_s': infer}


def latency(channels_last: bool, dtype: torch.dtype, samples: int) -> dict:
  """Single-frame prediction: a NumPy frame in, its class back as a Python int."""
  model, fmt = _build(channels_last, dtype)
  model.eval()
  frames = np.random.default_rng(0).standard_normal((samples, 1, 1, 16, 8)).astype(np.float32)
  times = np.empty(samples)

  def predict(frame):
    return int(model(torch.from_numpy(frame).to(dtype=dtype, memory_format=fmt)).argmax(-1))

  with torch.inference_mode():
    for i in range(50):
      predict(frames[i % samples])
    for i in range(samples):
      start = time.perf_counter()
      predict(frames[i])
      times[i] = time.perf_counter() - start
  return {'p50_ms': 1e3 * float(np.percentile(times, 50)),
          'p90_ms': 1e3 * float(np.percentile(times, 90))}


def _with_gflops(result: dict, flops: int) -> dict:
  # As experiments.benchmarking.add_gflops (not imported: this runs without the project's deps).
  out = dict(result)
  if 'train_frames_per_s' in out:
    out['train_gflops'] = out['train_frames_per_s'] * 3 * flops / 1e9
    out['infer_gflops'] = out['infer_frames_per_s'] * flops / 1e9
  if 'p50_ms' in out:
    out['latency_gflops'] = flops / (out['p50_ms'] * 1e-3) / 1e9
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch_sizes', default='1000')
  parser.add_argument('--seconds', type=float, default=4.0, help='per measurement')
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--latency_samples', type=int, default=2000)
  parser.add_argument('--channels_last', default='both', choices=['yes', 'no', 'both'])
  parser.add_argument('--precision', default='float32', choices=['float32', 'bfloat16'])
  parser.add_argument('--threads', type=int, default=0, help='0: PyTorch\'s default')
  parser.add_argument('--json_out', default=None)
  args = parser.parse_args()
  if args.threads:
    torch.set_num_threads(args.threads)
  dtype = getattr(torch, args.precision)
  formats = {'yes': [True], 'no': [False], 'both': [False, True]}[args.channels_last]
  flops = forward_flops(all_convnet())
  results = [{'framework': 'torch', 'version': torch.__version__, 'backend': 'cpu',
              'device_kind': platform.processor() or platform.machine(), 'device_count': 1,
              'threads': torch.get_num_threads(), 'model': 'all_convnet',
              'conv_impl': 'channels_last' if cl else 'nchw', 'precision': args.precision,
              'grid_shape': [16, 8], 'num_classes': 8,
              'num_params': sum(p.numel() for p in all_convnet().parameters()),
              'forward_flops_per_frame': flops, 'runs': []} for cl in formats]
  # Formats alternate within each batch size, as the JAX benchmark's formulations do.
  for bs in [int(b) for b in args.batch_sizes.split(',')]:
    for cl, result in zip(formats, results):
      run = measure(bs, cl, dtype, args.seconds, args.repeats)
      run['load_avg_1min'] = os.getloadavg()[0]
      result['runs'].append(_with_gflops(run, flops))
      print(json.dumps({'conv_impl': result['conv_impl'], **result['runs'][-1]}), flush=True)
  for cl, result in zip(formats, results):
    lat = latency(cl, dtype, args.latency_samples)
    lat['load_avg_1min'] = os.getloadavg()[0]
    result['latency'] = _with_gflops(lat, flops)
    print(json.dumps({'conv_impl': result['conv_impl'], 'latency': result['latency']}), flush=True)
  print(json.dumps(results))
  if args.json_out:
    with open(args.json_out, 'w') as f:
      json.dump(results, f, indent=1)


if __name__ == '__main__':
  main()
