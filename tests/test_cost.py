"""Forward-pass FLOPs and inference time per frame, against numbers computed by hand."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hdsemg_jax import models
from hdsemg_jax.evaluation import cost


def test_dense_layer_flops_by_hand():
  w, b = jnp.ones((20, 7)), jnp.ones(7)
  apply = lambda x: x.reshape(len(x), -1) @ w + b  # noqa: E731
  # Two per multiply-add: 2 x inputs x outputs; the bias is not counted.
  assert cost.forward_flops_per_frame(apply, (4, 5)) == 2 * 20 * 7
  assert cost.forward_flops_per_frame(apply, (4, 5), method='xla') >= 2 * 20 * 7


def _conv(padding):
  k = jnp.ones((3, 3, 1, 4))
  return lambda x: jax.lax.conv_general_dilated(
      x[..., None], k, (1, 1), padding, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def test_conv_flops_by_hand_padding_included():
  # 'VALID' on 6x5: 4x3 outputs x 4 channels x 9 taps x 1 input channel, 2 each.
  assert cost.forward_flops_per_frame(_conv('VALID'), (6, 5)) == 2 * 4 * 3 * 4 * 9 == 864
  assert cost.forward_flops_per_frame(_conv('VALID'), (6, 5), method='xla') == 864
  # 'SAME': every output position counts all 9 taps; XLA skips those on the padding.
  assert cost.forward_flops_per_frame(_conv('SAME'), (6, 5)) == 2 * 6 * 5 * 4 * 9
  assert cost.forward_flops_per_frame(_conv('SAME'), (6, 5), method='xla') < 2 * 6 * 5 * 4 * 9


def test_sub_programs_and_scans_are_counted():
  w = jnp.ones((3, 3))

  def scanned(x):
    def body(h, _):
      return h @ w, None
    return jax.lax.scan(body, x.reshape(1, 3), None, length=5)[0]

  assert cost.forward_flops_per_frame(jax.jit(scanned), (3,)) == 5 * 2 * 3 * 3
  with pytest.raises(ValueError, match="method='flops' is not known"):
    cost.forward_flops_per_frame(scanned, (3,), method='flops')


def test_default_all_convnet_matches_the_count_by_hand():
  by_hand = 2 * (128 * 9 * 1 * 64 + 128 * 9 * 64 * 64 + 32 * 9 * 64 * 128 + 2 * 32 * 9 * 128 * 128
                 + 32 * 128 * 256 + 32 * 256 * 8)
  model = models.build('all_convnet', 8, seed=0)
  assert cost.model_forward_flops(model, (16, 8)) == by_hand == 35_405_824


def test_seconds_per_frame_is_the_median_time_per_frame():
  calls = []

  def predict(batch):
    calls.append(len(batch))
    time.sleep(0.02)
    return np.zeros(len(batch), np.int32)

  frames = np.zeros((10, 2, 2), np.float32)
  seconds = cost.seconds_per_frame(predict, frames, batch_size=4, repeats=3, warmup=1)
  # 3 padded batches of 4 per pass, 4 passes; each pass sleeps 0.06 s for 10 frames.
  assert calls == [4] * 12
  assert 0.006 <= seconds < 0.05
  with pytest.raises(ValueError, match='at least one frame'):
    cost.seconds_per_frame(predict, frames[:0])
