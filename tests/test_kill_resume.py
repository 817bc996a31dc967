"""Kill-safety: a run SIGKILLed at random moments, rerun each time, ends with the same rows.

tests/test_resume.py kills at chosen points (after a checkpoint, while scoring, after
a row); this test kills wherever the clock says, 12 times, rerunning on the same
workdir after each kill, so the kills also land in checkpoint restores, in the
middle of an orbax save, between a row and the next pair, and in whatever else a
run does that no fault point names.
"""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import time
from typing import Any

import pytest

from hdsemg_jax.run import lock as run_lock
from tests.cli_helpers import ROOT, cli_env, main_command

KILLS = 12
# One fold, two seeds of 14 steps each, a checkpoint every 2 steps: most kills that
# land in training find a checkpoint to resume from and lose at most one step.
ARGS = ('--config.protocol.subjects=1', '--config.seeds=0,1', '--config.train.epochs=2',
        '--config.checkpoint.every_steps=2')
# What each killed run was doing last, from its log: the summary printed on failure.
_PHASES = (('row', r'frame accuracy'), ('checkpoint', r'Saving checkpoint at step \d+'),
           ('epoch', r'epoch \d+/\d+'), ('resumed', r'resumed from checkpoint at step \d+'),
           ('fold', r'fold \S+, seed'), ('devices', r'devices: '))


def _start(workdir, data_dir, log_path) -> subprocess.Popen:
  # `run_main` waits for its process; this test must kill it mid-run. The compilation
  # cache conftest.py set up is inherited: restarts load programs, not compile them.
  cmd = main_command(*ARGS, f'--config.dataset.data_dir={data_dir}', f'--workdir={workdir}')
  # Logs to a file, not a pipe: nobody reads a pipe while we wait to kill, and a
  # full pipe would stall the run.
  with open(log_path, 'w') as log:
    return subprocess.Popen(cmd, cwd=ROOT, env=cli_env(), stdout=log, stderr=subprocess.STDOUT)


def _holds_lock(proc: subprocess.Popen, workdir) -> bool:
  try:
    return open(run_lock.lock_path(str(workdir))).read().split()[:1] == [str(proc.pid)]
  except OSError:
    return False


def _wait_for(proc: subprocess.Popen, condition) -> bool:
  """Polls ``condition()`` until it holds (True) or ``proc`` exits (False)."""
  deadline = time.monotonic() + 300
  while proc.poll() is None and time.monotonic() < deadline:
    if condition():
      return True
    time.sleep(0.01)
  return False


def _run(workdir, data_dir, log_path) -> tuple[float, float]:
  """Runs to completion; returns when it took and released the run lock (seconds).

  The lock is taken once Python, JAX and the flags are loaded, when the run begins
  to read and write the workdir, and released when it has written its last file:
  kills timed within that span spend nothing on imports or on the interpreter's
  exit, where a kill cannot harm the workdir. Code that takes no lock: (0, the
  whole run).
  """
  start = time.monotonic()
  proc = _start(workdir, data_dir, log_path)
  taken = released = 0.0
  if _wait_for(proc, lambda: _holds_lock(proc, workdir)):
    taken = time.monotonic() - start
    _wait_for(proc, lambda: not _holds_lock(proc, workdir))
    released = time.monotonic() - start
  assert proc.wait(timeout=600) == 0, open(log_path).read()[-3000:]
  return taken, (released or time.monotonic() - start)


def _last_phase(log_path) -> str:
  text = open(log_path, errors='replace').read()
  last, where = 'start-up', -1
  for name, pattern in _PHASES:
    for match in re.finditer(pattern, text):
      if match.start() > where:
        last, where = f'{name} ({match.group(0)})' if name != 'row' else name, match.start()
  return last


def _comparable(value: Any) -> Any:
  """``value`` without timings and memory peaks, which differ between any two runs, and
  the checkout's git state (the same in CI; in a working copy, a commit may land mid-test)."""
  if isinstance(value, dict):
    return {k: _comparable(v) for k, v in value.items()
            if not re.search(r'seconds|time|_at$|^git_|^peak_.*_memory_bytes$', k)}
  if isinstance(value, list):
    return [_comparable(v) for v in value]
  return value


def _rows(workdir) -> list[dict[str, Any]]:
  lines = (workdir / 'results.jsonl').read_text().splitlines()
  return [_comparable(json.loads(line)) for line in lines]


@pytest.mark.slow
def test_killed_at_random_moments_resumes_to_the_uninterrupted_rows(tiny_data_dir, tmp_path):
  _run(tmp_path / 'reference', tiny_data_dir, tmp_path / 'reference.log')
  expected = _rows(tmp_path / 'reference')
  # Timed once the compilation cache holds the run's programs, as every rerun finds it:
  # a first run that compiles would spread the kills over time the reruns never take.
  taken, released = _run(tmp_path / 'timed', tiny_data_dir, tmp_path / 'timed.log')
  assert _rows(tmp_path / 'timed') == expected
  assert [(r['fold'], r['seed']) for r in expected] == [('S01-s1', 0), ('S01-s1', 1)]

  # Kill moments: seeded (a failure replays with the same delays), anywhere in the
  # span the uninterrupted run holds the lock (see `_run`). Each rerun resumes
  # further on, so the kills walk through the run (loading, restoring, training,
  # orbax saves, scoring, rows, tables). A rerun that finishes before its kill
  # completes that workdir: its rows are checked and the next kills start on a fresh
  # one, so that all KILLS land in a run.
  rng = random.Random(16)
  window = released - taken
  cycle, workdir = 0, tmp_path / 'killed0'
  history, kills = [], 0
  for attempt in range(3 * KILLS):
    if kills == KILLS:
      break
    delay = rng.uniform(0, window)
    log_path = tmp_path / f'attempt{attempt:02d}.log'
    proc = _start(workdir, tiny_data_dir, log_path)
    if taken:
      _wait_for(proc, lambda: _holds_lock(proc, workdir))
    try:
      code = proc.wait(timeout=delay)
      assert code == 0, open(log_path).read()[-3000:]
      history.append(f'{attempt:2d} {workdir.name}: {delay:5.2f} s, finished')
      assert _rows(workdir) == expected, '\n'.join(history)
      cycle += 1
      workdir = tmp_path / f'killed{cycle}'
    except subprocess.TimeoutExpired:
      proc.send_signal(signal.SIGKILL)
      proc.wait(timeout=60)
      kills += 1
      history.append(f'{attempt:2d} {workdir.name}: {delay:5.2f} s, killed after '
                     f'{_last_phase(log_path)}')
  summary = (f'uninterrupted run: lock held from {taken:.1f} s to {released:.1f} s; '
             f'{kills} kills:\n' + '\n'.join(history))
  print(summary)
  assert kills == KILLS, summary  # Otherwise the delays missed the runs.

  _run(workdir, tiny_data_dir, tmp_path / 'final.log')
  assert _rows(workdir) == expected, summary
