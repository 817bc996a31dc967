"""Bad inputs are clear errors that name what is wrong, with nothing half-written."""

import json
import os

import jax
import numpy as np
import pytest

from experiments.configs import default, tiny
from hdsemg_jax import checkpointing, models, provenance, workdir
from hdsemg_jax.run import experiment
from hdsemg_jax import config as config_lib
from hdsemg_jax.data.trials import DatasetError
from hdsemg_jax.training import optimizer, state as state_lib


def _state(seed=0):
  model = models.build('all_convnet', 3, seed=seed, features=(8,), kernel_sizes=(3,),
                       strides=(1,))
  tx = optimizer.sgd_recipe(learning_rate=0.1, momentum=0.9, weight_decay=1e-4,
                            lr_boundaries=(0.5,), total_steps=10)
  return state_lib.create(model, tx, seed)[1]


def test_checkpoint_round_trip_and_corrupt_checkpoint(tmp_path):
  state = _state().replace(step=jax.numpy.asarray(3, jax.numpy.int32))
  ckpts = checkpointing.TrainCheckpoints(str(tmp_path / 'ck'))
  ckpts.save(state)
  restored = ckpts.restore(_state(seed=5))
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored)):
    if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
      a, b = jax.random.key_data(a), jax.random.key_data(b)
    np.testing.assert_array_equal(a, b)
  for folder, _, files in os.walk(tmp_path / 'ck' / '3'):
    for name in files:
      with open(os.path.join(folder, name), 'wb') as f:
        f.write(b'garbage')
  with pytest.raises(checkpointing.CheckpointError, match='cannot read checkpoint .*ck/3'):
    checkpointing.TrainCheckpoints(str(tmp_path / 'ck')).restore(_state())


def test_unwritable_workdir(tmp_path):
  (tmp_path / 'file').write_text('')
  config = tiny.get_config()
  with pytest.raises(ValueError, match='workdir .*file/run cannot be written: .*is not a folder'):
    experiment.train_and_evaluate(config, str(tmp_path / 'file' / 'run'))


@pytest.mark.parametrize('name, what', [
    ('flexemg', 'git clone https://github.com/a-moin/flexemg'),
    ('capgmyo/dba', 'dba-preprocessed-001.zip'),
])
def test_missing_manual_dir_says_what_to_download(name, what, tmp_path):
  config = tiny.get_config()
  config.dataset.name = name
  config.dataset.data_dir = str(tmp_path / 'tfds')
  config.dataset.manual_dir = str(tmp_path / 'absent')
  with pytest.raises(DatasetError, match=f'(?s)absent.*{what}'):
    experiment.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def test_config_differences_name_each_key(tmp_path):
  stored = default.get_config().to_dict()
  new = default.get_config()
  new.train.epochs = 7
  (tmp_path / 'config.json').write_text(json.dumps(stored))
  with pytest.raises(ValueError, match='(?s)differing keys:.*train.epochs: 6 -> 7'):
    workdir.check_config(str(tmp_path), new.to_dict(), allow_config_change=False)
  workdir.check_config(str(tmp_path), new.to_dict(), allow_config_change=True)
  assert json.loads((tmp_path / 'config.json').read_text())['train']['epochs'] == 7
  assert provenance.config_hash(stored) != provenance.config_hash(new.to_dict())


def test_wrong_type_is_named():
  config = tiny.get_config()
  config.unlock()
  config.train.lr_boundaries = ('x',)
  with pytest.raises(ValueError, match=r"config.train.lr_boundaries=\('x',\) has the wrong type"):
    config_lib.check(config)
  config_lib.check(tiny.get_config())


def test_torn_last_row_is_dropped_and_duplicates_refused(tmp_path):
  (tmp_path / 'results.jsonl').write_text('{"fold": "a", "seed": 0}\n{"fold": "b"')
  assert list(workdir.finished_rows(str(tmp_path))) == [('a', 0)]
  (tmp_path / 'results.jsonl').write_text('{"fold": "a", "seed": 0}\n' * 2)
  with pytest.raises(ValueError, match='two rows for fold a seed 0'):
    workdir.finished_rows(str(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize('arg, message', [
    ('--config.train.epochs=abc', 'error: flag --config.train.epochs=abc: invalid literal'),
    ('--config.checkpoint.every_steps=x', 'error: flag --config.checkpoint.every_steps=x'),
])
def test_bad_flag_is_one_clean_line(arg, message, tmp_path, run_main):
  proc = run_main(arg, workdir=tmp_path / 'run', timeout=120)
  assert proc.returncode == 2 and message in proc.stderr
  assert 'Traceback' not in proc.stderr and not (tmp_path / 'run').exists()
