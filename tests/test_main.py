"""`python -m experiments.main` end to end on the tiny config, in a subprocess."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = 'experiments/configs/tiny.py'


def _main(*args, data_dir):
  cmd = [sys.executable, '-m', 'experiments.main', f'--config={TINY}',
         f'--config.dataset.data_dir={data_dir}', *args]
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                        env={**os.environ, 'JAX_PLATFORMS': 'cpu'})


def test_tiny_run_writes_config_rows_and_table(tiny_data_dir, tmp_path):
  workdir = tmp_path / 'run'
  proc = _main(f'--workdir={workdir}', '--config.seeds=0,1', data_dir=tiny_data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  config = json.loads((workdir / 'config.json').read_text())
  assert config['dataset']['name'] == 'synthetic_hdsemg/tiny'
  rows = [json.loads(line) for line in (workdir / 'results.jsonl').read_text().splitlines()]
  assert [(r['fold'], r['seed']) for r in rows] == [
      ('S01-s1', 0), ('S01-s1', 1), ('S02-s1', 0), ('S02-s1', 1)]
  for r in rows:
    assert r['schema_version'] == 1 and r['synthetic'] is True
    assert r['dataset'] == 'synthetic_hdsemg/tiny' and r['protocol'] == 'intra_session'
    assert r['model'] == 'all_convnet'
    assert set(r['vote_accuracy']) == {'1', '5', '150'}
    assert 0 <= r['frame_accuracy'] <= 1 and 0 <= r['balanced_accuracy'] <= 1
    assert len(r['confusion_matrix']) == 3
    assert r['num_params'] > 0 and r['train_seconds'] > 0
    assert not set(r['split']['train']) & set(r['split']['test'])
    assert all(t.startswith(f'{r["fold"][2]}-1--') for t in r['split']['train'])
  table = (workdir / 'results.md').read_text()
  assert 'Synthetic data' in table and '| S02-s1 |' in table and 'seed 1' in table
  assert '| S01-s1 |' in proc.stdout


def test_dry_run_prints_folds_and_trials(tiny_data_dir):
  proc = _main('--dry_run', data_dir=tiny_data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'fold S01-s1:' in proc.stdout and 'fold S02-s1:' in proc.stdout
  assert 'train (6): 1-1--1 1-1--3 1-1--5' in proc.stdout


@pytest.mark.parametrize('args, message', [
    (('--config.protocol.folds=S09-s1',), 'protocol.folds'),
    (('--config.model.name=resnet',), 'model.name'),
    (('--config.train.nope=1',), 'nope'),
])
def test_bad_config_is_a_clear_error(tiny_data_dir, tmp_path, args, message):
  workdir = tmp_path / 'run'
  proc = _main(f'--workdir={workdir}', *args, data_dir=tiny_data_dir)
  assert proc.returncode != 0
  assert message in proc.stderr
  assert not (workdir / 'results.jsonl').exists()
