"""results.md tables: known means and sample standard deviations."""

import pytest

from hdsemg_jax.reporting import results, tables


def _row(fold, seed, acc):
  return {'fold': fold, 'seed': seed, 'frame_accuracy': acc, 'vote_accuracy': {'150': acc}}


def test_seed_fold_table_means_and_sample_stds():
  rows = [_row('A', 0, 0.80), _row('A', 1, 0.90), _row('B', 0, 0.60), _row('B', 1, 0.70)]
  table = tables.seed_fold_table(rows, 'vote_accuracy/150').splitlines()
  assert table[0] == '| fold | seed 0 | seed 1 | mean ± std (seeds) |'
  assert table[2] == '| A | 80.0 | 90.0 | 85.0 ± 7.1 |'  # sample std of (80, 90) = 7.07
  assert table[3] == '| B | 60.0 | 70.0 | 65.0 ± 7.1 |'
  assert table[4] == '| **mean ± std (folds)** | 70.0 ± 14.1 | 80.0 ± 14.1 | 75.0 ± 14.1 |'


def test_malformed_row_names_file_and_line(tmp_path):
  path = tmp_path / 'results.jsonl'
  path.write_text('{"fold": "A"}\n{"fold": \n')
  with pytest.raises(ValueError, match=f'{path}:2: malformed'):
    results.read_rows(str(path))


def test_rows_of_several_configs_are_marked_in_the_run_report():
  def row(fold, seed, config_hash):
    return {'fold': fold, 'seed': seed, 'frame_accuracy': 0.5,
            'provenance': {'config_hash': config_hash}}
  same = [row('S01', 0, 'a' * 64), row('S02', 0, 'a' * 64)]
  assert tables.mixed_config_note(same) == ''
  assert 'different configs' not in tables.run_report(same, title='t', synthetic=False,
                                                      metrics=('frame_accuracy',))
  mixed = [row('S01', 0, 'a' * 64), row('S02', 0, 'b' * 64)]
  report = tables.run_report(mixed, title='t', synthetic=False, metrics=('frame_accuracy',))
  assert ('**Rows of 2 different configs** (the run was continued with --allow_config_change; '
          f'compare them with care): config {"a" * 12}: S01/seed 0; config {"b" * 12}: '
          'S02/seed 0.') in report
