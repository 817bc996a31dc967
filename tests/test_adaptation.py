"""Adaptation: fine-tune splits, AdaBN statistics, frozen layers, tiny end-to-end runs."""

import json

import jax
import ml_collections
import numpy as np
import pytest
from flax import nnx

from experiments.configs import tiny
from hdsemg_jax import config as config_lib
from hdsemg_jax import models, protocols
from hdsemg_jax.run import experiment
from hdsemg_jax.data import frames as frames_lib
from hdsemg_jax.data.trials import Trial, number_repetitions
from hdsemg_jax.training import adabn, optimizer, state as state_lib, trainer


def _trial(subject, session, part, trial, labels, emg=None):
  labels = np.asarray(labels, np.int32)
  if emg is None:
    emg = np.zeros((len(labels), 2, 2), np.float32)
  return Trial(subject, session, part, trial, emg, labels)


def _protocol(name):
  return ml_collections.ConfigDict(dict(name=name, sessions=None, subjects=None, folds=None))


@pytest.fixture
def two_sessions():
  # 1 subject x 2 sessions x 2 gestures x 3 repetitions, numbered (gesture-1)*10 + rep.
  return number_repetitions(_trial(1, s, '', g * 10 + r, [g] * 4)
                            for s in (1, 2) for g in (0, 1) for r in (1, 2, 3))


def test_finetune_split_takes_the_first_k_trials_of_each_gesture(two_sessions):
  (fold,) = protocols.make_folds(two_sessions, _protocol('inter_session'))
  one = protocols.split_for_finetune(fold, two_sessions, 1)
  assert one.finetune == ('1-2--1', '1-2--11')
  assert one.test == ('1-2--2', '1-2--3', '1-2--12', '1-2--13')
  assert one.train == fold.train
  two = protocols.split_for_finetune(fold, two_sessions, 2)
  assert two.finetune == ('1-2--1', '1-2--2', '1-2--11', '1-2--12')
  assert two.test == ('1-2--3', '1-2--13')
  for f in (one, two):
    assert not set(f.finetune) & set(f.test) and not set(f.finetune) & set(f.train)
    assert set(f.finetune) | set(f.test) == set(fold.test)
  assert one.describe(two_sessions)['finetune']['sessions'] == [2]
  assert 'finetune' not in fold.describe(two_sessions)
  with pytest.raises(ValueError, match='leaves no test trials'):
    protocols.split_for_finetune(fold, two_sessions, 3)
  with pytest.raises(ValueError, match='finetune_trials'):
    protocols.split_for_finetune(fold, two_sessions, 0)


def test_finetune_split_of_multi_gesture_trials_takes_the_first_trials_overall():
  trials = number_repetitions([
      _trial(1, 1, 'train', 1, [0, 1, 2, -1]),
      *(_trial(1, 2, 'test', t, [-1, 0, 1, 2]) for t in (3, 1, 2))])
  (fold,) = protocols.make_folds(trials, _protocol('inter_session'))
  split = protocols.split_for_finetune(fold, trials, 1)
  assert (split.finetune, split.test) == (('1-2-test-1',), ('1-2-test-2', '1-2-test-3'))


def test_intra_session_pretrain_pretrains_on_every_subject_then_finetunes_on_the_target():
  trials = number_repetitions(_trial(s, 1, '', g * 10 + r, [g] * 4)
                              for s in (1, 2) for g in (0, 1) for r in (1, 2))
  folds = protocols.make_folds(trials, _protocol('intra_session_pretrain'))
  intra = protocols.make_folds(trials, _protocol('intra_session'))
  assert [f.id for f in folds] == [f.id for f in intra] == ['S01-s1', 'S02-s1']
  for f, g in zip(folds, intra):
    assert f.train == ('1-1--1', '1-1--11', '2-1--1', '2-1--11')
    assert (f.finetune, f.test) == (g.train, g.test)
    assert not set(f.train) & set(f.test)


def _tiny_model():
  return models.build('all_convnet', 3, seed=0, **tiny.TINY_MODEL)


def test_adabn_estimates_exact_target_statistics_and_leaves_parameters():
  rng = np.random.default_rng(0)
  trials = []
  for i in range(3):
    labels = np.array([-1, -1, *([i] * 20), -1], np.int32)
    emg = (rng.normal(size=(len(labels), 4, 4)) * (i + 1) + i).astype(np.float32)
    emg[labels < 0] = 1000.0  # Padding frames: counting any of them would show.
    trials.append(_trial(1, 2, '', i, labels, emg))
  graphdef, params, batch_stats = state_lib.split_model(_tiny_model())
  params_before = jax.tree.map(np.array, params)
  frames = frames_lib.target_frames(trials)
  assert frames.shape == (60, 4, 4) and frames.max() < 1000
  adapted = adabn.adabn(graphdef, params, batch_stats, frames, batch_size=16)
  np.testing.assert_allclose(adapted['input_norm']['mean'][...], [frames.mean()], rtol=1e-5)
  np.testing.assert_allclose(adapted['input_norm']['var'][...], [frames.var()], rtol=1e-4)
  jax.tree.map(np.testing.assert_array_equal, params_before, jax.tree.map(np.array, params))
  # A deeper layer: the statistics of its inputs with the input layer adapted.
  model = nnx.merge(graphdef, params, adapted)
  model.eval()
  h = np.asarray(model.convs[0](model.input_norm(frames[..., None])))
  np.testing.assert_allclose(adapted['norms'][0]['mean'][...], h.mean((0, 1, 2)), atol=1e-5)
  np.testing.assert_allclose(adapted['norms'][0]['var'][...], h.var((0, 1, 2)), rtol=1e-3,
                             atol=1e-6)


def test_finetuning_only_the_head_leaves_other_parameters():
  rng = np.random.default_rng(0)
  frames = rng.normal(size=(16, 4, 4)).astype(np.float32)
  labels = rng.integers(0, 3, 16).astype(np.int32)
  model = _tiny_model()
  before = jax.tree.map(np.array, nnx.state(model, nnx.Param))
  cfg = trainer.TrainSettings(epochs=1, batch_size=8, learning_rate=0.1, momentum=0.9,
                                       weight_decay=1e-4, lr_boundaries=())
  names = optimizer.check_trainable(before, ('head',))
  _, state = trainer.fit(model, frames, labels, cfg, 0, trainable=names)
  after = jax.tree.map(np.array, state.params)
  assert not np.array_equal(before['head']['kernel'][...], after['head']['kernel'][...])
  np.testing.assert_array_equal(before['convs'][0]['kernel'][...],
                                after['convs'][0]['kernel'][...])
  with pytest.raises(ValueError, match='adapt.finetune_layers'):
    optimizer.check_trainable(before, ('nope',))


def _config(tiny_data_dir, method, **adapt):
  config = tiny.get_config()
  config.dataset.data_dir = tiny_data_dir
  config.protocol.name = 'inter_session'
  config.protocol.sessions = None
  config.protocol.subjects = (1,)
  config.train.epochs = 1
  config.seeds = (0,)
  config.adapt.method = method
  config.adapt.finetune_epochs = 1
  config.adapt.update(adapt)
  return config


@pytest.mark.parametrize('method', ['none', 'adabn', 'finetune'])
def test_inter_session_runs_with_each_adapt_method(tiny_data_dir, tmp_path, method):
  config = _config(tiny_data_dir, method, score_on_finetune_split=True)
  (row,) = experiment.train_and_evaluate(config, str(tmp_path))
  assert row['adapt_method'] == method and row['fold'] == 'S01-s1>s2'
  # Every method is scored on the same trials: the 3 target gestures' repetitions 2-4.
  assert len(row['split']['finetune']) == 3 and len(row['split']['test']) == 9
  assert not set(row['split']['finetune']) & set(row['split']['test'])
  assert (row['num_finetune_frames'] > 0) == (method == 'finetune')
  curves = [json.loads(line) for line in (tmp_path / 'curves.jsonl').read_text().splitlines()]
  phases = ['pretrain', 'finetune'] if method == 'finetune' else ['train']
  assert [c['phase'] for c in curves] == phases
  assert {(c['fold'], c['seed'], c['epoch']) for c in curves} == {('S01-s1>s2', 0, 1)}
  assert list((tmp_path / 'tensorboard' / 'S01-s1>s2' / 'seed_0').glob('events.out.*'))


def test_adapt_method_is_refused_for_intra_session(tiny_data_dir, tmp_path):
  config = _config(tiny_data_dir, 'adabn')
  config.protocol.name = 'intra_session'
  with pytest.raises(ValueError, match='adapt.method'):
    experiment.train_and_evaluate(config, str(tmp_path))


def test_intra_session_pretrain_end_to_end(tiny_data_dir, tmp_path):
  config = _config(tiny_data_dir, 'none')
  config.protocol.name = 'intra_session_pretrain'
  config.protocol.sessions = (1,)
  config.protocol.subjects = (1, 2)
  rows = experiment.train_and_evaluate(config, str(tmp_path))
  assert [r['fold'] for r in rows] == ['S01-s1', 'S02-s1']
  for r in rows:
    assert {t.split('-')[0] for t in r['split']['train']} == {'1', '2'}
    assert set(r['split']['finetune']) < set(r['split']['train'])
    assert not set(r['split']['test']) & set(r['split']['train'])
  curves = [json.loads(line) for line in (tmp_path / 'curves.jsonl').read_text().splitlines()]
  # The second fold restores the shared pre-training instead of running it again.
  assert [(c['fold'], c['phase']) for c in curves] == [
      ('S01-s1', 'pretrain'), ('S01-s1', 'finetune'), ('S02-s1', 'finetune')]


def test_workdirs_from_before_the_adapt_keys_still_resume():
  stored = {'seeds': [0]}  # A config.json written before most keys existed.
  now = config_lib.default_config()
  now.parallel, now.num_cpu_devices = 'none', '1'  # What such runs resolved to.
  now.model.selection.inner_folds, now.model.selection.inner_unit = 0, 'trial'  # Fixed models.
  assert config_lib.differences(stored, now.to_dict()) == []
  now.adapt.method = 'adabn'
  assert config_lib.differences(stored, now.to_dict()) == ['adapt.method: "none" -> "adabn"']


def test_adabn_takes_the_models_own_norm_order_and_refuses_a_model_without_it():
  model = _tiny_model()
  assert adabn.norms_in_call_order(model) == [model.input_norm, *model.norms]
  geng = models.build('geng_convnet', 3, seed=0, grid_shape=(4, 4), conv_features=(2,),
                      local_features=(2,), dense_features=(4,), dropout_layers=0)
  assert adabn.norms_in_call_order(geng)[0] is geng.input_norm
  assert adabn.norms_in_call_order(geng)[-1] is geng.dense_norms[-1]

  class Plain(nnx.Module):
    def __init__(self):
      self.norm = nnx.BatchNorm(1, rngs=nnx.Rngs(0))

  with pytest.raises(ValueError, match='norms_in_call_order'):
    adabn.norms_in_call_order(Plain())


@pytest.mark.slow
@pytest.mark.parametrize('method', ['adabn', 'finetune'])
def test_leave_one_subject_out_adapts_to_the_held_out_subject(tiny_data_dir, tmp_path, method):
  config = _config(tiny_data_dir, method, score_on_finetune_split=True)
  config.protocol.name = 'leave_one_subject_out'
  config.protocol.subjects = (1, 2)
  config.protocol.sessions = (1,)
  config.protocol.folds = ('S01',)
  (row,) = experiment.train_and_evaluate(config, str(tmp_path))
  assert row['adapt_method'] == method and row['fold'] == 'S01'
  # Fine-tune (or held-back) trials: the first of each of the held-out subject's gestures.
  assert {t.split('-')[0] for t in row['split']['finetune']} == {'1'}
  assert {t.split('-')[0] for t in row['split']['train']} == {'2'}
  assert len(row['split']['finetune']) == 3
  assert (row['num_finetune_frames'] > 0) == (method == 'finetune')
