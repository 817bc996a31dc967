r"""A seconds-long smoke test: tiny synthetic data, a narrow All-ConvNet.

  python -m experiments.main --config=experiments/configs/tiny.py --workdir=/tmp/tiny

Used by the tests; its numbers mean nothing.
"""

import ml_collections

from experiments.configs import default

# A narrow All-ConvNet that trains in seconds; other tests reuse it.
TINY_MODEL = dict(features=(8, 8, 16, 16), kernel_sizes=(3, 3, 3, 1), strides=(1, 2, 1, 1))


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.dataset.name = 'synthetic_hdsemg/tiny'
  config.protocol.sessions = (1,)
  config.protocol.subjects = (1, 2)
  config.model.update(TINY_MODEL)
  config.train.epochs = 2
  config.train.batch_size = 32
  config.train.frame_stride = 1
  config.eval.vote_windows = (1, 5, 150)
  config.eval.batch_size = 64
  config.seeds = (0, 1)
  return config
