"""XLA:CPU compiler options for training steps, chosen from the config and the backend.

The 'hybrid' convolution (`hdsemg_jax.ops.conv`) pays off only together with XLA's
own (Eigen) kernels: by default XLA:CPU hands convolutions to YNNPACK library
fusions, which run this network's training convolutions about twice as slowly
(measured on a 2-core AVX-512 machine, jaxlib 0.10.2: a 16x8x64 3x3 convolution over
1000 frames takes 120-130 ms forward and 530-680 ms for its kernel gradient with
YNNPACK, 55-65 ms and 90-130 ms with XLA's own kernels). So a training step of a
model configured with ``model.conv_impl`` 'hybrid' or 'auto' is compiled without
them; 'xla' keeps XLA's defaults, as the straightforward baseline. Prediction keeps
the defaults for every formulation: YNNPACK fuses the whole inference graph, which
is as fast or faster at batch 1 and 1000. `jax.pmap` takes no compiler options, so
under ``parallel=pmap`` every formulation trains with XLA's defaults.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from hdsemg_jax.ops import conv

_NO_LIBRARY_FUSIONS = {'xla_cpu_experimental_ynn_fusion_type': ''}
# They pay from batches of 32 frames per device (1125 vs 1021 training frames/s) but not
# for single frames (333 vs 381).
MIN_BATCH = 32


@functools.cache
def _supported() -> bool:
  # The flag is experimental: a jaxlib without it compiles with its defaults instead.
  try:
    jax.jit(lambda x: x + 1, compiler_options=_NO_LIBRARY_FUSIONS).lower(
        jnp.zeros((), jnp.float32)).compile()
  except Exception:  # pylint: disable=broad-except
    return False
  return True


def train_compiler_options(conv_impl: str,
                           per_device_batch: int | None = None) -> dict[str, Any] | None:
  """Compiler options for a training step (None: XLA's defaults).

  Only on CPU, only for ``conv_impl`` other than 'xla', and not for batches (if
  given) under `MIN_BATCH` frames per device.
  """
  conv.resolve(conv_impl)  # An unknown name is an error here too.
  if jax.default_backend() != 'cpu' or conv_impl == 'xla':
    return None
  if per_device_batch is not None and per_device_batch < MIN_BATCH:
    return None
  return dict(_NO_LIBRARY_FUSIONS) if _supported() else None
