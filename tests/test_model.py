"""All-ConvNet: parameter count, output shapes, configurable grid and classes."""

import jax.numpy as jnp
import pytest

from hdsemg_jax import models


def test_default_all_convnet_has_442442_trainable_parameters():
  model = models.build('all_convnet', 8, seed=0)
  assert models.num_params(model) == 442_442


@pytest.mark.parametrize('grid, classes', [((16, 8), 8), ((16, 4), 5), ((7, 5), 12)])
def test_output_shape(grid, classes):
  model = models.build('all_convnet', classes, seed=0, features=(8, 8, 16), kernel_sizes=(3, 3, 1),
                       strides=(1, 2, 1))
  assert model(jnp.zeros((3, *grid))).shape == (3, classes)


def test_unknown_model_and_bad_widths_are_named():
  with pytest.raises(ValueError, match='model.name'):
    models.build('resnet', 8, seed=0)
  with pytest.raises(ValueError, match='model.features'):
    models.build('all_convnet', 8, seed=0, features=(8, 8), kernel_sizes=(3,), strides=(1,))
