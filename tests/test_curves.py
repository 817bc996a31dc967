"""curves.jsonl: one line per (fold, seed, phase, epoch), however often the run resumed."""

import json

from hdsemg_jax.reporting import curves


def _lines(path):
  return [json.loads(line) for line in open(path)]


def test_a_resumed_run_replaces_the_epochs_it_trains_again(tmp_path):
  path = str(tmp_path / 'curves.jsonl')
  summary = {'loss': 1.0, 'accuracy': 0.5}
  first = curves.CurveWriter(path, str(tmp_path / 'tb'), 'S01', 0)
  other_seed = curves.CurveWriter(path, str(tmp_path / 'tb1'), 'S01', 1)
  for epoch in range(3):
    first.on_epoch('train')(epoch, summary)
  other_seed.on_epoch('train')(0, summary)
  first.close()
  other_seed.close()
  with open(path, 'a') as f:
    f.write('{"fold": "S01", "seed": 0, "pha')  # A kill tore the last line.
  # The run resumes from a checkpoint after epoch 1: epochs 2 and 3 are trained again.
  resumed = curves.CurveWriter(path, str(tmp_path / 'tb'), 'S01', 0)
  for epoch in (1, 2):
    resumed.on_epoch('train')(epoch, {'loss': 0.1 * epoch, 'accuracy': 0.9})
  resumed.on_epoch('finetune')(0, summary)
  resumed.close()
  got = [(r['seed'], r['phase'], r['epoch'], r['loss']) for r in _lines(path)]
  assert got == [(0, 'train', 1, 1.0), (1, 'train', 1, 1.0), (0, 'train', 2, 0.1),
                 (0, 'train', 3, 0.2), (0, 'finetune', 1, 1.0)]
