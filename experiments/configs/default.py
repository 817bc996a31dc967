r"""The embedded default: All-ConvNet, intra-session, on synthetic data.

  python -m experiments.main --config=experiments/configs/default.py --workdir=workdirs/default

Sized to finish in a few minutes on a 2-core CPU: 4 synthetic subjects, session 1
only (4 folds), 300 frames per trial, every 3rd frame trained on, 6 epochs,
batch 256. The CapgMyo authors' full recipe (28 epochs at batch 1000, every frame)
is what the protocol configs apply to CapgMyo-shaped data, e.g.
`intra_session.py:synthetic_hdsemg/capgmyo`. Expect (synthetic data): per-frame
accuracy far above chance (12.5%) and 150-frame vote accuracy near 100%.

Every key of the config tree, with its default, is in `hdsemg_jax.config.default_config`;
the tree is a public interface: later versions add keys, never rename.
"""

import ml_collections

from hdsemg_jax import config as config_lib


def get_config() -> ml_collections.ConfigDict:
  return config_lib.default_config()
