"""Data-parallel training (pmap, sharding), seed-parallel training and the device settings.

The checks that need several devices run in subprocesses on fake CPU devices
(XLA splits the CPU only before JAX starts): `tests/parallel_worker.py` for the
library, ``python -m experiments.main --config.num_cpu_devices=N`` for the CLI.
"""

import json
import os
import subprocess
import sys

import ml_collections
import pytest

from hdsemg_jax import experiment, runtime
from hdsemg_jax.training import parallel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, 'tests', 'parallel_worker.py')
TINY = 'experiments/configs/tiny.py'


def _env(**extra):
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', **extra}
  for key in ('HDSEMG_FAULT', 'XLA_FLAGS', 'JAX_COORDINATOR_ADDRESS'):
    if key not in extra:
      env.pop(key, None)
  return env


def _worker(num_devices, *args, **env):
  proc = subprocess.run([sys.executable, WORKER, str(num_devices), *map(str, args)], cwd=ROOT,
                        capture_output=True, text=True, timeout=600, env=_env(**env))
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-5000:]
  return proc.stdout


def _main(data_dir, workdir, *args, fault=None):
  cmd = [sys.executable, '-m', 'experiments.main', f'--config={TINY}',
         f'--config.dataset.data_dir={data_dir}', f'--workdir={workdir}', *args]
  env = _env(HDSEMG_FAULT=fault) if fault else _env()
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def _rows(workdir):
  rows = [json.loads(line) for line in (workdir / 'results.jsonl').read_text().splitlines()]
  for r in rows:
    assert r.pop('train_seconds') >= 0
  return rows


def test_modes_agree_and_seed_parallel_equals_seeds_in_turn_on_four_devices():
  assert 'modes agree' in _worker(4, 'modes')


def test_experiment_compiles_the_train_step_once_per_fold_and_phase(tiny_data_dir, tmp_path):
  out = _worker(4, 'experiment', tiny_data_dir, WORKDIR=str(tmp_path))
  assert 'compiled once per phase' in out


def test_batches_that_do_not_divide_by_the_devices_are_named_errors(tiny_data_dir, tmp_path):
  proc = _main(tiny_data_dir, tmp_path / 'a', '--config.num_cpu_devices=3',
               '--config.parallel=pmap')
  assert proc.returncode != 0
  assert 'train.batch_size=32 does not divide by the 3 devices of parallel=pmap' in proc.stderr
  # parallel=auto is sharding on 3 devices; the eval batch must divide too.
  proc = _main(tiny_data_dir, tmp_path / 'b', '--config.num_cpu_devices=3',
               '--config.train.batch_size=33')
  assert proc.returncode != 0
  assert 'eval.batch_size=64 does not divide by the 3 devices of parallel=sharding' in proc.stderr


def test_seed_parallel_sharded_run_resumes_and_records_its_device_settings(tiny_data_dir,
                                                                           tmp_path):
  # Subject 1: one fold of 7 steps per epoch, 14 in all; a checkpoint every 3 steps.
  args = ('--config.num_cpu_devices=2', '--config.seed_parallel=true',
          '--config.protocol.subjects=1', '--config.checkpoint.every_steps=3')
  proc = _main(tiny_data_dir, tmp_path / 'ref', *args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  reference = _rows(tmp_path / 'ref')
  assert [r['seed'] for r in reference] == [0, 1]
  for r in reference:
    assert (r['parallel'], r['num_devices'], r['num_cpu_devices'], r['seed_parallel']) == (
        'sharding', 2, 2, True)
    assert r['provenance']['device_count'] == 2
  config = json.loads((tmp_path / 'ref' / 'config.json').read_text())
  assert (config['parallel'], config['num_cpu_devices']) == ('sharding', '2')
  assert (tmp_path / 'ref' / 'checkpoints' / 'S01-s1' / 'seeds_0-1').is_dir()

  workdir = tmp_path / 'run'
  proc = _main(tiny_data_dir, workdir, *args, fault='after_checkpoint:2')
  assert proc.returncode == -9, proc.stderr[-3000:]
  proc = _main(tiny_data_dir, workdir, *args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'fold S01-s1 seeds 0,1: resumed from checkpoint at step 6' in proc.stderr
  assert _rows(workdir) == reference

  # Another device split resolves to other values: refused like any other config change.
  proc = _main(tiny_data_dir, workdir, *args[1:], '--config.num_cpu_devices=1')
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
  config = ml_collections.ConfigDict(dict(parallel='auto', num_cpu_devices='auto',
                                          seed_parallel=False))
  settings = runtime.configure_devices(config)
  assert (settings.parallel, settings.num_cpu_devices, settings.num_devices) == ('none', 1, 1)
  assert (config.parallel, config.num_cpu_devices) == ('none', '1')
  runtime.configure_devices(config)  # Again, with the resolved values: the same.
  with pytest.raises(ValueError, match='num_cpu_devices=4, but JAX has already started'):
    runtime.configure_devices(ml_collections.ConfigDict(dict(num_cpu_devices='4')))
  with pytest.raises(ValueError, match="num_cpu_devices='two' must be 'auto'"):
    runtime.configure_devices(ml_collections.ConfigDict(dict(num_cpu_devices='two')))


def test_auto_cpu_devices_and_multi_host_detection(monkeypatch):
  for key in ('JAX_COORDINATOR_ADDRESS', 'TPU_WORKER_HOSTNAMES', 'SLURM_NTASKS',
              'OMPI_COMM_WORLD_SIZE'):
    monkeypatch.delenv(key, raising=False)
  assert not runtime.multi_host_env()
  monkeypatch.setenv('TPU_WORKER_HOSTNAMES', 'localhost')  # A single-host TPU (Colab).
  assert not runtime.multi_host_env()
  monkeypatch.setenv('TPU_WORKER_HOSTNAMES', 'w-0,w-1')  # A pod slice.
  assert runtime.multi_host_env()
  monkeypatch.delenv('TPU_WORKER_HOSTNAMES')
  monkeypatch.setenv('JAX_COORDINATOR_ADDRESS', 'localhost:1234')
  assert runtime.multi_host_env()


def test_workdirs_from_before_the_device_keys_still_resume():
  stored = {'seeds': [0], 'train': {'epochs': 2}}
  now = {**stored, 'parallel': 'none', 'num_cpu_devices': '1', 'seed_parallel': False}
  assert experiment.config_differences(stored, now) == []
  assert experiment.config_differences(stored, {**now, 'parallel': 'sharding'}) == [
      'parallel: (absent) -> "sharding"']


def test_two_processes_train_as_one_program_of_four_devices():
  # Multi-host readiness: jax.distributed over two local CPU processes of 2 devices each.
  import socket
  with socket.socket() as s:
    s.bind(('localhost', 0))
    port = s.getsockname()[1]
  procs = [subprocess.Popen(
      [sys.executable, WORKER, '2', 'multihost'], cwd=ROOT, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True,
      env=_env(JAX_COORDINATOR_ADDRESS=f'localhost:{port}', JAX_NUM_PROCESSES='2',
               JAX_PROCESS_ID=str(i))) for i in (0, 1)]
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, out[-2000:] + err[-5000:]
  lines = [out.strip().splitlines()[-1] for out, _ in outs]
  assert lines[0].startswith('process 0: modes agree') and lines[1].startswith('process 1:')
  assert lines[0].split('|params|')[1] == lines[1].split('|params|')[1]  # The same model on both.
