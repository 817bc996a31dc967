"""Runs as tasks (hdsemg_jax.run.tasks, .launch, .executors) on this machine: fold groups,
gathering, the local worker pool (experiments.main --workers), the rebuild from launch.json,
and one run over two processes with an explicit coordinator. The SLURM half (the suite as
a job array, srun) is tests/test_slurm.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hdsemg_jax.config import ConfigError
from hdsemg_jax.run import executors, launch, tasks
from tests.cli_helpers import ROOT, cli_env, main_command, read_rows
from tests.scaleout_helpers import NOT_COMPARED, RUN_ARGS, by_pair, free_port



def _tiny_config(data_dir, **overrides):
  from experiments.configs import tiny
  config = tiny.get_config()
  config.dataset.data_dir = data_dir
  for key, value in overrides.items():
    section, name = key.split('__')
    config[section][name] = value
  return config


def test_fold_groups_are_dealt_round_robin_in_order():
  assert tasks.group_folds(['a', 'b', 'c', 'd', 'e'], 2) == [('a', 'c', 'e'), ('b', 'd')]
  assert tasks.group_folds(['a', 'b'], 5) == [('a',), ('b',)]
  assert tasks.group_folds(['a', 'b'], 1) == [('a', 'b')]
  with pytest.raises(ConfigError, match='fold_groups=0'):
    tasks.group_folds(['a'], 0)


def test_launch_and_slurm_settings_refuse_bad_values_by_name():
  for kwargs, message in ((dict(executor='cloud'), '--executor'), (dict(workers=0), '--workers'),
                          (dict(fold_groups=0), '--fold_groups'),
                          (dict(executor='slurm', workers=2), '--workers is for')):
    with pytest.raises(ConfigError, match=message):
      launch.LaunchSettings(**kwargs)
  for kwargs, key in ((dict(time_min=0), 'slurm.time_min'), (dict(mem_gb=0), 'slurm.mem_gb'),
                      (dict(gpus_per_task=-1), 'slurm.gpus_per_task'),
                      (dict(array_parallelism=0), 'slurm.array_parallelism')):
    with pytest.raises(ConfigError, match=key):
      executors.SlurmSettings(**kwargs)


def test_pool_workers_get_one_gpu_each_and_share_memory_when_packed():
  assert executors.worker_environment(0, 2, []) == {}  # CPU: nothing to set.
  assert executors.worker_environment(1, 2, ['0', '1']) == {'CUDA_VISIBLE_DEVICES': '1'}
  packed = [executors.worker_environment(i, 4, ['0', '1']) for i in range(4)]
  assert [e['CUDA_VISIBLE_DEVICES'] for e in packed] == ['0', '1', '0', '1']
  assert all(e['XLA_PYTHON_CLIENT_PREALLOCATE'] == 'false' and
             e['XLA_PYTHON_CLIENT_MEM_FRACTION'] == '0.450' for e in packed)
  assert executors.visible_gpus({'CUDA_VISIBLE_DEVICES': '2,3'}) == ['2', '3']
  assert executors.visible_gpus({'CUDA_VISIBLE_DEVICES': ''}) == []


def test_a_partial_slurm_environment_is_refused_with_what_to_do():
  from hdsemg_jax import process_setup
  why = process_setup.partial_slurm_environment({'SLURM_JOB_ID': '7', 'SLURM_NTASKS': '2'})
  assert 'SLURM_NTASKS=2' in why and 'srun' in why
  for fine in ({'SLURM_NTASKS': '1'}, {}, {'SLURM_NTASKS': '2', 'SLURM_STEP_NODELIST': 'vm'},
               {'SLURM_NTASKS': '2', 'JAX_COORDINATOR_ADDRESS': '127.0.0.1:1234'}):
    assert process_setup.partial_slurm_environment(fine) is None


def test_a_split_run_has_one_task_per_group_each_with_its_folds(tiny_data_dir, tmp_path):
  config = _tiny_config(tiny_data_dir)
  whole = tasks.split(config, str(tmp_path), 'run', fold_groups=1)
  assert [(t.workdir, t.folds) for t in whole] == [(str(tmp_path), None)]
  parts = tasks.split(config, str(tmp_path), 'run', fold_groups=2)
  assert [(t.name, t.folds) for t in parts] == [('run/folds-1of2', ('S01-s1',)),
                                                ('run/folds-2of2', ('S02-s1',))]
  assert parts[0].workdir == os.path.join(str(tmp_path), 'tasks', 'folds-1of2')
  assert all(t.seeds == (0, 1) for t in parts)
  # More groups than folds: one task per fold.
  assert len(tasks.split(config, str(tmp_path), 'run', fold_groups=9)) == 2


@pytest.mark.slow
def test_a_run_split_into_fold_groups_gathers_into_the_rows_of_the_whole_run(tiny_data_dir,
                                                                             tmp_path):
  from hdsemg_jax.run import experiment
  config = _tiny_config(tiny_data_dir)
  whole_dir, split_dir = tmp_path / 'whole', tmp_path / 'split'
  experiment.train_and_evaluate(config, str(whole_dir))
  run = launch.Run('run', str(split_dir), config)
  settings = launch.LaunchSettings(fold_groups=2)
  parts = tasks.split(config, str(split_dir), 'run', 2)
  # One group finished, the other not: gathering names what is missing and writes no report.
  tasks.run_task(parts[0])
  assert tasks.gather(config, str(split_dir), parts) == ['S02-s1 seed 0', 'S02-s1 seed 1']
  assert not os.path.exists(split_dir / 'results.md')
  outcome = launch.launch([run], str(split_dir), settings)
  assert outcome.complete and len(outcome.tasks) == 2
  assert (split_dir / 'results.md').read_text() == (whole_dir / 'results.md').read_text()
  whole = by_pair(read_rows(whole_dir, NOT_COMPARED))
  gathered = by_pair(read_rows(split_dir, NOT_COMPARED))
  assert gathered == whole
  # A relaunch runs nothing and adds no row.
  before = (split_dir / 'results.jsonl').read_text()
  assert launch.launch([run], str(split_dir), settings).complete
  assert (split_dir / 'results.jsonl').read_text() == before
  plan = json.loads((split_dir / launch.PLAN_FILE).read_text())
  assert [t['folds'] for t in plan['runs'][0]['tasks']] == [['S01-s1'], ['S02-s1']]


@pytest.mark.slow
def test_two_processes_with_a_localhost_coordinator_give_the_one_process_rows(
    tiny_data_dir, one_process_rows, tmp_path):
  port = free_port()
  procs = [subprocess.Popen(
      main_command(*RUN_ARGS, '--config.num_cpu_devices=2',
                   f'--config.dataset.data_dir={tiny_data_dir}', f'--workdir={tmp_path}'),
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      env=cli_env(JAX_COORDINATOR_ADDRESS=f'127.0.0.1:{port}', JAX_NUM_PROCESSES='2',
                  JAX_PROCESS_ID=str(i))) for i in range(2)]
  outputs = [p.communicate(timeout=600)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
  assert 'on 4 device(s) (2 process(es))' in outputs[0]
  assert by_pair(read_rows(tmp_path, NOT_COMPARED)) == one_process_rows
  # Both processes saved every checkpoint together; process 0 alone wrote rows and models.
  assert sorted(os.listdir(tmp_path / 'checkpoints' / 'S01-s1')) == ['seed_0', 'seed_1']
  assert len(read_rows(tmp_path)) == 2


@pytest.mark.slow
def test_experiments_main_on_two_workers_in_fold_groups_writes_the_whole_runs_report(
    run_main, tmp_path):
  whole, split = tmp_path / 'whole', tmp_path / 'split'
  assert run_main(workdir=whole).returncode == 0
  done = run_main('--workers=2', '--fold_groups=2', workdir=split)
  assert done.returncode == 0, done.stderr[-3000:]
  assert sorted(os.listdir(split / 'tasks')) == ['folds-1of2', 'folds-2of2']
  assert (split / 'results.md').read_text() == (whole / 'results.md').read_text()
  assert by_pair(read_rows(split, NOT_COMPARED)) == by_pair(read_rows(whole, NOT_COMPARED))
  # The report rebuilds from launch.json (here: the gathered run's own report).
  os.remove(split / 'results.md')
  rebuilt = subprocess.run([sys.executable, '-m', 'experiments.report', '--combine', str(split)],
                           cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
  assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
  assert (split / 'results.md').read_text() == (whole / 'results.md').read_text()
