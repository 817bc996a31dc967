"""One exit style for every command (experiments/cli.py), tested in-process."""

from __future__ import annotations

import errno

import pytest

from experiments import cli
from hdsemg_jax.config import ConfigError
from hdsemg_jax.deployment import artifacts
from hdsemg_jax.run.lock import WorkdirLocked
from hdsemg_jax.training.trainer import TrainingDiverged
from tfds_builders.prepare import DatasetError


def _exit_of(error: BaseException, capsys) -> tuple[int, list[str]]:
  def main(argv):
    raise error
  with pytest.raises(SystemExit) as stopped:
    cli.guarded(main)(['prog'])
  return stopped.value.code, capsys.readouterr().err.splitlines()


@pytest.mark.parametrize('error, code, line', [
    (ConfigError('train.epochs=0: expected a whole number >= 1.'), 2,
     'error: train.epochs=0: expected a whole number >= 1.'),
    (cli.UsageError('--workdir is required.'), 2, 'error: --workdir is required.'),
    (DatasetError('no data folder at /x.'), 2, 'error: no data folder at /x.'),
    (WorkdirLocked('/w', 123, 'host'), 2, 'error: workdir /w is in use by process 123'),
    (TrainingDiverged('fold F seed 0: training diverged: seed 0, epoch 1, step 3: the loss is '
                      'nan'), 1, 'error: fold F seed 0: training diverged'),
    (OSError(errno.ENOSPC, 'No space left on device', '/runs/a/results.jsonl'), 1,
     'error: /runs/a/results.jsonl: No space left on device'),
])
def test_each_kind_of_error_is_one_line_with_its_exit_code(capsys, error, code, line):
  got, lines = _exit_of(error, capsys)
  assert got == code
  assert len(lines) == 1 and lines[0].startswith(line), lines


def test_a_bug_keeps_its_traceback():
  def main(argv):
    raise KeyError('a bug')
  with pytest.raises(KeyError):
    cli.guarded(main)(['prog'])


def test_missing_export_extras_name_the_requirements_file():
  with pytest.raises(ImportError, match=r'pip install -r requirements-export.txt'):
    artifacts.import_extra('hdsemg_jax_no_such_extra')
  assert artifacts.import_extra('json').dumps([]) == '[]'
