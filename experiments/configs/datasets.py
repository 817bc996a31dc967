"""Per-dataset settings that the protocol configs share (not a config file itself).

``protocol_config(protocol, dataset)`` is what each protocol config file returns.

``with_dataset(config, name)`` points ``config`` at dataset ``name`` and applies
what that dataset needs: signal conditioning, training-frame stride, recipe.
"""

import ml_collections

from experiments.configs import default

# flexemg is raw ADC data: a DC offset and US mains. The authors notch 60 Hz (Q=50); the
# band-pass keeps the sEMG band. A 28 s trial at 1000 Hz is costly on CPU, so training sees
# every 8th usable frame (evaluation always scores every usable frame).
FLEXEMG = dict(filters=('notch:60:50', 'bandpass:20:450'), frame_stride=8, epochs=8,
               batch_size=256)
# CapgMyo's and the synthetic CapgMyo-shaped data: the authors' full recipe.
FULL_RECIPE = dict(filters=(), frame_stride=1, epochs=28, batch_size=1000)

PRESETS = {
    'flexemg': FLEXEMG,
    'capgmyo': FULL_RECIPE,
    'synthetic_hdsemg/capgmyo': FULL_RECIPE,
}


def with_dataset(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """Sets ``config.dataset.name`` and the dataset's preset (if it has one)."""
  config.dataset.name = name
  preset = PRESETS.get(name) or PRESETS.get(name.split('/')[0])
  if preset:
    config.dataset.filters = preset['filters']
    config.train.frame_stride = preset['frame_stride']
    config.train.epochs = preset['epochs']
    config.train.batch_size = preset['batch_size']
  config.protocol.sessions = None
  return config


def protocol_config(protocol: str, dataset: str) -> ml_collections.ConfigDict:
  """The default config, pointed at ``dataset``, running ``protocol``."""
  config = with_dataset(default.get_config(), dataset)
  config.protocol.name = protocol
  return config
