"""Every convolution formulation computes what the plain Flax convolution computes.

Outputs and gradients (wrt inputs and kernels) of each formulation are compared with
`nnx.Conv`'s own `lax.conv_general_dilated` on random inputs, for the layer shapes of
All-ConvNet and Geng ConvNet; whole models give the same loss and gradients whatever
the formulation, and a parameter pytree trained with one formulation runs with all.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hdsemg_jax import models, ops
from hdsemg_jax.models import layers
from hdsemg_jax.ops import compiler_options, conv as conv_impls
from hdsemg_jax.training import optimizer, state as state_lib, steps

# 'auto' is one of these on every backend (checked below).
ALTERNATIVES = ['hybrid']

# (batch, height, width, in, out, kernel, stride, bias): All-ConvNet's and Geng ConvNet's layers
# on 16 x 8 frames (Geng's are its first two), plus odd grids and a batch large enough that
# the kernel gradient is summed over several slices of it and a remainder.
LAYERS = [
    (4, 16, 8, 1, 64, 3, 1, False),     # First layer: one input channel.
    (4, 16, 8, 64, 64, 3, 1, False),
    (4, 16, 8, 64, 128, 3, 2, False),   # Stride 2 on even sizes.
    (4, 8, 4, 128, 128, 3, 1, False),
    (4, 8, 4, 128, 256, 1, 1, False),   # 1x1.
    (4, 8, 4, 256, 8, 1, 1, True),      # The head: 1x1 with bias.
    (3, 7, 5, 1, 16, 3, 2, False),      # Odd sizes, stride 2.
    (3, 7, 5, 16, 24, 3, 1, False),
    (3, 7, 5, 16, 8, 1, 2, False),      # Strided 1x1.
    (3, 12, 6, 8, 8, 3, 3, False),      # Stride 3: three input phases per axis.
    (3, 16, 8, 8, 8, 5, 2, False),      # Two or three taps per phase.
    (33, 16, 8, 64, 16, 3, 1, False),   # Kernel gradient in slices (+ a remainder).
]


def _conv_and_grads(impl: str, kernel: jax.Array, bias: jax.Array | None, x: jax.Array,
                    cotangent: jax.Array, stride: int):
  layer = layers.conv(kernel.shape[2], kernel.shape[3], kernel.shape[0], stride,
                      use_bias=bias is not None, conv_impl=impl, rngs=nnx.Rngs(0))
  if bias is not None:
    layer.bias[...] = bias
  graphdef, state = nnx.split(layer)

  def f(x, kernel):
    # A fresh copy at the current trace level, so that its kernel may be set.
    traced = nnx.merge(graphdef, state, copy=True)
    traced.kernel[...] = kernel
    return traced(x)

  @jax.jit
  def outputs_and_grads(x, kernel, cotangent):
    y, vjp = jax.vjp(f, x, kernel)
    return (y, *vjp(cotangent))

  return outputs_and_grads(x, kernel, cotangent)


def _assert_close(actual, expected, name, scale=None):
  # Rounding errors scale with the magnitudes summed, so the tolerance is relative to those.
  scale = scale or float(jnp.max(jnp.abs(expected))) + 1e-6
  np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=1e-4,
                             atol=1e-5 * scale, err_msg=name)


@pytest.mark.parametrize('impl', ALTERNATIVES)
@pytest.mark.parametrize('n, h, w, cin, cout, k, stride, use_bias', LAYERS)
def test_layer_outputs_and_gradients_match_xla(impl, n, h, w, cin, cout, k, stride, use_bias):
  keys = jax.random.split(jax.random.key(n * h * w + cin + cout + k + stride), 4)
  x = jax.random.normal(keys[0], (n, h, w, cin))
  kernel = jax.random.normal(keys[1], (k, k, cin, cout)) / np.sqrt(k * k * cin)
  bias = jax.random.normal(keys[2], (cout,)) if use_bias else None
  out_hw = (-(-h // stride), -(-w // stride))
  cotangent = jax.random.normal(keys[3], (n, *out_hw, cout))
  expected = _conv_and_grads('xla', kernel, bias, x, cotangent, stride)
  actual = _conv_and_grads(impl, kernel, bias, x, cotangent, stride)
  for a, e, name in zip(actual, expected, ('output', 'input gradient', 'kernel gradient')):
    assert a.shape == e.shape, name
    _assert_close(a, e, f'{impl} {name}')


def _loss_and_grads(name: str, impl: str, x: jax.Array, y: jax.Array, **kwargs):
  model = models.build(name, 8, seed=0, conv_impl=impl, **kwargs)
  graphdef, params, batch_stats = state_lib.split_model(model)

  def loss_fn(params):
    logits, _ = state_lib.apply_model(graphdef, params, batch_stats, x, train=True,
                                      rng=jax.random.key(0))
    return jnp.mean(-jax.nn.log_softmax(logits)[jnp.arange(len(y)), y])

  return jax.jit(jax.value_and_grad(loss_fn))(params)


@pytest.mark.parametrize('name, kwargs', [
    ('all_convnet', {}),
    ('geng_convnet', dict(grid_shape=(16, 8), dense_features=(32, 16), dropout_layers=0)),
])
@pytest.mark.slow
@pytest.mark.parametrize('impl', ALTERNATIVES)
def test_whole_model_loss_and_gradients_match_xla(name, kwargs, impl):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((16, 16, 8)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 8, 16))
  loss, grads = _loss_and_grads(name, 'xla', x, y, **kwargs)
  loss_impl, grads_impl = _loss_and_grads(name, impl, x, y, **kwargs)
  np.testing.assert_allclose(float(loss_impl), float(loss), rtol=1e-5)
  assert jax.tree.structure(grads_impl) == jax.tree.structure(grads)
  # Some gradients are zero up to cancellation (e.g. the input BatchNorm's offset), so the
  # tolerance is relative to the largest gradient.
  scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads))
  for (path, g), g_impl in zip(jax.tree_util.tree_leaves_with_path(grads),
                               jax.tree.leaves(grads_impl)):
    _assert_close(g_impl, g, f'{impl} {jax.tree_util.keystr(path)}', scale)


def test_strided_layers_of_the_models_take_the_per_phase_input_gradient(monkeypatch):
  # Otherwise the stride-2 rows above would only test the fallback.
  calls = []
  original = conv_impls._phase_input_grad

  def spy(*args, **kwargs):
    calls.append(args[2])  # The input's shape.
    return original(*args, **kwargs)

  monkeypatch.setattr(conv_impls, '_phase_input_grad', spy)
  x = jnp.ones((4, 16, 8, 64), jnp.float32)
  kernel = jnp.ones((3, 3, 64, 128), jnp.float32) / 100
  conv = conv_impls.conv_general_dilated('hybrid')
  jax.grad(lambda x: jnp.sum(conv(x, kernel, (2, 2), 'SAME',
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))))(x)
  assert calls == [(4, 16, 8, 64)]
  # Odd sides cannot be split into phases: the compiler's gradient instead.
  calls.clear()
  x_odd = jnp.ones((3, 7, 5, 64), jnp.float32)
  jax.grad(lambda x: jnp.sum(conv(x, kernel, (2, 2), 'SAME',
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))))(x_odd)
  assert calls == []


def _compiled_step_text(options):
  tx = optimizer.sgd_recipe(learning_rate=0.1, momentum=0.9, weight_decay=1e-4,
                            lr_boundaries=(), total_steps=3)
  graphdef, state = state_lib.create(models.build('all_convnet', 8, seed=0, conv_impl='auto'),
                                     tx, 0)
  frames = jnp.zeros((64, 16, 8), jnp.float32)
  labels = jnp.zeros((64,), jnp.int32)
  return steps.make_train_step(
      graphdef, tx, steps.StepOptions.create(compiler_options=options)).lower(
      state, frames, labels, jnp.arange(64)).compile().as_text()


def test_training_steps_on_cpu_compile_without_library_fusions_except_for_xla():
  options = {impl: ops.train_compiler_options(impl) for impl in conv_impls.IMPLS}
  assert options['xla'] is None  # The straightforward baseline keeps XLA's defaults.
  if jax.default_backend() != 'cpu':
    assert all(o is None for o in options.values())
    return
  assert options['auto'] == options['hybrid']
  if options['auto'] is None:
    pytest.skip('this jaxlib has no xla_cpu_experimental_ynn_fusion_type flag')
  # Single-frame steps keep XLA's defaults (measured faster with them).
  small = compiler_options.MIN_BATCH
  assert ops.train_compiler_options('auto', small - 1) is None
  assert ops.train_compiler_options('auto', small) == options['auto']
  with pytest.raises(ValueError, match='model.conv_impl'):
    ops.train_compiler_options('fft')
  # Positive control: with XLA's defaults the same step does use the library fusions, so
  # their absence below is the options' doing.
  default_text = _compiled_step_text(None)
  if 'ynn_fusion' not in default_text:
    pytest.skip('this jaxlib compiles the step without YNNPACK fusions even by default')
  assert 'ynn_fusion' not in _compiled_step_text(options['auto'])


def test_parameters_trained_with_one_formulation_run_with_every_other():
  tiny = dict(features=(8, 8, 16, 16), kernel_sizes=(3, 3, 3, 1), strides=(1, 2, 1, 1))
  tx = optimizer.sgd_recipe(learning_rate=0.1, momentum=0.9, weight_decay=1e-4,
                            lr_boundaries=(), total_steps=3)
  model = models.build('all_convnet', 8, seed=0, conv_impl='hybrid', **tiny)
  graphdef, state = state_lib.create(model, tx, 0)
  rng = np.random.default_rng(0)
  frames = jnp.asarray(rng.standard_normal((32, 16, 8)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 8, 32), jnp.int32)
  train_step = steps.make_train_step(graphdef, tx)
  for _ in range(3):
    state, _ = train_step(state, frames, labels, jnp.arange(32))
  logits = {}
  for impl in conv_impls.IMPLS:
    other = models.build('all_convnet', 8, seed=1, conv_impl=impl, **tiny)
    other_graphdef, params, _ = state_lib.split_model(other)
    assert jax.tree.structure(params) == jax.tree.structure(state.params)
    logits[impl], _ = state_lib.apply_model(other_graphdef, state.params, state.batch_stats,
                                            frames, train=False)
  for impl in ALTERNATIVES:
    _assert_close(logits[impl], logits['xla'], impl)


def test_auto_picks_a_formulation_per_backend_and_unknown_names_fail():
  on_cpu = jax.default_backend() == 'cpu'
  assert conv_impls.resolve('auto') == ('hybrid' if on_cpu else 'xla')
  assert conv_impls.resolve('auto', conv_impls.AUTO_HYBRID_MIN_BATCH) == conv_impls.resolve('auto')
  assert conv_impls.resolve('auto', 1) == 'xla'  # Single frames: the compiler's convolution.
  with pytest.raises(ValueError, match='model.conv_impl'):
    conv_impls.resolve('im2col')  # Dropped: slower than 'xla' everywhere it was measured.
  with pytest.raises(ValueError, match='model.conv_impl'):
    models.build('all_convnet', 8, seed=0, conv_impl='fft')


def test_models_built_alike_have_equal_structure():
  # Compiled steps are reused, and seeds stacked, only for equal graphdefs.
  for impl in conv_impls.IMPLS:
    a, _, _ = state_lib.split_model(models.build('all_convnet', 8, seed=0, conv_impl=impl))
    b, _, _ = state_lib.split_model(models.build('all_convnet', 8, seed=1, conv_impl=impl))
    assert a == b and hash(a) == hash(b), impl
