"""Cost of a model's decisions: forward-pass FLOPs per frame and inference time per frame.

FLOPs (``method='jaxpr'``, the default) are analytic: two per multiply-add of
every convolution and matrix product in the forward pass's jaxpr, from the
operand shapes, whatever formulation computes them; a convolution counts every
kernel tap of every output element, padding included (the usual convention,
and the same number for every formulation). BatchNorm, activations, pooling
and other elementwise work are not counted. Sub-programs (``jit``, custom
derivatives, ``cond``: its costliest branch) are walked; a ``scan`` counts its
body ``length`` times, a ``while`` loop its body once (its trip count is unknown).

``method='xla'`` returns XLA's own ``cost_analysis()['flops']`` of the compiled
forward pass instead. It is not comparable between formulations or backends:
it skips the taps that fall on 'SAME' padding (a 3x3 'SAME' convolution of a
6x5 image measured 1664 FLOPs against 2160 analytic; the default All-ConvNet
on a 16x8 grid 29,285,248 against 35,405,824 on CPU), and adds the elementwise
work and the data movement of im2col-style formulations.

Memory: `peak_memory` is the process's peak resident host memory so far (the
kernel's high-water mark, so it covers every run of the process up to that
point, data included) and, where the backend reports it (GPUs, TPUs; not the
CPU), the largest peak of device memory in use over the local devices.

Time: `seconds_per_frame` is the median over repeats of the wall time to
predict all given frames, divided by their number, after warm-up calls (so
compilation is excluded), with every output brought back to the host.
"""

from __future__ import annotations

import math
import resource
import statistics
import sys
import time
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

METHODS = ('jaxpr', 'xla')


def _sub_jaxprs(params: dict[str, Any]) -> Iterator[Any]:
  for value in params.values():
    for v in (value if isinstance(value, (tuple, list)) else (value,)):
      if isinstance(v, jax.extend.core.ClosedJaxpr):
        yield v.jaxpr
      elif isinstance(v, jax.extend.core.Jaxpr):
        yield v


def jaxpr_flops(jaxpr: Any) -> int:
  """Analytic FLOPs of the convolutions and matrix products of ``jaxpr`` (see the module doc)."""
  if isinstance(jaxpr, jax.extend.core.ClosedJaxpr):
    jaxpr = jaxpr.jaxpr
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == 'conv_general_dilated':
      rhs = eqn.invars[1].aval
      out = eqn.outvars[0].aval
      dn = eqn.params['dimension_numbers']
      # Every output element sums kernel-window x input-channels-per-group products.
      window = math.prod(rhs.shape[d] for d in dn.rhs_spec[2:])
      cin_per_group = rhs.shape[dn.rhs_spec[1]]
      total += 2 * math.prod(out.shape) * window * cin_per_group
    elif name == 'dot_general':
      lhs = eqn.invars[0].aval
      (contract, _), _ = eqn.params['dimension_numbers']
      out = eqn.outvars[0].aval
      total += 2 * math.prod(out.shape) * math.prod(lhs.shape[d] for d in contract)
    elif name == 'cond':
      total += max((jaxpr_flops(b) for b in eqn.params['branches']), default=0)
    elif name == 'scan':
      total += int(eqn.params['length']) * sum(jaxpr_flops(s) for s in _sub_jaxprs(eqn.params))
    else:
      total += sum(jaxpr_flops(s) for s in _sub_jaxprs(eqn.params))
  return total


def forward_flops_per_frame(apply_fn: Callable[[jax.Array], Any], grid_shape: Sequence[int], *,
                            method: str = 'jaxpr', dtype: Any = jnp.float32) -> float:
  """FLOPs of ``apply_fn`` on one frame: a batch of one ``(1, *grid_shape)`` input.

  ``apply_fn`` maps a batch of frames to the model's outputs (e.g. logits), with
  the parameters closed over. ``method``: ``'jaxpr'`` (analytic, an int) or
  ``'xla'`` (XLA's cost analysis of the compiled function).
  """
  x = jax.ShapeDtypeStruct((1, *(int(n) for n in grid_shape)), dtype)
  if method == 'jaxpr':
    return jaxpr_flops(jax.make_jaxpr(apply_fn)(x))
  if method == 'xla':
    analysis = jax.jit(apply_fn).lower(x).compile().cost_analysis()
    if isinstance(analysis, (list, tuple)):  # Older JAX: one dict per program.
      analysis = analysis[0] if analysis else {}
    if not analysis or 'flops' not in analysis:
      raise ValueError(f'XLA reports no FLOPs on the {jax.default_backend()} backend; '
                       "use method='jaxpr'.")
    return float(analysis['flops'])
  raise ValueError(f'method={method!r} is not known (known: {", ".join(METHODS)}).')


def model_forward_flops(model: Any, grid_shape: Sequence[int], *, method: str = 'jaxpr') -> float:
  """`forward_flops_per_frame` of an nnx model in inference mode (running BatchNorm statistics)."""
  from hdsemg_jax.training import state as state_lib  # Only this helper needs the trainer's state.
  graphdef, params, batch_stats = state_lib.split_model(model)

  def forward(x):
    return state_lib.apply_model(graphdef, params, batch_stats, x, train=False)[0]

  return forward_flops_per_frame(forward, grid_shape, method=method)


def _block(out: Any) -> None:
  # Brings every output to the host: the time a caller waits for its answers.
  jax.tree.map(np.asarray, out)


def seconds_per_frame(predict: Callable[[np.ndarray], Any], frames: np.ndarray, *,
                      batch_size: int | None = None, repeats: int = 5,
                      warmup: int = 1) -> float:
  """Median over ``repeats`` of the time to predict all ``frames``, per frame.

  ``predict`` takes a batch of frames. Frames go in batches of ``batch_size``
  (default: all at once); a last, shorter batch is zero-padded to full size, as
  `evaluate.predict_frames` does, so one compiled shape serves every call.
  ``warmup`` passes over all frames run first and are not timed.
  """
  frames = np.asarray(frames)
  n = len(frames)
  if n == 0:
    raise ValueError('seconds_per_frame needs at least one frame.')
  if repeats < 1 or warmup < 0:
    raise ValueError(f'repeats must be >= 1 and warmup >= 0; got {repeats}, {warmup}.')
  size = int(batch_size or n)
  padded = -(-n // size) * size
  x = np.zeros((padded, *frames.shape[1:]), frames.dtype)
  x[:n] = frames
  batches = [x[i:i + size] for i in range(0, padded, size)]

  def run() -> None:
    for batch in batches:
      _block(predict(batch))

  for _ in range(warmup):
    run()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
  return statistics.median(times) / n


def peak_memory() -> dict[str, int | None]:
  """``{'peak_host_memory_bytes', 'peak_device_memory_bytes'}`` of this process so far.

  The device figure is None where no local device reports ``peak_bytes_in_use``.
  """
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  host = rss if sys.platform == 'darwin' else rss * 1024  # Linux reports KiB, macOS bytes.
  peaks = []
  for device in jax.local_devices():
    try:
      stats = device.memory_stats()
    except Exception:  # noqa: BLE001  (some backends raise instead of returning None)
      stats = None
    if stats and 'peak_bytes_in_use' in stats:
      peaks.append(int(stats['peak_bytes_in_use']))
  return {'peak_host_memory_bytes': int(host),
          'peak_device_memory_bytes': max(peaks) if peaks else None}
