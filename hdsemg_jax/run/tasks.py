"""A run as tasks: a locked experiment config plus the folds and seeds it covers.

A task is what one worker (a local process, a SLURM array element) runs: an
ordinary experiment (`experiment.train_and_evaluate`) in its own workdir, with
that workdir's lock, resume and torn-row repair. Tasks share no file, so any
number run at once on one file system.

A run of few folds is one task whose workdir is the run's. A run split into fold
groups (``fold_groups > 1``) has one task per group, the group set as the task's
``protocol.folds``, in ``<run workdir>/tasks/folds-<k>of<n>``; `gather` then
copies their rows into the run's own ``results.jsonl`` and writes the run's
report there, so the run's workdir reads as if one process had run it (rows of a
task record their group as ``protocol_folds``).

A task is finished when its workdir holds the run's table (``results.md``,
written last); resubmitting runs only the unfinished ones, each from its latest
checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import ml_collections
from absl import logging

from hdsemg_jax import workdir as workdir_lib
from hdsemg_jax.config import ConfigError
from hdsemg_jax.reporting import results
from hdsemg_jax.run import lock as run_lock

TASKS_DIR = 'tasks'


@dataclasses.dataclass(frozen=True)
class Task:
  """One unit of work: an experiment config (a plain dict: it crosses processes) and a workdir."""
  name: str  # e.g. 'intra_session/all_convnet' or '.../folds-2of3'.
  workdir: str
  config: dict[str, Any]

  @property
  def folds(self) -> tuple[str, ...] | None:
    folds = self.config['protocol']['folds']
    return None if folds is None else tuple(folds)

  @property
  def seeds(self) -> tuple[int, ...]:
    return tuple(self.config['seeds'])

  def config_dict(self) -> ml_collections.ConfigDict:
    """The task's experiment config, locked."""
    config = ml_collections.ConfigDict(self.config)
    config.lock()
    return config


def is_finished(task: Task) -> bool:
  """Whether ``task``'s run wrote its table (the last file a finished run writes)."""
  return os.path.isfile(os.path.join(task.workdir, workdir_lib.TABLE_FILE))


def group_folds(fold_ids: Sequence[str], groups: int) -> list[tuple[str, ...]]:
  """``fold_ids`` dealt round-robin into at most ``groups`` non-empty groups (kept in order)."""
  if groups < 1:
    raise ConfigError(f'fold_groups={groups} must be at least 1.')
  dealt = [tuple(fold_ids[k::groups]) for k in range(min(groups, len(fold_ids)))]
  return [g for g in dealt if g]


def split(config: ml_collections.ConfigDict, workdir: str, name: str,
          fold_groups: int = 1) -> list[Task]:
  """The tasks of one run: itself, or one per group of its folds (``fold_groups``).

  Grouping reads the dataset's trial list to know the folds (a function of the
  config and the data, like the folds themselves).
  """
  from hdsemg_jax.run import setup as run_setup  # Reads data: not at import (see launch_flags).
  base = config.to_dict()
  if fold_groups == 1:
    return [Task(name=name, workdir=workdir, config=base)]
  groups = group_folds(run_setup.fold_ids(config), fold_groups)
  if len(groups) == 1:
    return [Task(name=name, workdir=workdir, config=base)]
  tasks = []
  for k, group in enumerate(groups, 1):
    part = f'folds-{k}of{len(groups)}'
    task_config = ml_collections.ConfigDict(base)
    task_config.protocol.folds = group
    tasks.append(Task(name=f'{name}/{part}', workdir=os.path.join(workdir, TASKS_DIR, part),
                      config=task_config.to_dict()))
  return tasks


def run_task(task: Task) -> str:
  """Runs (or resumes) ``task`` in this process; returns its workdir.

  What a worker calls: a local pool process or a SLURM job (through submitit,
  which pickles ``task``).
  """
  from hdsemg_jax import process_setup
  from hdsemg_jax.run import experiment
  process_setup.enable_compilation_cache()
  process_setup.quiet_library_logs()
  logging.set_verbosity(logging.INFO)
  logging.info('task %s -> %s', task.name, task.workdir)
  experiment.train_and_evaluate(task.config_dict(), task.workdir)
  return task.workdir


def gather(config: ml_collections.ConfigDict, workdir: str, tasks: Sequence[Task]) -> list[str]:
  """Copies the rows of a split run's finished ``tasks`` into ``workdir``'s results.

  Returns the (fold, seed) pairs still missing (``'<fold> seed <s>'``); when none
  is, the run's report (table, figures, results.json) is written into ``workdir``
  by `experiment.run`, which then trains nothing. A run of one task (whose workdir
  is the run's) has nothing to gather.
  """
  from hdsemg_jax.run import experiment
  from hdsemg_jax.run import setup as run_setup
  if all(os.path.abspath(t.workdir) == os.path.abspath(workdir) for t in tasks):
    return [] if all(is_finished(t) for t in tasks) else [f'{t.name}: unfinished' for t in tasks]
  setup = run_setup.resolve(config)
  wanted = [(f.id, s) for f in setup.folds for s in setup.settings.run_seeds]
  found: dict[tuple[str, int], dict[str, Any]] = {}
  for task in tasks:
    if os.path.isdir(task.workdir):
      found.update(workdir_lib.finished_rows(task.workdir))
  with run_lock.hold(workdir):
    done = workdir_lib.open_run(workdir, setup.config.to_dict())
    for key in wanted:
      if key not in done and key in found:
        results.append_row(workdir, found[key])
        done[key] = found[key]
  missing = [f'{fold} seed {seed}' for fold, seed in wanted if (fold, seed) not in done]
  if missing:
    logging.warning('%s: %d of %d (fold, seed) pairs are not finished yet: %s', workdir,
                    len(missing), len(wanted), ', '.join(missing))
    return missing
  experiment.run(setup, workdir)
  return []
