"""The SLURM executor against a real one-node SLURM (.ci/slurm.sh starts one; never a mock).

The tiny suite as one job array gives the serial run's table, also when two of its
tasks are cancelled mid-training and the same command is run again; one run over
two processes under ``srun`` resumes after its job is cancelled and gives the rows of
one process with 4 devices. Without a SLURM that takes jobs these tests skip, saying
why; with HDSEMG_REQUIRE_SLURM=1 (CI) they fail instead.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time

import pytest

from hdsemg_jax.run import executors, launch
from tests.cli_helpers import ROOT, cli_env, main_command, read_rows
from tests.scaleout_helpers import (NOT_COMPARED, RUN_ARGS, by_pair, suite_command, suite_rows,
                                    suite_table)

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module', autouse=True)
def slurm():
  why = executors.slurm_available()
  if why:
    message = (f'no SLURM to submit to ({why}); start one with: eval "$(bash .ci/slurm.sh '
               'start /tmp/slurm)"')
    if os.environ.get('HDSEMG_REQUIRE_SLURM') == '1':
      pytest.fail(message + ' (HDSEMG_REQUIRE_SLURM=1)')
    pytest.skip(message)


def _wait_until(condition, what: str, timeout: float = 300, poll: float = 0.1) -> None:
  deadline = time.monotonic() + timeout
  while not condition():
    if time.monotonic() > deadline:
      raise AssertionError(f'timed out waiting for {what}')
    time.sleep(poll)


def _has_checkpoint(workdir: str) -> bool:
  return bool(glob.glob(os.path.join(workdir, 'checkpoints', '*', 'seed_0', '[0-9]*')))


def test_a_job_array_gives_the_serial_table_even_when_two_tasks_are_cancelled(
    tiny_data_dir, serial_suite, tmp_path):
  command = suite_command(f'--config.dataset.data_dir={tiny_data_dir}', f'--workdir={tmp_path}',
                          '--executor=slurm', '--fold_groups=2')
  submitted = subprocess.run([*command, '--no_wait'], cwd=ROOT, env=cli_env(),
                             capture_output=True, text=True, timeout=300)
  assert submitted.returncode == 0, submitted.stderr[-3000:]
  assert 'submitted SLURM job array' in submitted.stdout
  first = json.loads((tmp_path / launch.JOBS_FILE).read_text())
  assert len(first) == 4  # 2 models x 2 fold groups.
  # The array runs two tasks at once on this 2-core node, the first two first: cancel both
  # once they have saved a checkpoint.
  victims = ['intra_session/all_convnet/folds-1of2', 'intra_session/all_convnet/folds-2of2']
  workdirs = {v: str(tmp_path / 'intra_session' / 'all_convnet' / 'tasks' / v.split('/')[-1])
              for v in victims}
  _wait_until(lambda: all(_has_checkpoint(w) for w in workdirs.values()),
              'the first checkpoints of the two tasks to cancel')
  subprocess.run(['scancel', *(first[v] for v in victims)], check=True, timeout=60)
  executors.wait_for_jobs(set(first.values()))
  for v in victims:  # Cancelled mid-training: no table, and fewer rows than pairs.
    assert not os.path.exists(os.path.join(workdirs[v], 'results.md')), v
  # The same command again: only the two cancelled tasks are submitted; they resume.
  again = subprocess.run(command, cwd=ROOT, env=cli_env(), capture_output=True, text=True,
                         timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  second = json.loads((tmp_path / launch.JOBS_FILE).read_text())
  assert {k for k in second if second[k] != first[k]} == set(victims)
  for v in victims:
    log = glob.glob(str(tmp_path / 'slurm' / second[v] / '*_log.err'))
    assert log and 'resumed from checkpoint at step' in open(log[0]).read(), v
  assert suite_table(tmp_path) == suite_table(serial_suite)
  assert suite_rows(tmp_path) == suite_rows(serial_suite)  # No pair twice, none missing.
  # experiments.report --combine rebuilds the suite's report from launch.json.
  os.remove(tmp_path / 'comparison.md')
  rebuilt = subprocess.run([sys.executable, '-m', 'experiments.report', '--combine',
                            str(tmp_path)], cwd=ROOT, env=cli_env(), capture_output=True,
                           text=True, timeout=300)
  assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
  assert suite_table(tmp_path) == suite_table(serial_suite)


def _sbatch_two_processes(tiny_data_dir, workdir) -> str:
  """The tiny run as 2 SLURM tasks of 1 CPU (2 CPU devices each) under srun; its job id."""
  run = main_command(*RUN_ARGS, '--config.num_cpu_devices=2',
                     f'--config.dataset.data_dir={tiny_data_dir}', f'--workdir={workdir}')
  out = subprocess.run(['sbatch', '--parsable', '--ntasks=2', '--cpus-per-task=1',
                        f'--output={workdir}/slurm-%j.out', '--wrap',
                        'srun ' + ' '.join(run)], cwd=ROOT, env=cli_env(), capture_output=True,
                       text=True, timeout=60, check=True)
  return out.stdout.strip().split(';')[0]


def test_two_processes_under_srun_resume_after_a_cancel_and_give_the_one_process_rows(
    tiny_data_dir, one_process_rows, tmp_path):
  workdir = str(tmp_path)
  job = _sbatch_two_processes(tiny_data_dir, workdir)
  _wait_until(lambda: _has_checkpoint(workdir), 'the two-process run\'s first checkpoint')
  subprocess.run(['scancel', job], check=True, timeout=60)
  executors.wait_for_jobs({job})
  assert not os.path.exists(os.path.join(workdir, 'results.md'))
  job = _sbatch_two_processes(tiny_data_dir, workdir)
  executors.wait_for_jobs({job})
  log = open(os.path.join(workdir, f'slurm-{job}.out')).read()
  assert 'on 4 device(s) (2 process(es))' in log, log[-3000:]
  assert 'resumed from checkpoint at step' in log, log[-3000:]
  assert os.path.exists(os.path.join(workdir, 'results.md')), log[-3000:]
  assert by_pair(read_rows(workdir, NOT_COMPARED)) == one_process_rows
  assert len(read_rows(workdir)) == len(one_process_rows)  # Process 0 alone wrote rows.
