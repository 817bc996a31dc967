"""A saved final model predicts exactly what the evaluation scored."""

import numpy as np

import hdsemg_jax
from experiments.configs import tiny
from hdsemg_jax import protocols
from hdsemg_jax.run import experiment
from hdsemg_jax.data import trials as trials_lib
from hdsemg_jax.evaluation import evaluate, voting


def test_load_model_predicts_like_the_evaluation(tiny_data_dir, tmp_path):
  config = tiny.get_config()
  config.dataset.data_dir = tiny_data_dir
  config.seeds = (1,)
  config.protocol.folds = ('S02-s1',)
  (row,) = experiment.train_and_evaluate(config, str(tmp_path))
  model = hdsemg_jax.load_model(str(tmp_path), 'S02-s1', 1)
  spec, trials = trials_lib.load(config.dataset.name, config.dataset.data_dir)
  assert model.class_names == spec.class_names
  (fold,) = protocols.make_folds(trials, config.protocol)
  test_trials = trials_lib.select(trials, fold.test)
  predictions = evaluate.predict_trials(model.predict, test_trials, 64)
  scores = evaluate.score(predictions, test_trials, spec.num_classes, config.eval.vote_windows)
  assert scores['confusion_matrix'] == row['confusion_matrix']
  assert scores['vote_accuracy'] == row['vote_accuracy']
  frames = test_trials[0].emg[:20]
  np.testing.assert_array_equal(
      model.predict_vote(frames, 5), voting.window_votes(model.predict(frames), 5, 3))
  assert model.predict_vote(frames, 5).shape == (16,)


def test_a_corrupt_saved_model_is_one_error_naming_its_folder(tiny_data_dir, tmp_path, capfd):
  import glob
  import os

  import pytest

  from hdsemg_jax import checkpointing
  config = tiny.get_config()
  config.dataset.data_dir = tiny_data_dir
  config.seeds = (0,)
  config.protocol.folds = ('S01-s1',)
  config.train.epochs = 1
  experiment.train_and_evaluate(config, str(tmp_path))
  weights = os.path.join(str(tmp_path), 'models', 'S01-s1', 'seed_0', 'weights')
  data_files = glob.glob(os.path.join(weights, 'ocdbt.process_0', 'd', '*'))
  assert data_files
  for path in data_files:
    with open(path, 'wb') as f:
      f.write(b'\x00garbage' * 40)
  capfd.readouterr()
  with pytest.raises(checkpointing.CheckpointError) as failed:
    hdsemg_jax.load_model(str(tmp_path), 'S01-s1', 0)
  message = str(failed.value)
  assert message.startswith(f'cannot read checkpoint {weights}: ') and '\n' not in message
  assert 'Delete that folder' in message
  err = capfd.readouterr().err
  assert 'Exception ignored' not in err and 'Traceback' not in err
