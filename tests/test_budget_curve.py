"""The budget curve: accuracy against training frames seen, from a suite of budget variants."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from hdsemg_jax.reporting import budget, compare, results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(label, protocol, stride, schedule, accs, train_frames=1000, epochs=4, batch=64,
         name='all_convnet'):
  """A run with rows (fold, seed) -> accuracy at 1 and 150 frames."""
  rows = [{'fold': fold, 'seed': seed, 'num_train_frames': train_frames, 'train_seconds': 2.0,
           'decision_accuracy': {'1': a / 2, '150': a}}
          for (fold, seed), a in accs.items()]
  config = {'model': {'name': name}, 'protocol': {'name': protocol},
            'train': {'epochs': epochs, 'batch_size': batch, 'frame_stride': stride,
                      'lr_schedule': schedule}}
  return compare.Run(path='/x', label=label, config=config, rows=rows, protocol=protocol)


def test_points_count_whole_batches_and_average_seeds_then_folds():
  accs = {('A', 0): 0.8, ('A', 1): 0.9, ('B', 0): 0.6, ('B', 1): 0.6}
  runs = [_run('all_convnet@step-s8', 'intra_session', 8, 'step', accs, train_frames=1000),
          _run('all_convnet@step-s32', 'intra_session', 32, 'step', accs, train_frames=250),
          _run('all_convnet@cosine-s8', 'intra_session', 8, 'cosine', accs),
          _run('lda', 'intra_session', 8, 'step', accs, name='lda')]
  points = budget.budget_points(runs)
  assert [p.label for p in points] == ['all_convnet@cosine-s8', 'all_convnet@step-s32',
                                       'all_convnet@step-s8']  # No classical point.
  step32 = points[1]
  # 250 frames in batches of 64: 3 whole batches per epoch, 4 epochs.
  assert step32.frames_seen == 3 * 64 * 4 and points[2].frames_seen == 15 * 64 * 4
  mean, std = step32.values['decision_accuracy/150']
  fold_means = [0.85, 0.6]
  assert mean == pytest.approx(np.mean(fold_means))
  assert std == pytest.approx(np.std(fold_means, ddof=1))
  assert step32.values['decision_accuracy/1'][0] == pytest.approx(np.mean(fold_means) / 2)
  assert step32.folds == 2 and step32.schedule == 'step' and step32.frame_stride == 32
  table = budget.budget_markdown(points)
  assert '| intra_session (2) | step | 32 | 4 | 768 | 2.0 | 36.3 ± 8.8 | 72.5 ± 17.7 |' in table


def test_the_report_is_written_whole(tmp_path):
  accs = {('A', 0): 0.8, ('B', 0): 0.7}
  points = budget.budget_points([_run('a@step-s8', 'leave_one_subject_out', 8, 'step', accs),
                                 _run('a@step-s4', 'leave_one_subject_out', 4, 'step', accs,
                                      train_frames=2000)])
  paths = budget.write_budget_report(points, str(tmp_path), 'curve')
  assert sorted(os.listdir(tmp_path)) == ['budget_curve.md', 'budget_curve.png']
  assert open(paths['markdown']).read().startswith('# curve')
  with pytest.raises(ValueError, match='no finished network runs'):
    budget.write_budget_report([], str(tmp_path))


def test_a_budget_suite_on_tiny_data_trains_each_budget(tiny_data_dir, tmp_path):
  from experiments import suite as suite_lib
  from experiments.configs import budget_curve, tiny
  config = budget_curve.get_config('synthetic_hdsemg/tiny')
  config.dataset.data_dir = tiny_data_dir
  config.protocol.subjects, config.protocol.sessions = (1,), (1,)
  config.train.epochs, config.train.batch_size = 1, 32
  config.eval.vote_windows = (1, 5)
  config.suite.protocols = ('intra_session',)
  config.suite.metric = 'decision_accuracy/5'
  for label in config.suite.models:
    config.suite.model_overrides[label].model = dict(tiny.TINY_MODEL)
  _, _, _, outcome = suite_lib.run_suite(config, str(tmp_path))
  assert outcome.complete
  specs = suite_lib.plan(config, str(tmp_path))
  runs = [dataclasses.replace(compare.load_run(s.workdir), label=s.label) for s in specs]
  points = {p.label: p for p in budget.budget_points(runs, ('decision_accuracy/5',))}
  assert set(points) == set(config.suite.models) == {
      'all_convnet@step-s4', 'all_convnet@step-s2', 'all_convnet@cosine-s2'}
  assert points['all_convnet@cosine-s2'].schedule == 'cosine'
  rows = {s.label: results.read_rows(os.path.join(s.workdir, results.RESULTS_FILE))[0]
          for s in specs}
  # Half the stride, twice the frames; the same budget with another schedule trains otherwise.
  assert rows['all_convnet@step-s2']['num_train_frames'] == pytest.approx(
      2 * rows['all_convnet@step-s4']['num_train_frames'], abs=1)
  assert (rows['all_convnet@step-s2']['frame_accuracy']
          != rows['all_convnet@cosine-s2']['frame_accuracy'])


def test_budget_curve_dry_run_lists_every_budget(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.budget_curve',
       '--config=experiments/configs/budget_curve.py:flexemg', f'--workdir={tmp_path}',
       '--dry_run'], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.startswith('14 runs')
  assert 'leave_one_subject_out / all_convnet@cosine-s8' in proc.stdout
  assert 'train.epochs=4 train.frame_stride=4\n' in proc.stdout  # step-s4
  assert 'train.epochs=4 train.frame_stride=32 train.lr_schedule="cosine"' in proc.stdout
  assert not os.listdir(tmp_path)
