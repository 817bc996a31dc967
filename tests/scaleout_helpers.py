"""The scale-out tests' shared parts: the tiny suite and run as commands, what to compare."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.cli_helpers import ROOT, TIMINGS, cli_env, main_command, read_rows

# What differs between the rows of one run made whole and made of tasks or processes: the
# machine's measurements, the fold group a task ran (and so the config's hash), the device split.
NOT_COMPARED = TIMINGS + ('inference_seconds_per_decision', 'protocol_folds', 'provenance',
                          'num_cpu_devices')


def by_pair(rows):
  return {(r['fold'], r['seed']): r for r in rows}


# A network big enough that its training lasts some seconds per task (test_slurm.py kills
# tasks mid-training), with a checkpoint every epoch of 7 steps.
MODEL_ARGS = ('--config.model.features=48,48,48,96,96,96',
              '--config.model.kernel_sizes=3,3,3,3,3,3', '--config.model.strides=1,1,2,1,1,1',
              '--config.train.batch_size=32', '--config.train.frame_stride=1',
              '--config.checkpoint.every_steps=7')
SUITE_ARGS = ('--config=experiments/configs/compare_models.py:synthetic_hdsemg/tiny',
              '--config.protocol.subjects=1,2', '--config.protocol.sessions=1',
              '--config.seeds=0,1', '--config.train.epochs=20', *MODEL_ARGS,
              '--config.eval.vote_windows=1,5,150',
              '--config.suite.models=all_convnet,lda',
              '--config.suite.protocols=intra_session')


def suite_command(*args: str) -> list[str]:
  return [sys.executable, '-m', 'experiments.compare_models', *SUITE_ARGS, *args]


def suite_table(workdir) -> str:
  """comparison.md without its cost table (times and memory differ between runs)."""
  return (workdir / 'comparison.md').read_text().split('## Cost')[0]


def suite_rows(workdir) -> dict:
  """Every run's rows by (protocol, model) and (fold, seed), without NOT_COMPARED."""
  out = {}
  for protocol in ('intra_session',):
    for model in ('all_convnet', 'lda'):
      rows = read_rows(workdir / protocol / model, NOT_COMPARED)
      pairs = by_pair(rows)
      assert len(pairs) == len(rows), f'{protocol}/{model}: a (fold, seed) pair twice'
      out[(protocol, model)] = pairs
  return out


def run_serial_suite(tiny_data_dir, workdir):
  """The tiny suite run one task after another in one process: the reference."""
  done = subprocess.run(suite_command(f'--config.dataset.data_dir={tiny_data_dir}',
                                      f'--workdir={workdir}'),
                        cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  return workdir


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


RUN_ARGS = ('--config.parallel=sharding', '--config.protocol.subjects=1', '--config.seeds=0,1',
            '--config.train.epochs=8', *MODEL_ARGS)


def run_one_process(tiny_data_dir, workdir):
  """The tiny run on one process with 4 CPU devices: what 2 processes x 2 devices must give."""
  done = subprocess.run(main_command(*RUN_ARGS, '--config.num_cpu_devices=4',
                                     f'--config.dataset.data_dir={tiny_data_dir}',
                                     f'--workdir={workdir}'),
                        cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  return by_pair(read_rows(workdir, NOT_COMPARED))
