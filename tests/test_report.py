"""Run comparison tables, paired tests, figures and the report CLI on known numbers."""

import csv
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from hdsemg_jax.reporting import compare, plots, results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDS = range(6)
SEEDS = (0, 1, 2)


def _a(fold: int, seed: int) -> float:
  return 0.70 + 0.01 * fold + 0.02 * seed  # Fold mean 0.72 + 0.01 fold, seed std 0.02.


def _b(fold: int, seed: int) -> float:
  return _a(fold, seed) + 0.01 * (fold + 1)  # B - A = 1..6 percentage points.


def _row(model, fold, seed, acc):
  confusion = [[8, 2], [1, 9]]
  return {'dataset': 'synthetic_hdsemg/tiny', 'protocol': 'intra_session', 'model': model,
          'fold': fold, 'seed': seed, 'frame_accuracy': acc - 0.1, 'balanced_accuracy': acc,
          'vote_accuracy': {'1': acc - 0.1, '40': acc - 0.05, '150': acc},
          'confusion_matrix': confusion, 'num_params': 10}


def _write_run(path, model, value, folds=FOLDS, seeds=SEEDS):
  os.makedirs(path, exist_ok=True)
  results.write_json(os.path.join(path, results.CONFIG_FILE), {'model': {'name': model}})
  for fold in folds:
    for seed in seeds:
      results.append_row(str(path), _row(model, fold, seed, value(fold, seed)))
  return str(path)


@pytest.fixture
def two_runs(tmp_path):
  return (_write_run(tmp_path / 'a', 'all_convnet', _a),
          _write_run(tmp_path / 'b', 'geng_convnet', _b))


def test_table_means_sample_stds_and_paired_wilcoxon(two_runs):
  runs = [compare.load_run(d) for d in two_runs]
  c = compare.compare_runs(runs, 'vote_accuracy/150', ('all_convnet', 'geng_convnet'))
  np.testing.assert_allclose(c.diffs, [0.01, 0.02, 0.03, 0.04, 0.05, 0.06])
  # Six positive differences: the exact two-sided p is 2 / 2**6.
  assert c.p_value == pytest.approx(2 / 64)
  assert c.p_value == pytest.approx(stats.wilcoxon([1, 2, 3, 4, 5, 6]).pvalue)
  lines = compare.to_markdown(c).splitlines()
  table = [l for l in lines if l.startswith('|')]
  assert table[0] == '| fold | all_convnet | geng_convnet | geng_convnet − all_convnet (pp) |'
  assert table[2] == '| 0 | 72.0 ± 2.0 | 73.0 ± 2.0 | +1.0 |'  # std of (70, 72, 74) = 2.
  assert table[7] == '| 5 | 77.0 ± 2.0 | 83.0 ± 2.0 | +6.0 |'
  # Fold means 72..77 (std sqrt(3.5) = 1.87) and 73, 75, .., 83 (std 3.74); mean diff 3.5 pp.
  assert table[8] == ('| **mean ± std (folds)** | 74.5 ± 1.9 | 78.0 ± 3.7 | '
                      '+3.5 (Wilcoxon p = 0.0312) |')


def test_csv_and_latex_carry_the_numbers(two_runs):
  runs = [compare.load_run(d) for d in two_runs]
  c = compare.compare_runs(runs, 'vote_accuracy/150', ('all_convnet', 'geng_convnet'))
  table = list(csv.reader(io.StringIO(compare.to_csv(c))))
  assert table[0][:4] == ['fold', 'all_convnet mean', 'all_convnet std', 'all_convnet n']
  assert float(table[1][1]) == pytest.approx(0.72) and float(table[1][2]) == pytest.approx(0.02)
  assert table[-1][0] == 'mean over folds'
  assert float(table[-1][-2]) == pytest.approx(0.035)
  assert float(table[-1][-1]) == pytest.approx(0.03125)
  tex = compare.to_latex(c)
  assert r'72.0 $\pm$ 2.0' in tex and r'all\_convnet' in tex and r'\end{tabular}' in tex


def test_runs_with_different_folds_or_seeds_are_named_errors(tmp_path):
  a = compare.load_run(_write_run(tmp_path / 'a', 'all_convnet', _a))
  fewer_folds = compare.load_run(_write_run(tmp_path / 'b', 'geng_convnet', _b, folds=range(5)))
  with pytest.raises(ValueError, match=r'run all_convnet .* has folds \[5\] that run geng_convnet'):
    compare.compare_runs([a, fewer_folds])
  fewer_seeds = compare.load_run(_write_run(tmp_path / 'c', 'geng_convnet', _b, seeds=(0, 1)))
  with pytest.raises(ValueError, match=r'has seeds \[2\] in fold 0 that run geng_convnet'):
    compare.compare_runs([a, fewer_seeds])
  with pytest.raises(ValueError, match='--compare names run'):
    compare.compare_runs([a, fewer_folds], pair=('all_convnet', 'resnet'))


def test_duplicate_rows_and_missing_windows_are_named(tmp_path):
  path = _write_run(tmp_path / 'a', 'all_convnet', _a, folds=[0])
  with pytest.raises(ValueError, match='has no vote_accuracy/7 \\(vote windows: 1, 40, 150\\)'):
    compare.compare_runs([compare.load_run(path)], 'vote_accuracy/7')
  results.append_row(path, _row('all_convnet', 0, 1, 0.5))
  with pytest.raises(ValueError, match='fold 0 seed 1 appears more than once'):
    compare.compare_runs([compare.load_run(path)])


def test_rows_without_decision_accuracy_are_read_from_the_vote(two_runs):
  # These rows, like a network's written before networks wrote decision_accuracy, lack it.
  runs = [compare.load_run(d) for d in two_runs]
  decision = compare.compare_runs(runs, 'decision_accuracy/40')
  vote = compare.compare_runs(runs, 'vote_accuracy/40')
  for label in vote.labels:
    np.testing.assert_array_equal(decision.fold_means(label), vote.fold_means(label))
  window = {'vote_accuracy': {'40': 0.5}, 'decision_accuracy': {'40': 0.7}}
  assert results.decision_values(window) == {'40': 0.7}
  assert results.decision_values({'vote_accuracy': {'40': 0.5}}) == {'40': 0.5}
  assert results.decision_values({'decision_accuracy': None, 'vote_accuracy': None}) == {}


def test_same_label_runs_are_told_apart_by_directory(tmp_path):
  a = compare.load_run(_write_run(tmp_path / 'a', 'all_convnet', _a, folds=[0]))
  b = compare.load_run(_write_run(tmp_path / 'b', 'all_convnet', _b, folds=[0]))
  c = compare.compare_runs([a, b])
  assert len(set(c.labels)) == 2 and all(l.startswith('all_convnet (') for l in c.labels)


def test_write_plots_writes_pngs(tmp_path):
  rows = [_row('all_convnet', f, s, _a(f, s)) for f in FOLDS for s in SEEDS]
  paths = plots.write_plots(rows, str(tmp_path), 'tiny')
  names = sorted(os.path.basename(p) for p in paths)
  assert names == ['confusion_intra_session.png', 'per_fold.png', 'vote_windows.png']
  for p in paths:
    with open(p, 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_cli_writes_table_files_and_figures(two_runs, tmp_path):
  out = tmp_path / 'report'
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.report', *two_runs, '--metric=vote_accuracy/150',
       '--compare=all_convnet,geng_convnet', f'--out={out}'],
      cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert '| 0 | 72.0 ± 2.0 | 73.0 ± 2.0 | +1.0 |' in proc.stdout
  written = set(os.listdir(out))
  assert {'report.md', 'report.csv', 'report.tex', 'per_fold.png', 'vote_windows.png'} <= written
  assert any(n.startswith('confusion_') for n in written)
  assert not any('.tmp' in n for n in written)


def test_cli_names_mismatched_runs(tmp_path):
  a = _write_run(tmp_path / 'a', 'all_convnet', _a)
  b = _write_run(tmp_path / 'b', 'geng_convnet', _b, folds=range(5))
  proc = subprocess.run([sys.executable, '-m', 'experiments.report', a, b, '--noplots'],
                        cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0
  assert 'has folds [5] that run geng_convnet' in proc.stderr
