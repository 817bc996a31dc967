"""The closed-form BatchNorm gradient equals Flax's autodiff one, and nothing else changes.

`batch_norm.BatchNorm` must be `nnx.BatchNorm` in everything but how its training
gradient is computed: same parameter and statistics pytree, same outputs and running
averages, and gradients (wrt input, scale and offset) equal up to rounding, for the
activation shapes of both models.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hdsemg_jax import models
from hdsemg_jax.ops import batch_norm
from hdsemg_jax.training import state as state_lib


def _layers(num_features: int):
  kwargs = dict(momentum=0.9, epsilon=1e-5, rngs=nnx.Rngs(0))
  return (batch_norm.BatchNorm(num_features, grad='closed_form', **kwargs),
          nnx.BatchNorm(num_features, **kwargs))


def _train_outputs_and_grads(layer, x, cotangent, scale, bias):
  graphdef, state = nnx.split(layer)

  def f(x, scale, bias):
    traced = nnx.merge(graphdef, state, copy=True)
    traced.scale[...] = scale
    traced.bias[...] = bias
    y = traced(x, use_running_average=False)
    return y, (traced.mean[...], traced.var[...])

  y, vjp, (mean, var) = jax.vjp(f, x, scale, bias, has_aux=True)
  return (y, mean, var, *vjp(cotangent))


@pytest.mark.parametrize('shape', [(6, 16, 8, 1), (5, 8, 4, 16), (7, 12)])
def test_training_outputs_statistics_and_gradients_match_flax(shape):
  keys = jax.random.split(jax.random.key(sum(shape)), 5)
  features = shape[-1]
  # An offset and spread per channel, as conv outputs have.
  x = 3.0 + 2.0 * jax.random.normal(keys[0], shape)
  cotangent = jax.random.normal(keys[1], shape)
  scale = 1.0 + 0.3 * jax.random.normal(keys[2], (features,))
  bias = 0.5 * jax.random.normal(keys[3], (features,))
  closed, flax_layer = _layers(features)
  # The closed form is what runs (not a fallback to Flax's path).
  graphdef, state = nnx.split(closed)
  jaxpr = jax.make_jaxpr(lambda x: nnx.merge(graphdef, state, copy=True)(
      x, use_running_average=False))(x)
  assert 'custom_vjp' in str(jaxpr)
  actual = jax.jit(lambda *a: _train_outputs_and_grads(closed, *a))(x, cotangent, scale, bias)
  expected = jax.jit(lambda *a: _train_outputs_and_grads(flax_layer, *a))(x, cotangent, scale,
                                                                            bias)
  names = ('output', 'running mean', 'running var', 'input gradient', 'scale gradient',
           'offset gradient')
  for a, e, name in zip(actual, expected, names):
    assert a.shape == e.shape and a.dtype == e.dtype, name
    scale_of = float(jnp.max(jnp.abs(e))) + 1e-6
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=1e-4, atol=2e-5 * scale_of,
                               err_msg=name)


def test_evaluation_and_pytree_are_flax_s():
  closed, flax_layer = _layers(4)
  assert (jax.tree.structure(nnx.state(closed)) == jax.tree.structure(nnx.state(flax_layer)))
  x = jax.random.normal(jax.random.key(0), (3, 4))
  # Training once moves the running averages; evaluation then uses them.
  closed(x, use_running_average=False)
  flax_layer(x, use_running_average=False)
  np.testing.assert_allclose(np.asarray(closed.mean[...]), np.asarray(flax_layer.mean[...]),
                             rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(closed(x, use_running_average=True)),
                                np.asarray(flax_layer(x, use_running_average=True)))


@pytest.mark.slow
def test_whole_models_give_the_same_loss_and_gradients_with_either_gradient():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((16, 16, 8)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 8, 16))
  for name, kwargs in (('all_convnet', {}),
                       ('geng_convnet', dict(dense_features=(32, 16), dropout_layers=0))):
    results = {}
    for grad in batch_norm.GRADS:
      model = models.build(name, 8, seed=0, batchnorm_grad=grad, **kwargs)
      graphdef, params, batch_stats = state_lib.split_model(model)

      def loss_fn(params, graphdef=graphdef, batch_stats=batch_stats):
        logits, new_stats = state_lib.apply_model(graphdef, params, batch_stats, x, train=True,
                                                  rng=jax.random.key(0))
        return jnp.mean(-jax.nn.log_softmax(logits)[jnp.arange(len(y)), y]), new_stats

      results[grad] = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params)
    (loss, stats), grads = results['closed_form']
    (loss_ad, stats_ad), grads_ad = results['autodiff']
    np.testing.assert_allclose(float(loss), float(loss_ad), rtol=1e-5, err_msg=name)
    for a, e in zip(jax.tree.leaves(stats), jax.tree.leaves(stats_ad)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=1e-4, atol=1e-5)
    top = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads_ad))
    for (path, a), e in zip(jax.tree_util.tree_leaves_with_path(grads), jax.tree.leaves(grads_ad)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=1e-4, atol=1e-5 * top,
                                 err_msg=f'{name} {jax.tree_util.keystr(path)}')


def test_unknown_gradient_names_the_config_key():
  with pytest.raises(ValueError, match='model.batchnorm_grad'):
    models.build('all_convnet', 8, seed=0, batchnorm_grad='numeric')
