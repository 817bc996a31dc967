"""Training curves of one (fold, seed): ``curves.jsonl`` lines and TensorBoard scalars."""

from __future__ import annotations

import json
import os
from typing import Callable

from hdsemg_jax.reporting import results


class CurveWriter:
  """Per-epoch loss and accuracy of one (fold, seed), per phase.

  ``curves.jsonl`` gets one line per epoch. A resumed run trains again from its
  latest checkpoint, so the first epoch it records for a phase may already be in
  the file (with every later one), written by the run that was stopped: those
  lines are dropped before the new ones are appended, so every (fold, seed,
  phase, epoch) has one line. TensorBoard event files go to ``tensorboard_dir``.
  """

  def __init__(self, curves_file: str, tensorboard_dir: str, fold_id: str, seed: int):
    self.curves_file, self.tensorboard_dir = curves_file, tensorboard_dir
    self.fold_id, self.seed = fold_id, seed
    self._writer = None
    self._phases_started: set[str] = set()

  def _drop_stale(self, phase: str, epoch: int) -> None:
    """Removes this (fold, seed, phase)'s lines of ``epoch`` and later (a stopped run's)."""
    if not os.path.exists(self.curves_file):
      return
    with open(self.curves_file) as f:
      lines = f.readlines()

    def stale(line: str) -> bool:
      try:
        r = json.loads(line)
      except json.JSONDecodeError:
        return True  # A line torn by a kill.
      return ((r.get('fold'), r.get('seed'), r.get('phase')) == (self.fold_id, self.seed, phase)
              and r.get('epoch', 0) >= epoch)
    kept = [line for line in lines if line.endswith('\n') and not stale(line)]
    if len(kept) != len(lines):
      results.write_atomic(self.curves_file, ''.join(kept))

  def on_epoch(self, phase: str) -> Callable[[int, dict[str, float]], None]:
    """The trainer's ``on_epoch`` callback for ``phase`` ('train', 'pretrain', 'finetune')."""
    def record(epoch: int, summary: dict[str, float]) -> None:
      line = {'fold': self.fold_id, 'seed': self.seed, 'phase': phase, 'epoch': epoch + 1,
              'loss': summary['loss'], 'accuracy': summary['accuracy']}
      if phase not in self._phases_started:
        self._phases_started.add(phase)
        self._drop_stale(phase, epoch + 1)
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
