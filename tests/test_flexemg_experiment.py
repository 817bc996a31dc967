"""A short flexemg intra-session experiment on one subject, end to end on the real recordings."""

import json

import pytest

from experiments.configs import intra_session, tiny
from hdsemg_jax.run import experiment


@pytest.mark.real_data
def test_flexemg_intra_session_one_subject(flexemg_data_dir, flexemg_manual_dir, tmp_path):
  config = intra_session.get_config('flexemg')
  config.dataset.data_dir = flexemg_data_dir
  config.dataset.manual_dir = flexemg_manual_dir
  config.protocol.subjects = (1,)
  config.protocol.folds = ('S01-s1',)
  config.model.update(tiny.TINY_MODEL)
  config.train.frame_stride = 16
  config.train.epochs = 4
  config.train.batch_size = 128
  (row,) = experiment.train_and_evaluate(config, str(tmp_path))
  assert row['dataset'] == 'flexemg' and row['synthetic'] is False and row['fold'] == 'S01-s1'
  assert row['split']['train'] == [f'1-1-train-{i}' for i in range(1, 5)]
  assert row['split']['test'] == [f'1-1-test-{i}' for i in range(1, 5)]
  assert len(row['confusion_matrix']) == 5
  # Every usable frame of the 4 test trials is scored (4 x 5 segments x 3000 frames).
  assert sum(map(sum, row['confusion_matrix'])) == 4 * 5 * 3000
  assert row['vote_accuracy']['150'] > 0.4  # Far above chance (20%) even after a short run.
  assert json.loads((tmp_path / 'results.jsonl').read_text())['fold'] == 'S01-s1'
  assert 'Synthetic' not in (tmp_path / 'results.md').read_text()
