"""Every model x protocol trains and scores end to end on tiny synthetic data."""

import math

import pytest

from experiments.configs import tiny
from hdsemg_jax import experiment

# Narrow variants: the point is that every code path runs, not what it scores.
MODELS = {
    'all_convnet': tiny.TINY_MODEL,
    'geng_convnet': dict(conv_features=(4, 4), local_features=(4, 4), dense_features=(16, 16, 8)),
}
# (protocol, subjects, sessions) giving each protocol at least one fold on synthetic_hdsemg/tiny.
PROTOCOLS = {
    'intra_session': ((1,), (1,)),
    'intra_session_pretrain': ((1, 2), (1,)),
    'inter_session': ((1,), None),
    'leave_one_subject_out': ((1, 2), (1,)),
}


@pytest.mark.parametrize('protocol', sorted(PROTOCOLS))
@pytest.mark.parametrize('model', sorted(MODELS))
def test_model_trains_and_scores_under_protocol(tiny_data_dir, tmp_path, model, protocol):
  config = tiny.get_config()
  config.dataset.data_dir = tiny_data_dir
  config.model.name = model
  config.model.update(MODELS[model])
  config.protocol.name = protocol
  config.protocol.subjects, config.protocol.sessions = PROTOCOLS[protocol]
  config.train.epochs = 1
  config.adapt.finetune_epochs = 1
  config.seeds = (0,)
  rows = experiment.train_and_evaluate(config, str(tmp_path))
  assert rows and all(r['model'] == model and r['protocol'] == protocol for r in rows)
  for r in rows:
    assert 0.0 <= r['frame_accuracy'] <= 1.0 and math.isfinite(r['frame_accuracy'])
    assert not set(r['split']['train']) & set(r['split']['test'])
  assert (tmp_path / 'results.jsonl').exists()
