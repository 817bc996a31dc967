"""Preemption and reproducibility: SIGKILLed runs resume to the uninterrupted results."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = 'experiments/configs/tiny.py'
# One seed, two folds of 7 steps each; a checkpoint every 5 steps (5, 10 and the final 14).
ARGS = ('--config.seeds=0', '--config.checkpoint.every_steps=5')


def _main(workdir, data_dir, *args, fault=None):
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu'}
  env.pop('HDSEMG_FAULT', None)
  if fault:
    env['HDSEMG_FAULT'] = fault
  cmd = [sys.executable, '-m', 'experiments.main', f'--config={TINY}',
         f'--config.dataset.data_dir={data_dir}', f'--workdir={workdir}', *ARGS, *args]
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def _rows(workdir):
  lines = (workdir / 'results.jsonl').read_text().splitlines()
  rows = [json.loads(line) for line in lines]
  for r in rows:
    assert r.pop('train_seconds') >= 0
  return rows


@pytest.fixture(scope='module')
def reference(tiny_data_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp('reference') / 'run'
  proc = _main(workdir, tiny_data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir


def test_same_config_twice_gives_identical_rows(reference, tiny_data_dir, tmp_path):
  proc = _main(tmp_path / 'again', tiny_data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert _rows(tmp_path / 'again') == _rows(reference)
  row = _rows(reference)[0]
  assert len(row['provenance']['config_hash']) == 64
  assert row['provenance']['versions']['jax'] and row['provenance']['device_count'] >= 1


def test_killed_runs_resume_to_the_uninterrupted_results(reference, tiny_data_dir, tmp_path):
  workdir = tmp_path / 'run'
  # Killed mid-training, right after the checkpoint of step 10 of the first pair.
  proc = _main(workdir, tiny_data_dir, fault='after_checkpoint:2')
  assert proc.returncode == -9 and 'killed at after_checkpoint' in proc.stderr
  assert not (workdir / 'results.jsonl').exists()
  # Resumed past step 0, then killed while scoring the first pair.
  proc = _main(workdir, tiny_data_dir, fault='during_eval')
  assert proc.returncode == -9, proc.stderr[-3000:]
  assert 'fold S01-s1 seed 0: resumed from checkpoint at step 10' in proc.stderr
  assert not (workdir / 'results.jsonl').exists()
  # Resumed from the final checkpoint, killed after writing the first row.
  proc = _main(workdir, tiny_data_dir, fault='after_row')
  assert proc.returncode == -9, proc.stderr[-3000:]
  assert 'fold S01-s1 seed 0: resumed from checkpoint at step 14' in proc.stderr
  assert len(_rows(workdir)) == 1
  # The finished pair is skipped, the other runs from scratch.
  proc = _main(workdir, tiny_data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'S01-s1, seed 0: already in results.jsonl, skipped' in proc.stderr
  assert 'S02-s1 seed 0: resumed' not in proc.stderr
  assert _rows(workdir) == _rows(reference)
  # Once more: nothing left to do, nothing appended.
  proc = _main(workdir, tiny_data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert _rows(workdir) == _rows(reference)
  assert '| S02-s1 |' in proc.stdout


def test_resuming_with_another_config_is_refused(reference, tiny_data_dir, tmp_path):
  import shutil
  workdir = tmp_path / 'copy'
  shutil.copytree(reference, workdir)
  before = (workdir / 'results.jsonl').read_text()
  proc = _main(workdir, tiny_data_dir, '--config.train.learning_rate=0.05')
  assert proc.returncode != 0
  assert 'differing keys' in proc.stderr and 'train.learning_rate: 0.1 -> 0.05' in proc.stderr
  assert '--allow_config_change' in proc.stderr
  assert (workdir / 'results.jsonl').read_text() == before
  proc = _main(workdir, tiny_data_dir, '--config.train.learning_rate=0.05',
               '--allow_config_change')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'train.learning_rate: 0.1 -> 0.05' in proc.stderr
