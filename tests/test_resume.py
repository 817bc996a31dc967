"""Preemption and reproducibility: SIGKILLed runs resume to the uninterrupted results."""

import pytest

from tests.cli_helpers import read_rows

pytestmark = pytest.mark.slow

# One seed, two folds of 7 steps each; a checkpoint every 5 steps (5, 10 and the final 14).
ARGS = ('--config.seeds=0', '--config.checkpoint.every_steps=5')


@pytest.fixture(scope='module')
def main(run_main):
  def run(workdir, *args, fault=None):
    return run_main(*ARGS, *args, workdir=workdir, fault=fault)
  return run


@pytest.fixture(scope='module')
def reference(main, tmp_path_factory):
  workdir = tmp_path_factory.mktemp('reference') / 'run'
  proc = main(workdir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir


def test_same_config_twice_gives_identical_rows(reference, main, tmp_path):
  proc = main(tmp_path / 'again')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert read_rows(tmp_path / 'again') == read_rows(reference)
  row = read_rows(reference)[0]
  assert len(row['provenance']['config_hash']) == 64
  assert row['provenance']['versions']['jax'] and row['provenance']['device_count'] >= 1


def test_killed_runs_resume_to_the_uninterrupted_results(reference, main, tmp_path):
  workdir = tmp_path / 'run'
  # Killed mid-training, right after the checkpoint of step 10 of the first pair.
  proc = main(workdir, fault='after_checkpoint:2')
  assert proc.returncode == -9 and 'fault_main: killed at after_checkpoint' in proc.stderr
  assert not (workdir / 'results.jsonl').exists()
  # Resumed past step 0, then killed while scoring the first pair.
  proc = main(workdir, fault='during_eval')
  assert proc.returncode == -9, proc.stderr[-3000:]
  assert 'fold S01-s1 seed 0: resumed from checkpoint at step 10' in proc.stderr
  assert not (workdir / 'results.jsonl').exists()
  # Resumed from the final checkpoint, killed after writing the first row.
  proc = main(workdir, fault='after_row')
  assert proc.returncode == -9, proc.stderr[-3000:]
  assert 'fold S01-s1 seed 0: resumed from checkpoint at step 14' in proc.stderr
  assert len(read_rows(workdir)) == 1
  # The finished pair is skipped, the other runs from scratch.
  proc = main(workdir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'S01-s1, seed 0: already in results.jsonl, skipped' in proc.stderr
  assert 'S02-s1 seed 0: resumed' not in proc.stderr
  assert read_rows(workdir) == read_rows(reference)
  # Once more: nothing left to do, nothing appended.
  proc = main(workdir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert read_rows(workdir) == read_rows(reference)
  assert '| S02-s1 |' in proc.stdout


def test_resuming_with_another_config_is_refused(reference, main, tmp_path):
  import shutil
  workdir = tmp_path / 'copy'
  shutil.copytree(reference, workdir)
  before = (workdir / 'results.jsonl').read_text()
  proc = main(workdir, '--config.train.learning_rate=0.05')
  assert proc.returncode != 0
  assert 'differing keys' in proc.stderr and 'train.learning_rate: 0.1 -> 0.05' in proc.stderr
  assert '--allow_config_change' in proc.stderr
  assert (workdir / 'results.jsonl').read_text() == before
  proc = main(workdir, '--config.train.learning_rate=0.05',
               '--allow_config_change')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'train.learning_rate: 0.1 -> 0.05' in proc.stderr
