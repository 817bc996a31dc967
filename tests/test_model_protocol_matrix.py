"""Every model x protocol trains (or fits) and scores end to end on tiny synthetic data.

Each run is checked for what its protocol means: the folds it makes, who trains and
who tests, whether a fine-tune phase ran, and that the row describes the model
that was built (its parameter count) and how it decides.
"""

import pytest

from experiments.configs import tiny
from hdsemg_jax import models
from hdsemg_jax.run import experiment

pytestmark = pytest.mark.slow

# Narrow variants: the point is every code path, not what it scores.
NETWORKS = {
    'all_convnet': tiny.TINY_MODEL,
    'geng_convnet': dict(conv_features=(4, 4), local_features=(4, 4), dense_features=(16, 16, 8)),
}
CLASSICAL = ('lda', 'chance')
# protocol -> (subjects, sessions, expected folds).
PROTOCOLS = {
    'intra_session': ((1,), (1,), ['S01-s1']),
    'intra_session_pretrain': ((1, 2), (1,), ['S01-s1', 'S02-s1']),
    'inter_session': ((1,), None, ['S01-s1>s2']),
    'leave_one_subject_out': ((1, 2), (1,), ['S01', 'S02']),
}


def _subjects(ids):
  return {int(t.split('-')[0]) for t in ids}


def _sessions(ids):
  return {int(t.split('-')[1]) for t in ids}


def _check_split(protocol, row):
  train, test = row['split']['train'], row['split']['test']
  assert not set(train) & set(test)
  if protocol in ('intra_session', 'intra_session_pretrain'):
    target = int(row['fold'][1:3])
    assert _subjects(test) == {target} and _sessions(test) == {1}
    if protocol == 'intra_session':
      assert _subjects(train) == {target}
    else:  # Pre-trained on every subject of the pool, fine-tuned on the target's own.
      assert _subjects(train) == {1, 2}
      assert _subjects(row['split']['finetune']) == {target}
  elif protocol == 'inter_session':
    assert _sessions(train) == {1} and _sessions(test) == {2}
  else:
    held_out = int(row['fold'][1:])
    assert _subjects(test) == {held_out} and held_out not in _subjects(train)


# Pre-training is a network recipe: classical models refuse it (tested below).
CASES = [(m, p) for m in [*sorted(NETWORKS), *CLASSICAL] for p in sorted(PROTOCOLS)
         if not (m in CLASSICAL and p == 'intra_session_pretrain')]


@pytest.mark.parametrize('model, protocol', CASES)
def test_model_trains_and_scores_under_protocol(tiny_data_dir, tmp_path, model, protocol):
  config = tiny.get_config()
  config.dataset.data_dir = tiny_data_dir
  config.model.name = model
  config.model.update(NETWORKS.get(model, {}))
  subjects, sessions, folds = PROTOCOLS[protocol]
  config.protocol.name = protocol
  config.protocol.subjects, config.protocol.sessions = subjects, sessions
  config.train.epochs = 1
  config.adapt.finetune_epochs = 1
  config.seeds = (0, 1)
  rows = experiment.train_and_evaluate(config, str(tmp_path))
  classical = model in CLASSICAL
  # Seeds do not change a classical model: one row per fold, marked so.
  assert [r['fold'] for r in rows] == ([f for f in folds] if classical else
                                       [f for f in folds for _ in (0, 1)])
  for r in rows:
    assert (r['model'], r['protocol']) == (model, protocol)
    assert r['seed_independent'] is classical
    assert r['decision_rule'] == ('window' if classical else 'vote')
    _check_split(protocol, r)
    assert (r['num_finetune_frames'] > 0) == (protocol == 'intra_session_pretrain')
    assert set(r['decision_accuracy']) == {'1', '5', '150'}
    # Costs: memory peaks of the process (the CPU reports no device memory) and sizes.
    assert r['peak_host_memory_bytes'] > 50 * 2**20 and r['peak_device_memory_bytes'] is None
    if classical:
      assert r['num_total_params'] == r['num_params']
      assert r['decision_accuracy']['1'] == r['frame_accuracy']
    else:
      assert r['decision_accuracy'] == r['vote_accuracy']
      built = models.build_from_config(config.model, 3, (16, 8), seed=0)
      assert r['num_params'] == models.num_params(built)
      assert r['num_total_params'] == models.num_values(built) > r['num_params']
      assert r['flops_per_frame'] > 0
  # The seeds of a network differ: they start from different initialisations.
  if not classical:
    first = [r for r in rows if r['fold'] == folds[0]]
    assert first[0]['seed'] == 0 and first[1]['seed'] == 1


def test_classical_models_refuse_what_only_networks_do(tiny_data_dir, tmp_path):
  config = tiny.get_config()
  config.dataset.data_dir = tiny_data_dir
  config.model.name = 'lda'
  config.protocol.name = 'intra_session_pretrain'
  with pytest.raises(ValueError, match='pre-trains a network'):
    experiment.train_and_evaluate(config, str(tmp_path / 'a'))
  config.protocol.name = 'inter_session'
  config.protocol.sessions = None
  config.adapt.method = 'adabn'
  with pytest.raises(ValueError, match="adapt.method='adabn' does not apply"):
    experiment.train_and_evaluate(config, str(tmp_path / 'b'))
