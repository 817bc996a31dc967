"""`python -m experiments.main` end to end on the tiny config, in a subprocess."""

import json

import pytest

from tests.cli_helpers import read_rows

pytestmark = pytest.mark.slow


def test_tiny_run_writes_config_rows_and_table(run_main, tmp_path):
  workdir = tmp_path / 'run'
  proc = run_main('--config.seeds=0,1', workdir=workdir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  config = json.loads((workdir / 'config.json').read_text())
  assert config['dataset']['name'] == 'synthetic_hdsemg/tiny'
  rows = read_rows(workdir, drop=())
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
    assert len(r['split_id']) == 12
  # Seeds never change a split: one split id per fold.
  assert len({(r['fold'], r['split_id']) for r in rows}) == 2
  table = (workdir / 'results.md').read_text()
  assert 'Synthetic data' in table and '| S02-s1 |' in table and 'seed 1' in table
  assert '| S01-s1 |' in proc.stdout
  # The run as one JSON document (the schema of a benchmark's comparison.json).
  from hdsemg_jax.reporting import document
  doc = json.loads((workdir / 'results.json').read_text())
  document.validate(doc)
  cell = next(c for c in doc['cells'] if c['fold'] == 'S02-s1')
  assert cell['seeds'] == [0, 1] and cell['decision_accuracy']['5'] == [
      r['vote_accuracy']['5'] for r in rows if r['fold'] == 'S02-s1']
  # Progress a person can read, without the libraries' INFO lines (Orbax logs per save).
  assert 'fold S01-s1 seed 0 epoch 1/2' in proc.stderr
  assert 'orbax' not in proc.stderr.lower()


def test_dry_run_prints_folds_and_trials(run_main):
  proc = run_main('--dry_run')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'fold S01-s1:' in proc.stdout and 'fold S02-s1:' in proc.stdout
  assert 'train (6): 1-1--1 1-1--3 1-1--5' in proc.stdout


def test_dry_run_shows_fine_tune_trials_apart_and_checks_adaptation(run_main):
  proc = run_main('--dry_run', '--config.protocol.name=inter_session',
                  '--config.protocol.sessions=None', '--config.protocol.subjects=1',
                  '--config.adapt.method=finetune')
  assert proc.returncode == 0, proc.stderr[-3000:]
  # The first repetition of each of the 3 target gestures fine-tunes and is never tested.
  assert 'finetune (3): 1-2--1 1-2--5 1-2--9' in proc.stdout, proc.stdout
  test_line = next(line for line in proc.stdout.splitlines() if 'test  (' in line)
  assert test_line.startswith('  test  (9):')
  assert not {'1-2--1', '1-2--5', '1-2--9'} & set(test_line.split(':')[1].split())
  proc = run_main('--dry_run', '--config.adapt.method=adabn')  # intra_session: refused.
  assert proc.returncode != 0 and 'adapt.method' in proc.stderr


def test_comma_lists_work_for_every_tuple_key(run_main):
  proc = run_main('--dry_run', '--config.protocol.folds=S02-s1,S01-s1')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.index('fold S02-s1:') < proc.stdout.index('fold S01-s1:')


@pytest.mark.parametrize('args, message', [
    (('--config.protocol.folds=S09-s1',), 'protocol.folds'),
    (('--config.model.name=resnet',), 'model.name'),
    (('--config.train.epoch=3',), "unknown config key 'epoch' in --config.train.epoch=3: "
                                  'Did you mean "epochs" instead of "epoch"?'),
])
def test_bad_config_is_a_clear_error(run_main, tmp_path, args, message):
  workdir = tmp_path / 'run'
  proc = run_main(*args, workdir=workdir)
  assert proc.returncode != 0
  assert message in proc.stderr and 'Traceback' not in proc.stderr
  assert not (workdir / 'results.jsonl').exists()
