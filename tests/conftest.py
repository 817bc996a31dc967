"""Shared fixtures: a prepared tiny synthetic dataset, the compilation cache, the CLI runner.

Tiers: ``python -m pytest tests -m "not slow"`` is the fast in-process tier for
development; README's test command runs everything, the ``slow`` tests
(subprocesses, real data, many end-to-end runs) included.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest

os.environ.setdefault('HDSEMG_JAX_CACHE_DIR', os.path.join(
    os.path.expanduser('~'), '.cache', 'hdsemg_jax', 'xla-tests'))

from hdsemg_jax import process_setup  # noqa: E402  (after the env var above)

process_setup.enable_compilation_cache()

import jax  # noqa: E402

# In-process programs are tiny: compile them fast rather than well (as flax's examples' tests).
jax.config.update('jax_disable_most_optimizations', True)

from tests.cli_helpers import ROOT, TINY_CONFIG, cli_env, main_command  # noqa: E402

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


def pytest_collection_modifyitems(items):
  # The real recordings take minutes to prepare: their tests belong to the full suite only.
  for item in items:
    if item.get_closest_marker('real_data'):
      item.add_marker(pytest.mark.slow)


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


@pytest.fixture(scope='session')
def run_main(tiny_data_dir):
  """Runs ``experiments.main`` in a subprocess on the tiny dataset; returns the process.

  ``run_main(*args, workdir=None, fault=None, config=TINY_CONFIG, timeout=600)``;
  ``fault='POINT[:N]'`` plants a SIGKILL (`tests/fault_main.py`).
  """
  def run(*args: str, workdir: Any = None, fault: str | None = None, config: str = TINY_CONFIG,
          timeout: int = 600, data_dir: str | None = tiny_data_dir,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    extra = [f'--config.dataset.data_dir={data_dir}'] if data_dir else []
    if workdir is not None:
      extra.append(f'--workdir={workdir}')
    return subprocess.run(main_command(*extra, *args, config=config, fault=fault), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env=env or cli_env())
  return run


@pytest.fixture(scope='session')
def serial_suite(tiny_data_dir, tmp_path_factory):
  """The tiny scale-out suite run serially (tests/scaleout_helpers.py): its workdir."""
  from tests import scaleout_helpers
  workdir = tmp_path_factory.mktemp('serial_suite')
  scaleout_helpers.run_serial_suite(tiny_data_dir, workdir)
  return workdir


@pytest.fixture(scope='session')
def one_process_rows(tiny_data_dir, tmp_path_factory):
  """The tiny run on one process of 4 CPU devices: its rows by (fold, seed)."""
  from tests import scaleout_helpers
  return scaleout_helpers.run_one_process(tiny_data_dir, tmp_path_factory.mktemp('one_process'))
