"""One run per workdir: a second run is refused at once, a killed run's lock taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from hdsemg_jax.run import lock as run_lock
from tests.cli_helpers import ROOT, cli_env, main_command

# Holds the lock on argv[1] until killed; says so on stdout once it does.
_HOLDER = """
import sys, time
from hdsemg_jax.run import lock as run_lock
with run_lock.hold(sys.argv[1]):
  print('held', flush=True)
  time.sleep(600)
"""


def _start_holder(workdir) -> subprocess.Popen:
  proc = subprocess.Popen([sys.executable, '-c', _HOLDER, str(workdir)], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  line = proc.stdout.readline()  # Blocks until the lock is held (or the holder died).
  assert line == 'held\n', proc.stderr.read()
  return proc


def _kill(proc: subprocess.Popen) -> None:
  proc.send_signal(signal.SIGKILL)
  proc.wait(timeout=30)


@pytest.fixture
def holder(tmp_path):
  proc = _start_holder(tmp_path / 'run')
  yield proc
  if proc.poll() is None:
    _kill(proc)


def test_a_second_process_is_refused_at_once_then_takes_over_a_killed_holder(
    holder, tmp_path):
  workdir = str(tmp_path / 'run')
  start = time.monotonic()
  with pytest.raises(run_lock.WorkdirLocked) as raised:
    with run_lock.hold(workdir):
      pytest.fail('a second holder got the lock')
  assert time.monotonic() - start < 0.5  # Refused, not queued behind the holder.
  message = str(raised.value)
  assert f'workdir {workdir} is in use by process {holder.pid}' in message
  assert '--workdir' in message
  assert raised.value.pid == holder.pid and isinstance(raised.value, ValueError)
  # SIGKILL: no clean-up runs; the kernel drops the lock, the pid stays in the file.
  _kill(holder)
  assert open(run_lock.lock_path(workdir)).read().split()[0] == str(holder.pid)
  with run_lock.hold(workdir) as path:
    assert open(path).read().split()[0] == str(os.getpid())
  assert open(path).read() == ''  # Released cleanly: no pid left behind.


def test_a_process_is_refused_when_another_one_holds_it(tmp_path):
  # The other way round: this process holds, a second process is refused.
  workdir = str(tmp_path / 'run')
  probe = ('import sys\nfrom hdsemg_jax.run import lock as run_lock\ntry:\n'
           '  with run_lock.hold(sys.argv[1]): pass\n'
           'except run_lock.WorkdirLocked as e:\n  print(e); sys.exit(3)\n')
  with run_lock.hold(workdir):
    proc = subprocess.run([sys.executable, '-c', probe, workdir], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert f'workdir {workdir} is in use by process {os.getpid()}' in proc.stdout
  proc = subprocess.run([sys.executable, '-c', probe, workdir], cwd=ROOT,
                        capture_output=True, text=True, timeout=60)
  assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_second_run_in_the_same_process_is_refused(tmp_path):
  workdir = str(tmp_path / 'run')
  with run_lock.hold(workdir):
    with pytest.raises(run_lock.WorkdirLocked, match='in use by this process'):
      with run_lock.hold(workdir):
        pass
  with run_lock.hold(workdir):  # Released at the end of the block.
    pass


def test_released_when_the_run_fails(tmp_path):
  workdir = str(tmp_path / 'run')
  with pytest.raises(RuntimeError):
    with run_lock.hold(workdir):
      raise RuntimeError('the run failed')
  with run_lock.hold(workdir):
    pass


def test_a_stale_pid_without_a_lock_is_overwritten(tmp_path):
  # What a SIGKILLed run leaves: its pid in the file, no lock held.
  workdir = tmp_path / 'run'
  workdir.mkdir()
  (workdir / run_lock.LOCK_FILE).write_text('999999999 elsewhere\n')
  with run_lock.hold(str(workdir)) as path:
    pid, host = open(path).read().split()
    assert int(pid) == os.getpid() and host != 'elsewhere'


def test_creates_the_workdir_and_names_an_unusable_one(tmp_path):
  workdir = tmp_path / 'a' / 'b'
  with run_lock.hold(str(workdir)) as path:
    assert os.path.dirname(path) == str(workdir)
  (tmp_path / 'file').write_text('')
  with pytest.raises(ValueError, match='cannot be created') as raised:
    with run_lock.hold(str(tmp_path / 'file' / 'run')):
      pass
  assert not isinstance(raised.value, run_lock.WorkdirLocked)


def test_each_process_of_a_multi_host_program_has_its_own_lock(tmp_path):
  workdir = str(tmp_path / 'run')
  with run_lock.hold(workdir, process_index=0), run_lock.hold(workdir, process_index=1):
    with pytest.raises(run_lock.WorkdirLocked):
      with run_lock.hold(workdir, process_index=1):
        pass
  assert run_lock.lock_path(workdir, 1).endswith('run-1.lock')


@pytest.mark.slow
def test_two_concurrent_runs_on_one_workdir(tiny_data_dir, tmp_path):
  """Two `experiments.main` on one workdir at the same time: one runs, one is refused."""
  workdir = str(tmp_path / 'run')
  cmd = main_command(f'--config.dataset.data_dir={tiny_data_dir}', f'--workdir={workdir}',
                     '--config.seeds=0')
  logs = [tmp_path / f'{i}.log' for i in range(2)]
  procs = []
  for log_path in logs:
    # Logs to files: a full, unread pipe would stall a run.
    with open(log_path, 'w') as log:
      procs.append(subprocess.Popen(cmd, cwd=ROOT, env=cli_env(), stdout=log,
                                    stderr=subprocess.STDOUT))
  # Whichever exits first must be the refused one, while the other is still running.
  deadline = time.monotonic() + 300
  while all(p.poll() is None for p in procs) and time.monotonic() < deadline:
    time.sleep(0.05)
  refused = next((p for p in procs if p.poll() is not None), None)
  assert refused is not None, 'neither run finished in 300 s'
  runner = procs[1 - procs.index(refused)]
  refused_early = runner.poll() is None
  runner.wait(timeout=300)
  refused_log, runner_log = (logs[procs.index(p)].read_text() for p in (refused, runner))
  assert runner.returncode == 0, runner_log[-3000:]
  assert refused.returncode != 0, refused_log[-3000:]
  assert refused_early, 'the second run was not refused before the first one finished'
  assert f'workdir {workdir} is in use by process {runner.pid}' in refused_log, (
      refused_log[-3000:])
  lines = open(os.path.join(workdir, 'results.jsonl')).read().splitlines()
  keys = [(r['fold'], r['seed']) for r in map(json.loads, lines)]
  assert sorted(keys) == [('S01-s1', 0), ('S02-s1', 0)]
