"""Every value a run would refuse is refused by resolving: one line naming the key, exit 2,
nothing written; a run whose training diverges stops with a named error and no row."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from experiments.configs import tiny
from hdsemg_jax.config import ConfigError
from hdsemg_jax.run import experiment, setup as run_setup
from hdsemg_jax.training import trainer
from tests.cli_helpers import ROOT, cli_env, main_command

# (override as the command line gives it, the key the message must start with, its value)
BAD = [
    ('train.epochs=0', 'train.epochs=0', ('train', 'epochs', 0)),
    ('train.epochs=-1', 'train.epochs=-1', ('train', 'epochs', -1)),
    ('train.batch_size=0', 'train.batch_size=0', ('train', 'batch_size', 0)),
    ('train.learning_rate=-1', 'train.learning_rate=-1', ('train', 'learning_rate', -1.0)),
    ('train.frame_stride=0', 'train.frame_stride=0', ('train', 'frame_stride', 0)),
    ('train.lr_schedule=linear', "train.lr_schedule='linear' is not known (known: step, cosine)",
     ('train', 'lr_schedule', 'linear')),
    ('eval.vote_windows=0', 'eval.vote_windows element=0', ('eval', 'vote_windows', (0,))),
    ('eval.batch_size=0', 'eval.batch_size=0', ('eval', 'batch_size', 0)),
    ('eval.online_chunk=0', 'eval.online_chunk=0', ('eval', 'online_chunk', 0)),
    ('eval.shifts=1-0', "eval.shifts: '1-0' is not a shift", ('eval', 'shifts', ('1-0',))),
    ('dataset.filters=bandpass:20', "dataset.filters: bad filter spec 'bandpass:20'",
     ('dataset', 'filters', ('bandpass:20',))),
    ('model.name=resnet', "model.name='resnet' is not known (known: all_convnet, geng_convnet, "
     'lda, logreg, linear_svm, chance)', ('model', 'name', 'resnet')),
    ('train.batch_size=5000', 'train.batch_size=5000 is larger than the 240 training frames of '
     'fold S01-s1', ('train', 'batch_size', 5000)),
]


def _config(tiny_data_dir, group=None, key=None, value=None):
  config = tiny.get_config()
  config.dataset.data_dir = tiny_data_dir
  if group is not None:
    config[group][key] = value
  return config


@pytest.mark.parametrize('override, message, change', BAD, ids=[b[0] for b in BAD])
def test_resolve_refuses_and_the_run_writes_nothing(tiny_data_dir, tmp_path, override, message,
                                                     change):
  config = _config(tiny_data_dir, *change)
  with pytest.raises(ConfigError) as refused:
    run_setup.resolve(config)
  assert str(refused.value).startswith(message), str(refused.value)
  workdir = tmp_path / 'run'
  with pytest.raises(ConfigError):
    experiment.train_and_evaluate(config, str(workdir))
  assert not workdir.exists()


def test_no_seeds_and_repeated_seeds_are_refused(tiny_data_dir):
  for seeds, message in (((), 'seeds: give at least one seed'),
                         ((1, 1), 'seeds=(1, 1): a seed is repeated')):
    config = _config(tiny_data_dir)
    config.seeds = seeds
    with pytest.raises(ConfigError, match=re.escape(message)):
      run_setup.resolve(config)


def test_a_data_pool_with_a_missing_session_is_refused_by_name(tiny_trials):
  _, trials = tiny_trials
  protocol = run_setup.protocols.ProtocolSettings(name='inter_session')
  run_setup.check_complete(trials, protocol)  # The whole dataset: complete.
  sessions = sorted({t.session for t in trials})
  assert len(sessions) > 1
  lost = [t for t in trials if not (t.subject == 2 and t.session == sessions[-1])]
  with pytest.raises(ConfigError, match=f'subject 2 session {sessions[-1]} '):
    run_setup.check_complete(lost, protocol)
  # Leaving the session out of the pool is the way to run without it.
  run_setup.check_complete(lost, run_setup.protocols.ProtocolSettings(
      name='inter_session', sessions=tuple(sessions[:-1])))


def test_a_diverging_run_stops_with_a_named_error_and_writes_no_row(tiny_data_dir, tmp_path):
  config = _config(tiny_data_dir, 'train', 'learning_rate', 1e6)
  config.seeds = (0,)
  config.protocol.folds = ('S01-s1',)
  config.checkpoint.every_steps = 1
  workdir = tmp_path / 'run'
  with pytest.raises(trainer.TrainingDiverged) as diverged:
    experiment.train_and_evaluate(config, str(workdir))
  found = re.match(r'fold S01-s1 seed 0: training diverged: seed 0, epoch (\d+), step (\d+): '
                   r'the loss is (nan|inf)', str(diverged.value))
  assert found, str(diverged.value)
  assert not (workdir / 'results.jsonl').exists()
  # The checkpoints kept are of steps before the divergence, and none after it.
  error_step = int(found.group(2))
  checkpoints = workdir / 'checkpoints' / 'S01-s1' / 'seed_0'
  saved = sorted(int(p) for p in os.listdir(checkpoints) if p.isdigit()) if checkpoints.exists() \
      else []
  assert all(step < error_step for step in saved), (saved, error_step)


def test_rows_of_a_changed_config_are_marked_in_the_table(tiny_data_dir, tmp_path):
  config = _config(tiny_data_dir)
  config.seeds, config.train.epochs = (0,), 1
  config.protocol.folds = ('S01-s1',)
  experiment.train_and_evaluate(config, str(tmp_path))
  config.protocol.folds = ('S01-s1', 'S02-s1')
  config.train.epochs = 2
  with pytest.raises(ConfigError, match='holds a run of another config'):
    experiment.train_and_evaluate(config, str(tmp_path))
  experiment.train_and_evaluate(config, str(tmp_path), allow_config_change=True)
  table = (tmp_path / 'results.md').read_text()
  assert '**Rows of 2 different configs**' in table
  groups = table.split('compare them with care): ')[1].split('\n')[0].split('; ')
  assert [g.split(': ')[1] for g in groups] == ['S01-s1/seed 0', 'S02-s1/seed 0.']


# The command line: every listed case in a dry run; the first four also as a run.
CLI_CASES = [
    (['--config.train.epochs=0'], 'error: train.epochs=0: expected a whole number >= 1.', True),
    (['--config.eval.shifts=1-0'], "error: eval.shifts: '1-0' is not a shift", True),
    (['--config.model.name=resnet'], "error: model.name='resnet' is not known", True),
    (['--config.seeds='], 'error: seeds', True),
    (['--config.train.epochs=-1'], 'error: train.epochs=-1', False),
    (['--config.train.batch_size=0'], 'error: train.batch_size=0', False),
    (['--config.train.learning_rate=-1'], 'error: train.learning_rate=-1', False),
    (['--config.train.frame_stride=0'], 'error: train.frame_stride=0', False),
    (['--config.eval.vote_windows=0'], 'error: eval.vote_windows element=0', False),
    (['--config.eval.batch_size=0'], 'error: eval.batch_size=0', False),
    (['--config.eval.online_chunk=0'], 'error: eval.online_chunk=0', False),
]


@pytest.mark.slow
@pytest.mark.parametrize('args, message, also_run', CLI_CASES, ids=[c[0][0] for c in CLI_CASES])
def test_the_command_line_refuses_in_one_line_with_exit_2(tiny_data_dir, tmp_path, args,
                                                          message, also_run):
  for dry_run in (True, False)[:2 if also_run else 1]:
    workdir = tmp_path / f'run_{dry_run}'
    proc = subprocess.run(
        main_command(f'--config.dataset.data_dir={tiny_data_dir}', f'--workdir={workdir}',
                     *args, *(['--dry_run'] if dry_run else [])),
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=cli_env())
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if 'error' in line.lower()]
    assert len(errors) == 1 and errors[0].startswith(message), proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not workdir.exists()


@pytest.mark.slow
@pytest.mark.parametrize('signum, code, what', [(2, 130, 'interrupted (SIGINT)'),
                                                (15, 143, 'terminated (SIGTERM)')])
def test_a_signal_prints_one_line_saying_the_run_resumes(tiny_data_dir, tmp_path, signum, code,
                                                         what):
  import signal
  import time
  workdir = tmp_path / 'run'
  proc = subprocess.Popen(
      main_command(f'--config.dataset.data_dir={tiny_data_dir}', f'--workdir={workdir}',
                   '--config.train.epochs=2000'),
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
      # A shell's background job inherits SIGINT ignored; a user's Ctrl-C reaches a live one.
      preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  deadline = time.monotonic() + 240
  while not (workdir / 'config.json').exists() and time.monotonic() < deadline:
    time.sleep(0.2)
  time.sleep(1.0)
  proc.send_signal(signum)
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == code, stderr
  assert 'Traceback' not in stderr
  assert stderr.strip().splitlines()[-1] == (
      f'error: {what}: finished folds and seeds are kept; rerun the same command to resume.')
