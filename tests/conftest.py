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


FLEXEMG_DIR = os.environ.get('HDSEMG_FLEXEMG_DIR') or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    'shared', 'data', 'flexemg')


@pytest.fixture(scope='session')
def flexemg_manual_dir() -> str:
  """The real flexemg release; skipped visibly when absent, a failure under CI."""
  if not os.path.isdir(os.path.join(FLEXEMG_DIR, 'data')):
    reason = (f'REAL DATA MISSING: flexemg data not found at {FLEXEMG_DIR} '
              '(set HDSEMG_FLEXEMG_DIR to the release root)')
    if os.environ.get('HDSEMG_REQUIRE_REAL_DATA') == '1':
      pytest.fail(reason)
    pytest.skip(reason)
  return FLEXEMG_DIR


@pytest.fixture(scope='session')
def flexemg_data_dir(flexemg_manual_dir, tmp_path_factory):
  """A TFDS data_dir with the real flexemg recordings prepared (once per test session)."""
  import shutil
  from tfds_builders import prepare
  data_dir = tmp_path_factory.mktemp('flexemg_real')
  prepare.prepare('flexemg', data_dir=str(data_dir), manual_dir=flexemg_manual_dir)
  yield str(data_dir)
  shutil.rmtree(data_dir, ignore_errors=True)  # ~150 MB; pytest would keep it otherwise.
