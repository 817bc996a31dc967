"""Interchangeable formulations of the 2-D convolution inside `nnx.Conv`.

Each formulation is a drop-in for `jax.lax.conv_general_dilated` that `nnx.Conv`
calls through its ``conv_general_dilated`` argument, so the parameters stay those
of `nnx.Conv` (``kernel`` (kh, kw, in, out), ``bias``) whatever the choice and a
model trained with one formulation runs with any other. They compute the same
mathematics and differ only in rounding.

  'xla'     `lax.conv_general_dilated` as is: the compiler's convolution for the
            forward pass and its autodiff rules for the backward pass.
  'hybrid'  the compiler's convolution forward and for the input gradient (of a
            strided convolution: one stride-1 convolution per phase of the input,
            `_phase_input_grad`), but the kernel gradient as a patch-matrix product
            (and both gradients of 1x1 convolutions as plain matrix products).
            XLA:CPU lowers the kernel gradient to a convolution whose 'kernel' is
            the whole activation map, which its YNNPACK fusions run several times
            slower than the product, and its Eigen kernels somewhat slower on the
            16x8 maps (127 vs 98 ms over 1000 frames, 64 channels).
  'auto'    on CPU 'hybrid' for batches of `AUTO_HYBRID_MIN_BATCH` frames or more and
            'xla' for smaller ones (single-frame inference included); 'xla' on
            GPU/TPU, whose convolutions are tuned. The default.

On CPU, the training step of a model using 'hybrid' or 'auto' should also be
compiled without XLA's YNNPACK library fusions: `hdsemg_jax.ops.compiler_options`
says when, from the configured formulation and the batch size.

Only the shapes the models use take the alternative routes (NHWC/HWIO, no
dilation, no feature groups); anything else falls back to
`lax.conv_general_dilated`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax

IMPLS = ('xla', 'hybrid', 'auto')

# nnx.Conv's layout for 2-D inputs.
_NHWC = lax.ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1),
                                 out_spec=(0, 3, 1, 2))

# Patch-matrix entries per slice of the kernel-gradient product: small enough that
# a slice stays in cache, large enough that each matrix product is worth a call.
# Measured on a 2-core AVX-512 machine (1 MiB L2 per core, 32 MiB L3).
DW_CHUNK_ELEMENTS = 1 << 20

Padding = Sequence[tuple[int, int]]


# 'auto' on CPU: below this batch size the kernel-gradient products are too small to beat
# the compiler's convolution (measured: 'hybrid' trains 1.1x faster at batch 256, 1.5x at
# 1000, as fast at 32 and slower at 1 than 'xla').
AUTO_HYBRID_MIN_BATCH = 128


def resolve(impl: str, batch_size: int | None = None) -> str:
  """The formulation ``impl`` stands for on the default backend (at ``batch_size``, if given)."""
  if impl not in IMPLS:
    raise ValueError(f'model.conv_impl={impl!r} is not known (known: {", ".join(IMPLS)}).')
  if impl == 'auto':
    if jax.default_backend() != 'cpu':
      return 'xla'
    if batch_size is not None and not isinstance(batch_size, int):
      return 'xla'  # A symbolic batch (jax.export): the compiler's convolution serves any size.
    return 'xla' if batch_size is not None and batch_size < AUTO_HYBRID_MIN_BATCH else 'hybrid'
  return impl


@dataclasses.dataclass(frozen=True)
class _Conv:
  """`_conv` bound to a formulation; equal for equal names.

  `nnx.Conv` keeps it in the model's static structure, so two models built alike
  must hold equal ones: their graphdefs then compare (and hash) equal, which lets
  compiled steps be reused and the models of several seeds be stacked.
  """
  impl: str

  def __call__(self, *args: Any, **kwargs: Any) -> jax.Array:
    return _conv(self.impl, *args, **kwargs)


def conv_general_dilated(impl: str) -> Callable[..., jax.Array]:
  """A `lax.conv_general_dilated` replacement computing with formulation ``impl``."""
  resolve(impl)  # Fail early on unknown names.
  if impl == 'xla':
    return lax.conv_general_dilated
  return _Conv(impl)


def _supported(lhs: jax.Array, rhs: jax.Array, lhs_dilation, rhs_dilation, dimension_numbers,
               feature_group_count: int, batch_group_count: int) -> bool:
  if lhs.ndim != 4 or rhs.ndim != 4:
    return False
  if feature_group_count != 1 or batch_group_count != 1:
    return False
  if any(d != 1 for d in (lhs_dilation or ())) or any(d != 1 for d in (rhs_dilation or ())):
    return False
  dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  return dn == _NHWC


def _conv(impl: str, lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
          padding: str | Padding, lhs_dilation: Sequence[int] | None = None,
          rhs_dilation: Sequence[int] | None = None, dimension_numbers: Any = None,
          feature_group_count: int = 1, batch_group_count: int = 1, precision: Any = None,
          preferred_element_type: Any = None, **kwargs: Any) -> jax.Array:
  """`lax.conv_general_dilated`'s signature; routes supported shapes to ``impl``."""
  fallback = functools.partial(
      lax.conv_general_dilated, lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
      rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
      feature_group_count=feature_group_count, batch_group_count=batch_group_count,
      precision=precision, preferred_element_type=preferred_element_type, **kwargs)
  # An explicit output sharding only makes sense for the compiler's own convolution.
  if kwargs.get('out_sharding') is not None:
    return fallback()
  if not _supported(lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers,
                    feature_group_count, batch_group_count):
    return fallback()
  impl = resolve(impl, lhs.shape[0])
  if impl == 'xla':
    return fallback()
  strides = tuple(int(s) for s in window_strides)
  if isinstance(padding, str):
    pads = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], strides, padding)
  else:
    pads = padding
  pads = tuple((int(lo), int(hi)) for lo, hi in pads)
  if any(p < 0 for pair in pads for p in pair):
    return fallback()
  return _hybrid_conv(lhs, rhs, strides, pads, precision, preferred_element_type)


# ----------------------------------------------------------------------------
# Patch matrices.


def _out_size(size: int, k: int, stride: int, pad: tuple[int, int]) -> int:
  return (size + pad[0] + pad[1] - k) // stride + 1


def _patches(x: jax.Array, kernel_hw: tuple[int, int], strides: tuple[int, int],
             pads: Padding) -> jax.Array:
  """``(N, Ho, Wo, kh*kw*C)``: the input window of every output pixel, (kh, kw, C)-major.

  The (kh, kw, C) order matches a kernel (kh, kw, C, O) reshaped to (kh*kw*C, O).
  """
  kh, kw = kernel_hw
  sh, sw = strides
  n, h, w, c = x.shape
  ho, wo = _out_size(h, kh, sh, pads[0]), _out_size(w, kw, sw, pads[1])
  xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0))) if any(p for pr in pads for p in pr) else x
  taps = [lax.slice(xp, (0, i, j, 0), (n, i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1, c),
                    (1, sh, sw, 1))
          for i in range(kh) for j in range(kw)]
  return taps[0] if len(taps) == 1 else jnp.concatenate(taps, axis=-1)


def _col2im(cols: jax.Array, x_shape: tuple[int, ...], kernel_hw: tuple[int, int],
            strides: tuple[int, int], pads: Padding) -> jax.Array:
  """The transpose of `_patches`: every window's entries added back onto the input grid."""
  kh, kw = kernel_hw
  sh, sw = strides
  n, h, w, c = x_shape
  _, ho, wo, _ = cols.shape
  hp, wp = h + pads[0][0] + pads[0][1], w + pads[1][0] + pads[1][1]
  total = None
  for t, (i, j) in enumerate((i, j) for i in range(kh) for j in range(kw)):
    tap = cols[..., t * c:(t + 1) * c]
    # Interior padding puts a strided tap back on its grid; XLA fuses the sum of pads.
    placed = lax.pad(tap, jnp.zeros((), cols.dtype),
                     ((0, 0, 0), (i, hp - i - (ho - 1) * sh - 1, sh - 1),
                      (j, wp - j - (wo - 1) * sw - 1, sw - 1), (0, 0, 0)))
    total = placed if total is None else total + placed
  return total[:, pads[0][0]:pads[0][0] + h, pads[1][0]:pads[1][0] + w, :]


def _dot(a: jax.Array, b: jax.Array, contract: tuple[int, int], precision: Any,
         preferred_element_type: Any) -> jax.Array:
  return lax.dot_general(a, b, (((contract[0],), (contract[1],)), ((), ())), precision=precision,
                         preferred_element_type=preferred_element_type)


# ----------------------------------------------------------------------------
# 'hybrid': the compiler's convolution where it is fast, matrix products elsewhere.


def _xla_conv(x, w, strides, pads, precision, preferred_element_type):
  return lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_NHWC,
                                  precision=precision,
                                  preferred_element_type=preferred_element_type)


def _is_pointwise(w: jax.Array, pads: Padding) -> bool:
  return w.shape[:2] == (1, 1) and all(p == (0, 0) for p in pads)


def _kernel_grad(x: jax.Array, g: jax.Array, kernel_shape: tuple[int, ...],
                 strides: tuple[int, int], pads: Padding, precision: Any) -> jax.Array:
  """dL/dkernel = patches(x)^T g, over slices of the batch so each slice stays in cache."""
  kh, kw, cin, cout = kernel_shape
  n, ho, wo, _ = g.shape
  chunk = max(1, min(n, DW_CHUNK_ELEMENTS // (ho * wo * kh * kw * cin)))

  def product(xc, gc):
    p = _patches(xc, (kh, kw), strides, pads)
    m = p.shape[0] * ho * wo
    # (cout, m) x (m, kh*kw*cin) is the faster orientation for XLA:CPU's dot.
    return _dot(gc.reshape(m, cout), p.reshape(m, kh * kw * cin), (0, 0), precision,
                jnp.float32)

  num_chunks, rest = divmod(n, chunk)
  if num_chunks <= 1:
    total = product(x, g)
  else:
    head = num_chunks * chunk
    xs = x[:head].reshape(num_chunks, chunk, *x.shape[1:])
    gs = g[:head].reshape(num_chunks, chunk, *g.shape[1:])
    total = lax.fori_loop(0, num_chunks, lambda i, acc: acc + product(xs[i], gs[i]),
                          jnp.zeros((cout, kh * kw * cin), jnp.float32))
    if rest:
      total = total + product(x[head:], g[head:])
  return total.T.reshape(kernel_shape)


def _has_phases(x_shape: tuple[int, ...], kernel_shape: tuple[int, ...],
                strides: tuple[int, int]) -> bool:
  """Whether `_phase_input_grad` applies: a strided kernel at least as wide as its stride
  over an input whose sides divide by the stride."""
  return (strides != (1, 1) and all(k >= s for k, s in zip(kernel_shape[:2], strides))
          and all(d % s == 0 for d, s in zip(x_shape[1:3], strides)))


def _phase_taps(phase: int, stride: int, k: int, pad_lo: int) -> list[tuple[int, int]]:
  """(tap, offset) pairs along one axis: input ``stride*a + phase`` receives tap ``t`` of
  output ``a + offset``, by increasing offset."""
  return sorted(((t, (phase + pad_lo - t) // stride) for t in range(k)
                 if (phase + pad_lo - t) % stride == 0), key=lambda pair: pair[1])


def _phase_input_grad(g: jax.Array, w: jax.Array, x_shape: tuple[int, ...],
                      strides: tuple[int, int], pads: Padding, precision: Any) -> jax.Array:
  """dL/dx of a strided convolution as one stride-1 convolution per input phase.

  The compiler computes this gradient as a convolution over the gradient dilated by the
  stride, mostly multiplying inserted zeros (at stride 2, 4x the forward pass's work).
  Split by the phase of the input position (its index modulo the stride), each part is
  a plain correlation of ``g`` with the kernel taps that reach it, so the total work is
  that of the forward pass; the parts are then interleaved.
  """
  n, h, wd, cin = x_shape
  _, ho, wo, _ = g.shape
  sh, sw = strides
  rows = []
  for pr in range(sh):
    taps_r = _phase_taps(pr, sh, w.shape[0], pads[0][0])
    cols = []
    for pc in range(sw):
      taps_c = _phase_taps(pc, sw, w.shape[1], pads[1][0])
      # Offsets along an axis are consecutive, so the taps form a dense sub-kernel;
      # as the kernel of a convolution over ``g`` its in/out features swap.
      sub = jnp.stack([jnp.stack([w[tr, tc] for tc, _ in taps_c]) for tr, _ in taps_r])
      sub = jnp.swapaxes(sub, 2, 3)
      pad_r = (-taps_r[0][1], h // sh - 1 + taps_r[-1][1] - (ho - 1))
      pad_c = (-taps_c[0][1], wd // sw - 1 + taps_c[-1][1] - (wo - 1))
      cols.append(_xla_conv(g, sub, (1, 1), (pad_r, pad_c), precision, None))
    rows.append(jnp.stack(cols, axis=3))  # (n, h/sh, wd/sw, sw, cin)
  return jnp.stack(rows, axis=2).reshape(n, h, wd, cin)  # (n, h/sh, sh, wd/sw, sw, cin)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _hybrid_conv(x: jax.Array, w: jax.Array, strides: tuple[int, int], pads: Padding,
                 precision: Any, preferred_element_type: Any) -> jax.Array:
  # The forward pass is the compiler's for every shape: a 1x1 convolution as a matrix
  # product predicted ~5% slower at batches 256-4096.
  return _xla_conv(x, w, strides, pads, precision, preferred_element_type)


def _hybrid_fwd(x, w, strides, pads, precision, preferred_element_type):
  return _hybrid_conv(x, w, strides, pads, precision, preferred_element_type), (x, w)


def _hybrid_bwd(strides, pads, precision, preferred_element_type, res, g):
  del preferred_element_type
  x, w = res
  kh, kw, cin, cout = w.shape
  if _is_pointwise(w, pads):
    n, ho, wo, _ = g.shape
    g2 = g.reshape(n * ho * wo, cout)
    dxs = _dot(g2, w.reshape(cin, cout), (1, 1), precision, None).reshape(n, ho, wo, cin)
    if strides != (1, 1):
      dxs = _col2im(dxs, x.shape, (1, 1), strides, pads)
    xs = x[:, ::strides[0], ::strides[1], :].reshape(n * ho * wo, cin)
    dw = _dot(g2, xs, (0, 0), precision, jnp.float32).T.reshape(w.shape)
    return dxs.astype(x.dtype), dw.astype(w.dtype)
  if cin * kh * kw <= 16:
    # A few input channels (the first layer): g @ w^T is tiny and col2im cheap,
    # where the compiler's transposed convolution would do a lot of work for it.
    n, ho, wo, _ = g.shape
    cols = _dot(g.reshape(n * ho * wo, cout), w.reshape(kh * kw * cin, cout), (1, 1), precision,
                None).reshape(n, ho, wo, kh * kw * cin)
    dx = _col2im(cols, x.shape, (kh, kw), strides, pads)
  elif _has_phases(x.shape, w.shape, strides):
    dx = _phase_input_grad(g, w, x.shape, strides, pads, precision)
  else:
    _, vjp = jax.vjp(lambda x_: _xla_conv(x_, w, strides, pads, precision, None), x)
    (dx,) = vjp(g)
  dw = _kernel_grad(x, g, w.shape, strides, pads, precision)
  return dx.astype(x.dtype), dw.astype(w.dtype)


_hybrid_conv.defvjp(_hybrid_fwd, _hybrid_bwd)

