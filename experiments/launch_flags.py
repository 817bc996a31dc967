"""The command-line flags that choose where runs execute, shared by `experiments.main` and
`experiments.compare_models`.

  --executor=local|slurm   local: this machine; slurm: one SLURM job array (submitit)
  --workers=N              local: N tasks at once, each in its own process (one GPU each
                           where the host has several; see `hdsemg_jax.run.executors`)
  --fold_groups=N          split each run into N tasks by its folds
  --no_wait                slurm: submit, print the array's job id, return
  --slurm.partition=... --slurm.time_min=... --slurm.mem_gb=... --slurm.cpus_per_task=...
  --slurm.gpus_per_task=... --slurm.array_parallelism=... --slurm.requeue=...
"""

from __future__ import annotations

import dataclasses

import ml_collections
from absl import flags
from ml_collections import config_flags

from hdsemg_jax.run import executors, launch

_EXECUTOR = flags.DEFINE_enum('executor', 'local', list(executors.EXECUTORS),
                              'Where tasks run: local (this machine) or slurm (a job array).')
_WORKERS = flags.DEFINE_integer('workers', 1, 'With --executor=local: tasks at once, each in a '
                                'process of its own (1: one after another, in this process).')
_FOLD_GROUPS = flags.DEFINE_integer('fold_groups', 1, 'Tasks per run, each a group of its '
                                    'folds (round-robin), in <run workdir>/tasks/.')
_NO_WAIT = flags.DEFINE_bool('no_wait', False, 'With --executor=slurm: submit, print the job id '
                             'and return; rerun the command (or experiments.report --combine) '
                             'later to gather.')


def _slurm_defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dataclasses.asdict(executors.SlurmSettings()))


_SLURM = config_flags.DEFINE_config_dict('slurm', _slurm_defaults(),
                                         'SLURM resources per task (with --executor=slurm).',
                                         lock_config=True)


def settings(keep_going: bool = False) -> launch.LaunchSettings:
  """The flags as `launch.LaunchSettings` (a bad value: `ConfigError` naming the flag)."""
  return launch.LaunchSettings(
      executor=_EXECUTOR.value, workers=_WORKERS.value, fold_groups=_FOLD_GROUPS.value,
      wait=not _NO_WAIT.value, keep_going=keep_going,
      slurm=executors.SlurmSettings(**_SLURM.value.to_dict()))


def report_outcome(outcome: launch.Outcome) -> list[str]:
  """Lines that say what a launch left undone (empty when everything finished)."""
  lines = list(outcome.failures)
  for run, pairs in outcome.missing.items():
    if pairs:
      lines.append(f'{run}: {len(pairs)} (fold, seed) pair(s) unfinished: '
                   + ', '.join(pairs[:6]) + (' ...' if len(pairs) > 6 else ''))
  return lines
