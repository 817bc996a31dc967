"""The project is installed (README's commands use `pip install -e .`): it imports anywhere."""

import os
import subprocess
import sys

import pytest

from tests.cli_helpers import ROOT, cli_env


@pytest.mark.slow
def test_the_package_imports_outside_the_repository(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-c', 'import hdsemg_jax, hdsemg_jax.run.experiment, experiments.cli, '
       'tfds_builders.prepare; print(hdsemg_jax.__file__)'],
      cwd=tmp_path, capture_output=True, text=True, timeout=300,
      env={k: v for k, v in cli_env().items() if k != 'PYTHONPATH'})
  assert proc.returncode == 0, (
      f'{proc.stderr[-2000:]}\nInstall the project as README does (pip install -e .).')
  assert os.path.dirname(os.path.dirname(proc.stdout.strip())) == ROOT
