"""Where tasks run: here, one after another; a pool of local worker processes; a SLURM job array.

Every executor runs `tasks.run_task` on each task and returns the failures as
``'<task>: <why>'`` lines; a task's own workdir holds its progress, so a failed,
killed or preempted task resumes from its checkpoint the next time it runs.

* `run_here`: in this process, in order (what a single run always did).
* `run_pool`: ``workers`` processes at once, each task in a fresh process (its
  own JAX, its own device count) with its log in ``<logs>/<task>.log``. On a host
  with GPUs, worker ``i`` sees GPU ``i mod n`` only; where workers share a GPU,
  JAX's preallocation is turned off and each takes an equal share of its memory.
* `SlurmArray`: one SLURM job array through submitit, one element per task,
  logs per element in the array's folder; `SlurmArray.wait` follows the array with
  ``squeue`` (no accounting database needed) and reads each element's result.
  Elements are `_TaskRunner`s: on SLURM's timeout or preemption signal submitit
  requeues them, and ``scontrol requeue`` reruns them; either way the task
  resumes from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
import threading
import time
from typing import Any, Mapping, Sequence

from absl import logging

from hdsemg_jax.config import ConfigError
from hdsemg_jax.run import tasks as tasks_lib
from hdsemg_jax.run.tasks import Task

EXECUTORS = ('local', 'slurm')


def _why(error: BaseException) -> str:
  return f'{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ""}'


def run_here(tasks: Sequence[Task], keep_going: bool = False) -> list[str]:
  """Runs ``tasks`` in this process, in order; stops at the first failure unless ``keep_going``."""
  failures = []
  for i, task in enumerate(tasks, 1):
    logging.info('[%d/%d] %s -> %s', i, len(tasks), task.name, task.workdir)
    try:
      tasks_lib.run_task(task)
    except Exception as e:  # noqa: BLE001  (reported, and re-raised unless keep_going)
      if not keep_going:
        raise
      failures.append(f'{task.name}: {_why(e)}')
      logging.error('%s failed: %s', task.name, e)
  return failures


# ---------------------------------------------------------------------------------------------
# A pool of local processes.


def visible_gpus(environ: Mapping[str, str] = os.environ) -> list[str]:
  """The GPUs this host lets a process use (``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi -L``)."""
  if 'CUDA_VISIBLE_DEVICES' in environ:
    return [d for d in environ['CUDA_VISIBLE_DEVICES'].split(',') if d.strip()]
  try:
    listed = subprocess.run(['nvidia-smi', '-L'], capture_output=True, text=True, timeout=30)
  except (OSError, subprocess.TimeoutExpired):
    return []
  return [str(i) for i, line in enumerate(listed.stdout.splitlines())
          if line.startswith('GPU ')] if listed.returncode == 0 else []


def worker_environment(worker: int, workers: int, gpus: Sequence[str]) -> dict[str, str]:
  """The environment variables of pool worker ``worker``: its GPU, and memory rules if shared.

  JAX preallocates 75% of a GPU's memory per process; two processes on one GPU
  would then run out. Where ``workers`` exceed the GPUs, preallocation is off and
  each process may use an equal share (``XLA_PYTHON_CLIENT_MEM_FRACTION``).
  """
  if not gpus:
    return {}
  env = {'CUDA_VISIBLE_DEVICES': gpus[worker % len(gpus)]}
  sharing = -(-workers // len(gpus))  # Workers on the busiest GPU.
  if sharing > 1:
    env['XLA_PYTHON_CLIENT_PREALLOCATE'] = 'false'
    env['XLA_PYTHON_CLIENT_MEM_FRACTION'] = f'{0.9 / sharing:.3f}'
  return env


def _log_name(task: Task) -> str:
  return task.name.replace(os.sep, '__')


def run_pool(tasks: Sequence[Task], workers: int, logs: str, keep_going: bool = False,
             gpus: Sequence[str] | None = None) -> list[str]:
  """Runs ``tasks`` on ``workers`` local processes at once; a task's log: ``<logs>/<task>.log``.

  Without ``keep_going`` a failure stops handing out tasks (running ones finish).
  """
  if workers < 1:
    raise ConfigError(f'--workers={workers} must be at least 1.')
  gpus = visible_gpus() if gpus is None else list(gpus)
  os.makedirs(logs, exist_ok=True)
  queue = list(tasks)
  failures: list[str] = []
  lock = threading.Lock()

  def work(worker: int) -> None:
    env = {**os.environ, **worker_environment(worker, workers, gpus)}
    while True:
      with lock:
        if not queue or (failures and not keep_going):
          return
        task = queue.pop(0)
      base = os.path.join(logs, _log_name(task))
      with open(base + '.task', 'wb') as f:
        pickle.dump(task, f)
      logging.info('worker %d: %s -> %s (log %s.log)', worker, task.name, task.workdir, base)
      with open(base + '.log', 'ab') as log:
        code = subprocess.call([sys.executable, '-m', 'hdsemg_jax.run.executors', base + '.task'],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
      if code != 0:
        with lock:
          failures.append(f'{task.name}: exit {code}; {_tail(base + ".log")} (log {base}.log)')

  threads = [threading.Thread(target=work, args=(i,)) for i in range(min(workers, len(tasks)))]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  return failures


def _tail(path: str) -> str:
  try:
    with open(path, errors='replace') as f:
      lines = [line.strip() for line in f if line.strip()]
  except OSError:
    return 'no log'
  return lines[-1][:300] if lines else 'empty log'


# ---------------------------------------------------------------------------------------------
# SLURM.


@dataclasses.dataclass(frozen=True)
class SlurmSettings:
  """The job array's resources (``--slurm.*``): per element, i.e. per task."""
  partition: str = ''  # Empty: the cluster's default partition.
  time_min: int = 60
  mem_gb: float = 4.0
  cpus_per_task: int = 1
  gpus_per_task: int = 0
  array_parallelism: int = 64  # Elements running at once.
  requeue: bool = True  # sbatch --requeue: a preempted or failed node's element runs again.

  def __post_init__(self):
    for key in ('time_min', 'cpus_per_task', 'array_parallelism'):
      if getattr(self, key) < 1:
        raise ConfigError(f'slurm.{key}={getattr(self, key)} must be at least 1.')
    if self.mem_gb <= 0:
      raise ConfigError(f'slurm.mem_gb={self.mem_gb} must be positive.')
    if self.gpus_per_task < 0:
      raise ConfigError(f'slurm.gpus_per_task={self.gpus_per_task} must be 0 or more.')


class _TaskRunner:
  """One array element: runs its task; on timeout or preemption submitit requeues it.

  A submitit ``Checkpointable``: its ``checkpoint`` resubmits the same task, which
  resumes from the checkpoint in its workdir.
  """

  def __call__(self, task: Task) -> str:
    return tasks_lib.run_task(task)

  def checkpoint(self, task: Task) -> Any:
    import submitit
    return submitit.helpers.DelayedSubmission(self, task)


def _submitit() -> Any:
  try:
    import submitit
  except ImportError:
    raise ConfigError('--executor=slurm needs submitit: pip install -r '
                      'requirements-slurm.txt (or the project\'s [slurm] extra).') from None
  return submitit


def slurm_available() -> str | None:
  """Why SLURM cannot take jobs from here (None: it can)."""
  try:
    out = subprocess.run(['sinfo', '-h', '-o', '%a'], capture_output=True, text=True, timeout=30)
  except (OSError, subprocess.TimeoutExpired) as e:
    return f'sinfo failed: {e}'
  if out.returncode != 0:
    return f'sinfo failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}'
  if 'up' not in out.stdout.split():
    return 'no SLURM partition is up'
  return None


@dataclasses.dataclass
class SlurmArray:
  """A submitted job array: its elements (submitit jobs) and the tasks they run."""
  jobs: list[Any]
  tasks: list[Task]

  @property
  def array_id(self) -> str:
    return str(self.jobs[0].job_id).split('_')[0]

  @classmethod
  def submit(cls, tasks: Sequence[Task], folder: str, settings: SlurmSettings,
             name: str = 'hdsemg') -> SlurmArray:
    """Submits ``tasks`` as one job array; each element's logs go to ``folder``."""
    submitit = _submitit()
    executor = submitit.AutoExecutor(folder=os.path.join(folder, '%j'), cluster='slurm')
    params: dict[str, Any] = dict(
        name=name, timeout_min=settings.time_min, mem_gb=settings.mem_gb,
        cpus_per_task=settings.cpus_per_task, tasks_per_node=1, nodes=1,
        slurm_array_parallelism=settings.array_parallelism)
    if settings.gpus_per_task:
      params['gpus_per_node'] = settings.gpus_per_task
    if settings.partition:
      params['slurm_partition'] = settings.partition
    if settings.requeue:
      params['slurm_additional_parameters'] = {'requeue': True}
    executor.update_parameters(**params)
    jobs = executor.map_array(_TaskRunner(), list(tasks))
    return cls(jobs=list(jobs), tasks=list(tasks))

  def wait(self, poll_seconds: float = 2.0) -> list[str]:
    """Waits until no element is queued; returns the failed ones (killed, cancelled, raised)."""
    wait_for_jobs({str(j.job_id) for j in self.jobs}, poll_seconds)
    failures = []
    for job, task in zip(self.jobs, self.tasks):
      if job.paths.result_pickle.exists():
        try:
          job.result()
          continue
        except Exception as e:  # noqa: BLE001  (the task raised: its traceback is in the log)
          failures.append(f'{task.name}: job {job.job_id}: {_why(e)} (log {job.paths.stderr})')
          continue
      if tasks_lib.is_finished(task):
        continue  # Finished, but SLURM ended the element before submitit wrote its result.
      failures.append(f'{task.name}: job {job.job_id} ended without a result (cancelled, '
                      f'killed or out of time); {_tail(str(job.paths.stderr))} (log '
                      f'{job.paths.stderr})')
    return failures


def queued_jobs() -> set[str]:
  """Every job (array elements one by one, ``<array>_<i>``) SLURM still holds: pending,
  running, requeued."""
  out = subprocess.run(['squeue', '-h', '-r', '-o', '%i'], capture_output=True, text=True,
                       timeout=60)
  if out.returncode != 0:
    raise RuntimeError(f'squeue failed: {out.stderr.strip()}')
  return {line.strip() for line in out.stdout.splitlines() if line.strip()}


def wait_for_jobs(job_ids: set[str], poll_seconds: float = 2.0) -> None:
  """Returns once SLURM holds none of ``job_ids`` (finished, failed or cancelled)."""
  while job_ids & queued_jobs():
    time.sleep(poll_seconds)


def main(argv: Sequence[str]) -> int:
  """A pool worker: ``python -m hdsemg_jax.run.executors TASK_FILE`` runs the pickled task."""
  if len(argv) != 2:
    print('usage: python -m hdsemg_jax.run.executors TASK_FILE', file=sys.stderr)
    return 2
  with open(argv[1], 'rb') as f:
    task = pickle.load(f)
  tasks_lib.run_task(task)
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
