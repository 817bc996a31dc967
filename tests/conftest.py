"""Shared fixtures: a prepared tiny synthetic dataset, the compilation cache."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault('HDSEMG_JAX_CACHE_DIR', os.path.join(
    os.path.expanduser('~'), '.cache', 'hdsemg_jax', 'xla-tests'))

from hdsemg_jax import runtime  # noqa: E402  (after the env var above)

runtime.enable_compilation_cache()

TINY = 'synthetic_hdsemg/tiny'


@pytest.fixture(scope='session')
def tiny_data_dir(tmp_path_factory) -> str:
  """A TFDS data_dir holding the prepared tiny synthetic dataset."""
  from tfds_builders import prepare
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  prepare.prepare(TINY, data_dir=data_dir)
  return data_dir


@pytest.fixture(scope='session')
def tiny_trials(tiny_data_dir):
  from hdsemg_jax.data import trials
  return trials.load(TINY, data_dir=tiny_data_dir)
