"""Training curves of one (fold, seed): ``curves.jsonl`` lines and TensorBoard scalars."""

from __future__ import annotations

import json
import os
from typing import Callable


class CurveWriter:
  """Per-epoch loss and accuracy of one (fold, seed), per phase.

  ``curves.jsonl`` gets one line per epoch (a resumed run appends the epochs it
  runs, so an epoch interrupted part-way may appear twice: the last line counts);
  TensorBoard event files go to ``tensorboard_dir``.
  """

  def __init__(self, curves_file: str, tensorboard_dir: str, fold_id: str, seed: int):
    self.curves_file, self.tensorboard_dir = curves_file, tensorboard_dir
    self.fold_id, self.seed = fold_id, seed
    self._writer = None

  def on_epoch(self, phase: str) -> Callable[[int, dict[str, float]], None]:
    """The trainer's ``on_epoch`` callback for ``phase`` ('train', 'pretrain', 'finetune')."""
    def record(epoch: int, summary: dict[str, float]) -> None:
      line = {'fold': self.fold_id, 'seed': self.seed, 'phase': phase, 'epoch': epoch + 1,
              'loss': summary['loss'], 'accuracy': summary['accuracy']}
      with open(self.curves_file, 'a') as f:
        f.write(json.dumps(line) + '\n')
      if self._writer is None:
        from tensorboardX import SummaryWriter  # Only runs with a workdir need it.
        os.makedirs(self.tensorboard_dir, exist_ok=True)
        self._writer = SummaryWriter(self.tensorboard_dir)
      for key in ('loss', 'accuracy'):
        self._writer.add_scalar(f'{phase}/{key}', summary[key], epoch + 1)
      self._writer.flush()
    return record

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
