"""The config resolved once: filters through the data loading, augmentation and adaptation."""

import numpy as np
import pytest

from experiments.configs import tiny
from hdsemg_jax.run import setup as run_setup
from hdsemg_jax.data import trials as trials_lib
from hdsemg_jax.preprocessing import filters


def test_dataset_filters_condition_every_trial_on_synthetic_data(tiny_data_dir):
  config = tiny.get_config()
  config.dataset.data_dir = tiny_data_dir
  config.dataset.filters = ('highpass:20', 'demean')
  setup = run_setup.resolve(config)
  spec, conditioned = setup.spec, setup.trials
  _, raw = trials_lib.load(config.dataset.name, data_dir=tiny_data_dir)
  assert setup.conditioning == filters.Conditioning(('highpass:20', 'demean'), 'zero_phase',
                                                    spec.sampling_rate_hz)
  expected = filters.apply_filters(raw, config.dataset.filters, spec.sampling_rate_hz)
  assert [t.id for t in conditioned] == [t.id for t in raw]
  for got, want, original in zip(conditioned, expected, raw):
    np.testing.assert_array_equal(got.emg, want.emg)
    np.testing.assert_array_equal(got.label, original.label)
  # The filters did something: each channel of the conditioned trials has zero mean.
  assert not np.allclose(raw[0].emg, conditioned[0].emg)
  assert np.abs(conditioned[0].emg.mean(axis=0)).max() < 1e-3 * np.abs(raw[0].emg).max()


def test_resolve_checks_once_and_passes_resolved_pieces(tiny_data_dir):
  config = tiny.get_config()
  config.dataset.data_dir = tiny_data_dir
  config.train.augment.max_shift = (1, 2)
  setup = run_setup.resolve(config)
  assert setup.config.parallel == 'none' and setup.config.num_cpu_devices == '1'
  assert config.parallel == 'auto'  # The caller's config is not changed.
  assert setup.settings.augment.enabled and setup.settings.augment.max_shift == (1, 2)
  assert setup.settings.adapt.method == 'none' and [f.id for f in setup.folds] == ['S01-s1', 'S02-s1']
  config.train.augment.max_shift = (0, 9)  # More columns than the 8-column grid allows.
  with pytest.raises(ValueError, match='train.augment.max_shift'):
    run_setup.resolve(config)
