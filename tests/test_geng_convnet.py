"""GengConvNet: parameter count, output shape, dropout in training only, it learns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hdsemg_jax import config as config_lib
from hdsemg_jax import models
from hdsemg_jax.training import optimizer, state as state_lib, steps
from tests.separable_batch import train_on_separable_batch

SMALL = dict(grid_shape=(6, 4), conv_features=(8, 8), local_features=(8, 8),
             dense_features=(32, 32, 16))


def _bn(width: int) -> int:
  return 2 * width  # Scale and offset.


def test_default_geng_convnet_has_the_papers_5_6m_parameters():
  h, w, g = 16, 8, 8
  expected = (_bn(1)
              + 3 * 3 * 1 * 64 + _bn(64) + 3 * 3 * 64 * 64 + _bn(64)  # Convolutions.
              + 2 * (h * w * 64 * 64 + _bn(64))  # Locally connected, a 64x64 per pixel.
              + h * w * 64 * 512 + _bn(512) + 512 * 512 + _bn(512) + 512 * 128 + _bn(128)
              + 128 * g + g)  # Output layer with bias.
  assert expected == 5_611_850
  assert models.num_params(models.build('geng_convnet', g, seed=0)) == expected


def test_output_shape_and_wrong_grid_is_named():
  model = models.build('geng_convnet', 5, seed=0, **SMALL)
  model.eval()
  assert model(jnp.zeros((3, 6, 4))).shape == (3, 5)
  with pytest.raises(ValueError, match='model.grid_shape'):
    model(jnp.zeros((3, 4, 6)))


def test_geng_reads_its_own_config_keys_and_ignores_all_convnets():
  config = config_lib.default_config()
  config.model.name = 'geng_convnet'
  config.model.update({k: v for k, v in SMALL.items() if k != 'grid_shape'})
  config.model.features = (8,)  # All-ConvNet's keys: not read by geng_convnet.
  from_config = models.build_from_config(config.model, 5, (6, 4), seed=0)
  explicit = models.build('geng_convnet', 5, seed=0, **SMALL)
  a, b = nnx.state(from_config, nnx.Param), nnx.state(explicit, nnx.Param)
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  config.model.dropout = 0.25  # Its own keys are config keys, so the command line sets them.
  assert models.build_from_config(config.model, 5, (6, 4), seed=0).dropout.rate == 0.25


def test_a_model_key_of_no_model_is_an_error():
  config = config_lib.default_config()
  with config.unlocked():
    config.model.dense_width = 3
  with pytest.raises(ValueError, match='config.model.dense_width is not a config key'):
    config_lib.check(config)


def test_dropout_is_active_in_train_mode_only():
  model = models.build('geng_convnet', 4, seed=0, **SMALL)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 6, 4)).astype(np.float32))
  model.train()
  a = model(x, rngs=nnx.Rngs(dropout=1))
  b = model(x, rngs=nnx.Rngs(dropout=2))
  assert not np.allclose(a, b)
  model.eval()
  np.testing.assert_array_equal(model(x), model(x, rngs=nnx.Rngs(dropout=3)))


def test_weight_decay_reaches_locally_connected_and_dense_kernels():
  _, params, _ = state_lib.split_model(models.build('geng_convnet', 3, seed=0, **SMALL))
  mask = optimizer.kernel_mask(params)
  flat = {'/'.join(str(getattr(k, 'key', '')) for k in path): v
          for path, v in jax.tree_util.tree_flatten_with_path(mask)[0]}
  assert flat['locals/0/kernel/'] and flat['denses/0/kernel/'] and flat['head/kernel/']
  assert not flat['head/bias/'] and not flat['dense_norms/0/scale/']


def test_train_step_lowers_the_loss_on_a_tiny_batch():
  graphdef, state, x, y, losses = train_on_separable_batch(models.build('geng_convnet', 3, seed=0, **SMALL))
  assert losses[-1] < 0.5 * losses[0]
  # Evaluation runs without dropout keys and with the running BatchNorm statistics.
  predicted = steps.make_predict(graphdef)(state.params, state.batch_stats, x)
  assert predicted.shape == (24,) and float(jnp.mean(predicted == y)) > 0.5
