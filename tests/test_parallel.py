"""Data-parallel training (pmap, sharding), seed-parallel training and the device settings.

The checks that need several devices run in subprocesses on fake CPU devices
(XLA splits the CPU only before JAX starts): `tests/parallel_worker.py` for the
library, ``python -m experiments.main --config.num_cpu_devices=N`` for the CLI.
"""

import json
import os
import subprocess
import sys
import types

import pytest

from tests.cli_helpers import ROOT, cli_env, read_rows
from hdsemg_jax import config as config_lib
from hdsemg_jax import process_setup
from hdsemg_jax.training import parallel

WORKER = os.path.join(ROOT, 'tests', 'parallel_worker.py')


def _worker(num_devices, *args, **env):
  proc = subprocess.run([sys.executable, WORKER, str(num_devices), *map(str, args)], cwd=ROOT,
                        capture_output=True, text=True, timeout=600, env=cli_env(**env))
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-5000:]
  return proc.stdout


@pytest.mark.slow
def test_modes_agree_and_seed_parallel_equals_seeds_in_turn_on_four_devices():
  assert 'modes agree' in _worker(4, 'modes')


@pytest.mark.slow
def test_experiment_compiles_the_train_step_once_per_fold_and_phase(tiny_data_dir, tmp_path):
  out = _worker(4, 'experiment', tiny_data_dir, WORKDIR=str(tmp_path))
  assert 'compiled once per phase' in out


@pytest.mark.slow
def test_batches_that_do_not_divide_by_the_devices_are_named_errors(run_main, tmp_path):
  proc = run_main('--config.num_cpu_devices=3', '--config.parallel=pmap', workdir=tmp_path / 'a')
  assert proc.returncode != 0
  assert 'train.batch_size=32 does not divide by the 3 devices of parallel=pmap' in proc.stderr
  # parallel=auto is sharding on 3 devices; the eval batch must divide too.
  proc = run_main('--config.num_cpu_devices=3', '--config.train.batch_size=33',
                  workdir=tmp_path / 'b')
  assert proc.returncode != 0
  assert 'eval.batch_size=64 does not divide by the 3 devices of parallel=sharding' in proc.stderr


@pytest.mark.slow
def test_seed_parallel_sharded_run_resumes_and_records_its_device_settings(run_main, tmp_path):
  # Subject 1: one fold of 7 steps per epoch, 14 in all; a checkpoint every 3 steps.
  args = ('--config.num_cpu_devices=2', '--config.seed_parallel=true',
          '--config.protocol.subjects=1', '--config.checkpoint.every_steps=3')
  proc = run_main(*args, workdir=tmp_path / 'ref')
  assert proc.returncode == 0, proc.stderr[-3000:]
  reference = read_rows(tmp_path / 'ref')
  assert [r['seed'] for r in reference] == [0, 1]
  for r in reference:
    assert (r['parallel'], r['num_devices'], r['num_cpu_devices'], r['seed_parallel']) == (
        'sharding', 2, 2, True)
    assert r['provenance']['device_count'] == 2
  config = json.loads((tmp_path / 'ref' / 'config.json').read_text())
  assert (config['parallel'], config['num_cpu_devices']) == ('sharding', '2')
  assert (tmp_path / 'ref' / 'checkpoints' / 'S01-s1' / 'seeds_0-1').is_dir()

  workdir = tmp_path / 'run'
  proc = run_main(*args, workdir=workdir, fault='after_checkpoint:2')
  assert proc.returncode == -9, proc.stderr[-3000:]
  proc = run_main(*args, workdir=workdir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'fold S01-s1 seeds 0,1: resumed from checkpoint at step 6' in proc.stderr
  assert read_rows(workdir) == reference

  # Another device split resolves to other values: refused like any other config change.
  proc = run_main(*args[1:], '--config.num_cpu_devices=1', workdir=workdir)
  assert proc.returncode != 0
  assert 'num_cpu_devices: "2" -> "1"' in proc.stderr
  assert 'parallel: "sharding" -> "none"' in proc.stderr


def test_parallel_modes_resolve_and_unknown_ones_are_named():
  assert parallel.resolve_mode('auto', 1) == 'none'
  assert parallel.resolve_mode('auto', 8) == 'sharding'
  assert parallel.resolve_mode('pmap', 1) == 'pmap'
  with pytest.raises(ValueError, match="parallel='dp' is not known"):
    parallel.resolve_mode('dp', 2)
  assert parallel.Plan.create('auto').mode == 'none'  # This process has one CPU device.


def test_device_settings_resolve_once_jax_has_started():
  settings = process_setup.configure_devices('auto', 'auto')
  assert (settings.parallel, settings.num_cpu_devices, settings.num_devices) == ('none', 1, 1)
  assert process_setup.configure_devices('none', '1') == settings  # Again: the same.
  with pytest.raises(ValueError, match='num_cpu_devices=4, but JAX has already started'):
    process_setup.configure_devices('auto', '4')
  with pytest.raises(ValueError, match="num_cpu_devices='two' must be 'auto'"):
    process_setup.configure_devices('auto', 'two')


def test_auto_num_cpu_devices_keeps_a_count_already_chosen(monkeypatch):
  # JAX's own config cannot change once it has started; a stand-in holds the value instead.
  chosen = types.SimpleNamespace(jax_num_cpu_devices=-1)
  monkeypatch.setattr(process_setup, 'jax', types.SimpleNamespace(config=chosen))
  monkeypatch.delenv('XLA_FLAGS', raising=False)
  assert process_setup.auto_num_cpu_devices() == 1
  monkeypatch.setenv('XLA_FLAGS', '--xla_cpu_foo=1 --xla_force_host_platform_device_count=6')
  assert process_setup.auto_num_cpu_devices() == 6
  chosen.jax_num_cpu_devices = 3
  assert process_setup.auto_num_cpu_devices() == 3  # Set in code: it wins over the flag.


def test_multi_host_detection(monkeypatch):
  for key in ('JAX_COORDINATOR_ADDRESS', 'TPU_WORKER_HOSTNAMES', 'SLURM_NTASKS',
              'OMPI_COMM_WORLD_SIZE'):
    monkeypatch.delenv(key, raising=False)
  assert not process_setup.multi_host_env()
  monkeypatch.setenv('TPU_WORKER_HOSTNAMES', 'localhost')  # A single-host TPU (Colab).
  assert not process_setup.multi_host_env()
  monkeypatch.setenv('TPU_WORKER_HOSTNAMES', 'w-0,w-1')  # A pod slice.
  assert process_setup.multi_host_env()
  monkeypatch.delenv('TPU_WORKER_HOSTNAMES')
  monkeypatch.setenv('JAX_COORDINATOR_ADDRESS', 'localhost:1234')
  assert process_setup.multi_host_env()


def test_workdirs_from_before_the_device_keys_still_resume():
  stored = {'seeds': [0], 'train': {'epochs': 6}}
  now = config_lib.default_config().to_dict()
  now.update(parallel='none', num_cpu_devices='1', seed_parallel=False)
  # Classical models then had fixed settings: a workdir from before selection is read so.
  now['model']['selection'].update(inner_folds=0, inner_unit='trial')
  assert config_lib.differences(stored, now) == []
  assert config_lib.differences(stored, {**now, 'parallel': 'sharding'}) == [
      'parallel: "none" -> "sharding"']
  now['model']['selection']['inner_folds'] = 3
  assert config_lib.differences(stored, now) == ['model.selection.inner_folds: 0 -> 3']


@pytest.mark.slow
def test_two_processes_train_as_one_program_of_four_devices():
  # Multi-host readiness: jax.distributed over two local CPU processes of 2 devices each.
  import socket
  with socket.socket() as s:
    s.bind(('localhost', 0))
    port = s.getsockname()[1]
  procs = [subprocess.Popen(
      [sys.executable, WORKER, '2', 'multihost'], cwd=ROOT, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True,
      env=cli_env(JAX_COORDINATOR_ADDRESS=f'localhost:{port}', JAX_NUM_PROCESSES='2',
               JAX_PROCESS_ID=str(i))) for i in (0, 1)]
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, out[-2000:] + err[-5000:]
  lines = [out.strip().splitlines()[-1] for out, _ in outs]
  assert lines[0].startswith('process 0: modes agree') and lines[1].startswith('process 1:')
  assert lines[0].split('|params|')[1] == lines[1].split('|params|')[1]  # The same model on both.
