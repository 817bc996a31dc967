"""`experiments.main` with a preemption planted: ``python tests/fault_main.py POINT[:N] ARGS...``.

Kills this process with SIGKILL, as a preemption would, the N-th time (default the
first) it reaches POINT, then nothing else changes: ARGS are `experiments.main`'s.

* ``after_checkpoint``: right after a training checkpoint is written;
* ``during_eval``: after the first batch of a fold's predictions;
* ``after_row``: right after a results row is appended.

The points are planted by wrapping library functions here, so the library itself
carries no test machinery.
"""

from __future__ import annotations

import collections
import os
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

POINTS = ('after_checkpoint', 'during_eval', 'after_row')
_counts: collections.Counter = collections.Counter()


def _parse(spec: str) -> tuple[str, int]:
  point, _, count = spec.partition(':')
  if point not in POINTS or not (count or '1').isdigit():
    raise SystemExit(f'fault_main: expected POINT[:N] with POINT one of {", ".join(POINTS)}; '
                     f'got {spec!r}.')
  return point, int(count or 1)


def _reached(name: str, point: str, count: int) -> None:
  if name != point:
    return
  _counts[name] += 1
  if _counts[name] == count:
    print(f'fault_main: killed at {name}:{count}', file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def plant(point: str, count: int) -> None:
  """Wraps the library functions at each point so that reaching POINT the N-th time kills."""
  from hdsemg_jax import checkpointing
  from hdsemg_jax.reporting import results
  from hdsemg_jax.training import parallel

  save = checkpointing.TrainCheckpoints.save

  def save_then(self, state):
    save(self, state)
    _reached('after_checkpoint', point, count)

  predictor = parallel.Plan.predictor

  def predictor_then(self, graphdef, state):
    predict = predictor(self, graphdef, state)

    def predict_then(x):
      out = predict(x)
      _reached('during_eval', point, count)
      return out
    return predict_then

  append_row = results.append_row

  def append_row_then(workdir, row):
    append_row(workdir, row)
    _reached('after_row', point, count)

  checkpointing.TrainCheckpoints.save = save_then
  parallel.Plan.predictor = predictor_then
  results.append_row = append_row_then


if __name__ == '__main__':
  plant(*_parse(sys.argv[1]))
  from experiments import cli, main
  sys.argv = [sys.argv[0], *sys.argv[2:]]
  cli.run(main.main)
