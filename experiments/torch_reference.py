"""Optional PyTorch reference for `experiments.benchmark` (not a project dependency).

Builds the default All-ConvNet with the same layers as `hdsemg_jax.models.AllConvNet`
and trains it with the same recipe (SGD, momentum 0.9, L2 weight decay 1e-4 on the
convolution kernels only, BatchNorm in training mode), then measures what the JAX
benchmark measures. PyTorch is deliberately kept out of the project's environment;
run this with an interpreter that has it, e.g.

  python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.13.0
  /tmp/torchvenv/bin/python experiments/torch_reference.py --batch_sizes=1,32,256,1000,4096

Nothing in the project or its tests imports this file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

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


def _median_rate(fn, frames_per_call: int, calls: int, repeats: int) -> float:
  rates = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(calls):
      fn()
    rates.append(calls * frames_per_call / (time.perf_counter() - start))
  return statistics.median(rates)


def measure(batch_size: int, channels_last: bool, seconds: float, repeats: int) -> dict:
  torch.manual_seed(0)
  model = all_convnet()
  fmt = torch.channels_last if channels_last else torch.contiguous_format
  model = model.to(memory_format=fmt)
  opt = optimizer(model)
  loss_fn = nn.CrossEntropyLoss()
  x = torch.randn(batch_size, 1, 16, 8).to(memory_format=fmt)
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
  first = time.perf_counter() - start
  for _ in range(3):
    train_step()
  calls = max(1, int(seconds / max(first, 1e-4) / repeats))
  # One warm step tells how many fit in the time budget.
  start = time.perf_counter()
  train_step()
  per_call = time.perf_counter() - start
  calls = max(2, int(seconds / repeats / per_call))
  train = _median_rate(train_step, batch_size, calls, repeats)

  model.eval()
  with torch.inference_mode():
    for _ in range(3):
      model(x)
    start = time.perf_counter()
    model(x)
    per_call = time.perf_counter() - start
    calls = max(2, int(seconds / repeats / per_call))
    infer = _median_rate(lambda: model(x), batch_size, calls, repeats)
  return {'batch_size': batch_size, 'channels_last': channels_last,
          'train_frames_per_s': train, 'infer_frames_per_s': infer}


def latency(channels_last: bool, samples: int) -> dict:
  model = all_convnet().eval()
  fmt = torch.channels_last if channels_last else torch.contiguous_format
  model = model.to(memory_format=fmt)
  x = torch.randn(1, 1, 16, 8).to(memory_format=fmt)
  times = []
  with torch.inference_mode():
    for _ in range(50):
      model(x)
    for _ in range(samples):
      start = time.perf_counter()
      model(x).argmax(-1)
      times.append(time.perf_counter() - start)
  times.sort()
  return {'channels_last': channels_last, 'p50_ms': 1e3 * times[len(times) // 2],
          'p90_ms': 1e3 * times[int(len(times) * 0.9)]}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch_sizes', default='1000')
  parser.add_argument('--seconds', type=float, default=4.0, help='per measurement')
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--latency_samples', type=int, default=2000)
  parser.add_argument('--channels_last', default='both', choices=['yes', 'no', 'both'])
  args = parser.parse_args()
  formats = {'yes': [True], 'no': [False], 'both': [False, True]}[args.channels_last]
  out = {'torch': torch.__version__, 'threads': torch.get_num_threads(), 'runs': [], 'latency': []}
  for bs in [int(b) for b in args.batch_sizes.split(',')]:
    for cl in formats:
      out['runs'].append(measure(bs, cl, args.seconds, args.repeats))
      print(json.dumps(out['runs'][-1]), flush=True)
  for cl in formats:
    out['latency'].append(latency(cl, args.latency_samples))
    print(json.dumps(out['latency'][-1]), flush=True)
  print(json.dumps(out))


if __name__ == '__main__':
  main()
