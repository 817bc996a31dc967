"""Runs as tasks on an executor, then each run gathered: what `experiments.main` and the suite
do with ``--executor``, ``--workers`` and ``--fold_groups``.

`launch` splits each run into tasks (`tasks.split`), writes the plan to
``<workdir>/launch.json``, runs the unfinished tasks on the chosen executor
(`executors`), and gathers every run split into fold groups (`tasks.gather`). A
task still queued in SLURM from an earlier submission (``slurm_jobs.json``) is not
submitted again; resubmitting the same command therefore submits only what is
neither finished nor queued. `gather_plan` redoes the gathering from
``launch.json`` at any time (``experiments.report --combine <workdir>``).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

import ml_collections
from absl import logging

from hdsemg_jax.config import ConfigError
from hdsemg_jax.reporting import results
from hdsemg_jax.run import executors
from hdsemg_jax.run import tasks as tasks_lib
from hdsemg_jax.run.tasks import Task

PLAN_FILE = 'launch.json'
JOBS_FILE = 'slurm_jobs.json'
LOGS_DIR = 'logs'


class TasksFailed(RuntimeError):
  """Tasks of a launch failed (and ``keep_going`` was off); the message lists them."""


@dataclasses.dataclass(frozen=True)
class LaunchSettings:
  """Where and how a launch runs its tasks."""
  executor: str = 'local'  # 'local' or 'slurm'.
  workers: int = 1  # local: tasks at once, each in its own process (1: in this process).
  fold_groups: int = 1  # Tasks per run, by its folds.
  wait: bool = True  # slurm: wait for the array, then gather (False: return its job id).
  # Report the finished runs when tasks fail (else `TasksFailed`); local: run the others too.
  keep_going: bool = False
  slurm: executors.SlurmSettings = executors.SlurmSettings()

  def __post_init__(self):
    if self.executor not in executors.EXECUTORS:
      raise ConfigError(f'--executor={self.executor!r} must be one of '
                        f'{", ".join(executors.EXECUTORS)}.')
    if self.workers < 1:
      raise ConfigError(f'--workers={self.workers} must be at least 1.')
    if self.fold_groups < 1:
      raise ConfigError(f'--fold_groups={self.fold_groups} must be at least 1.')
    if self.executor == 'slurm' and self.workers != 1:
      raise ConfigError('--workers is for --executor=local; SLURM runs '
                        '--slurm.array_parallelism tasks at once.')

  @property
  def in_process(self) -> bool:
    """One task at a time in this process: what a plain run always did."""
    return self.executor == 'local' and self.workers == 1


@dataclasses.dataclass(frozen=True)
class Run:
  """One run to launch: a checked experiment config and its workdir."""
  name: str
  workdir: str
  config: ml_collections.ConfigDict
  labels: Mapping[str, str] = dataclasses.field(default_factory=dict)  # e.g. protocol, model.


@dataclasses.dataclass
class Outcome:
  """What a launch did."""
  tasks: list[Task]
  failures: list[str]  # '<task>: <why>'.
  missing: dict[str, list[str]]  # Per run: its (fold, seed) pairs not finished.
  job_id: str | None = None  # The SLURM array, when submitted.

  @property
  def complete(self) -> bool:
    return not self.failures and not any(self.missing.values())


def _plan_document(runs: Sequence[Run], split: Mapping[str, list[Task]],
                   record: Mapping[str, Any]) -> dict[str, Any]:
  return {**record, 'runs': [
      {'name': r.name, 'workdir': r.workdir, **dict(r.labels), 'config': r.config.to_dict(),
       'tasks': [{'name': t.name, 'workdir': t.workdir, 'folds': t.folds}
                 for t in split[r.name]]} for r in runs]}


def launch(runs: Sequence[Run], workdir: str, settings: LaunchSettings,
           record: Mapping[str, Any] | None = None) -> Outcome:
  """Runs (or resumes) ``runs`` as tasks; ``record`` is kept in ``launch.json`` for a rebuild."""
  split = {r.name: tasks_lib.split(r.config, r.workdir, r.name, settings.fold_groups)
           for r in runs}
  all_tasks = [t for r in runs for t in split[r.name]]
  os.makedirs(workdir, exist_ok=True)
  results.write_json(os.path.join(workdir, PLAN_FILE),
                     _plan_document(runs, split, dict(record or {})))
  pending = [t for t in all_tasks if not tasks_lib.is_finished(t)]
  logging.info('%d task(s), %d unfinished, executor %s', len(all_tasks), len(pending),
               settings.executor)
  job_id = None
  if settings.in_process:
    failures = executors.run_here(pending, keep_going=settings.keep_going)
  elif settings.executor == 'local':
    failures = executors.run_pool(pending, settings.workers, os.path.join(workdir, LOGS_DIR),
                                  keep_going=settings.keep_going)
  else:
    failures, job_id = _on_slurm(pending, workdir, settings)
    if not settings.wait:
      return Outcome(all_tasks, failures, {}, job_id)
  if failures and not settings.keep_going:
    raise TasksFailed(f'{len(failures)} task(s) failed (rerun the command to resume them):\n  '
                      + '\n  '.join(failures))
  return Outcome(all_tasks, failures, _gather_runs(runs, split), job_id)


def _on_slurm(pending: Sequence[Task], workdir: str,
              settings: LaunchSettings) -> tuple[list[str], str | None]:
  why = executors.slurm_available()
  if why:
    raise ConfigError(f'--executor=slurm: SLURM cannot take jobs here ({why}).')
  jobs_path = os.path.join(workdir, JOBS_FILE)
  earlier = results.read_json(jobs_path, 'the submitted jobs') if os.path.exists(jobs_path) else {}
  queued = executors.queued_jobs()
  still = {name for name, job in earlier.items() if job in queued}
  if still:
    logging.info('%d task(s) still queued from an earlier submission: %s', len(still),
                 ', '.join(sorted(still)))
  submit = [t for t in pending if t.name not in still]
  array = None
  if submit:
    array = executors.SlurmArray.submit(submit, os.path.join(workdir, 'slurm'), settings.slurm,
                                        name=os.path.basename(os.path.abspath(workdir)))
    earlier.update({t.name: str(j.job_id) for t, j in zip(array.tasks, array.jobs)})
    results.write_json(jobs_path, earlier)
    logging.info('submitted %d task(s) as SLURM array %s (logs in %s)', len(submit),
                 array.array_id, os.path.join(workdir, 'slurm'))
  if not settings.wait:
    return [], array.array_id if array else None
  failures = array.wait() if array else []
  if still:  # Submitted by another command: wait for them too, judged by their workdirs.
    executors.wait_for_jobs({earlier[n] for n in still})
    failures += [f'{t.name}: unfinished after its earlier job {earlier[t.name]} ended'
                 for t in pending if t.name in still and not tasks_lib.is_finished(t)]
  return failures, array.array_id if array else None


def read_plan(workdir: str) -> tuple[dict[str, Any], list[Run], dict[str, list[Task]]]:
  """``launch.json`` of ``workdir``: the record, the runs and their tasks."""
  path = os.path.join(workdir, PLAN_FILE)
  document = results.read_json(path, 'the launch plan')
  runs, split = [], {}
  for entry in document['runs']:
    config = ml_collections.ConfigDict(entry['config'])
    labels = {k: v for k, v in entry.items() if k not in ('name', 'workdir', 'config', 'tasks')}
    run = Run(entry['name'], entry['workdir'], config, labels)
    runs.append(run)
    split[run.name] = []
    for t in entry['tasks']:
      task_config = ml_collections.ConfigDict(entry['config'])
      task_config.protocol.folds = None if t['folds'] is None else tuple(t['folds'])
      split[run.name].append(Task(t['name'], t['workdir'], task_config.to_dict()))
  record = {k: v for k, v in document.items() if k != 'runs'}
  return record, runs, split


def gather_plan(workdir: str) -> tuple[dict[str, Any], list[Run], dict[str, list[str]]]:
  """Gathers every run of ``workdir``'s launch from whatever tasks have finished."""
  record, runs, split = read_plan(workdir)
  return record, runs, _gather_runs(runs, split)


def _gather_runs(runs: Sequence[Run], split: Mapping[str, list[Task]]) -> dict[str, list[str]]:
  """`tasks.gather` of every run: per run, what is still missing."""
  return {r.name: tasks_lib.gather(r.config, r.workdir, split[r.name]) for r in runs}
