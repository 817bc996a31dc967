"""The combined benchmark report (protocols x folds, models, tests, costs) on hand-made rows."""

import csv
import io
import os

import ml_collections
import numpy as np
import pytest
from scipy import stats

from hdsemg_jax.reporting import benchmark, compare, results

SEEDS = (0, 1, 2)


def _row(model, protocol, fold, seed, acc, **extra):
  row = {'protocol': protocol, 'model': model, 'fold': fold, 'seed': seed,
         'frame_accuracy': acc - 0.1, 'balanced_accuracy': acc,
         'vote_accuracy': {'1': acc - 0.1, '40': acc - 0.05, '150': acc},
         'confusion_matrix': [[1, 0], [0, 1]], 'num_params': 1000, 'flops_per_frame': 2000,
         'train_seconds': 10.0 + seed, 'inference_seconds_per_frame': 2e-5,
         'split': {'train': [f'{fold}-train'], 'test': [f'{fold}-test']}}
  row.update(extra)
  return row


def _network(model, protocol, folds, value, seeds=SEEDS, protocol_name=None, **extra):
  rows = [_row(model, protocol_name or protocol, f, s, value(f, s), **extra)
          for f in folds for s in seeds]
  return compare.Run(path=f'/runs/{protocol}/{model}', label=model,
                     config={'model': {'name': model}, 'protocol': {'name': protocol_name or protocol}},
                     rows=rows)


def _classical(model, protocol, folds, value, **extra):
  rows = []
  for f in folds:
    acc = value(f)
    row = _row(model, protocol, f, 0, acc, decision_rule='window', num_params=30,
               flops_per_decision={'1': 100, '40': 400, '150': 1500}, **extra)
    # A window decides better than the vote of single frames would.
    row['decision_accuracy'] = {'1': acc - 0.1, '40': acc - 0.02, '150': acc}
    row.pop('flops_per_frame')
    rows.append(row)
  return compare.Run(path=f'/runs/{protocol}/{model}', label=model,
                     config={'model': {'name': model}, 'protocol': {'name': protocol}}, rows=rows)


def _convnet(f, s):
  return 0.80 + 0.01 * f + 0.02 * s  # Fold mean 0.82 + 0.01 f.


def _runs():
  intra, inter = range(6), range(3)
  return [
      _network('all_convnet', 'intra_session', intra, _convnet),
      _classical('lda', 'intra_session', intra, lambda f: 0.82 + 0.01 * f - 0.01 * (f + 1)),
      _network('all_convnet', 'inter_session', inter, lambda f, s: 0.6 + 0.02 * s),
      _classical('lda', 'inter_session', inter, lambda f: 0.5 + 0.01 * f),
      _network('geng_convnet', 'intra_session', intra, lambda f, s: _convnet(f, s) + 0.01 * (-1) ** f),
  ]


def test_table_cells_tests_and_one_value_for_seed_free_models():
  c = benchmark.combine_runs(_runs(), 'decision_accuracy/150', reference='all_convnet')
  assert c.models == ['all_convnet', 'lda', 'geng_convnet']
  assert c.protocols == ['intra_session', 'inter_session']
  assert c.single == {'lda'}
  diffs, p = c.tests['intra_session']['lda']
  np.testing.assert_allclose(diffs, [0.01, 0.02, 0.03, 0.04, 0.05, 0.06])
  # Six positive differences: the exact two-sided p is 2 / 2**6.
  assert p == pytest.approx(2 / 64) == pytest.approx(stats.wilcoxon(diffs).pvalue)
  # +1, -1, +1, ...: ranks all tie; W+ = W- so p = 1.
  assert c.tests['intra_session']['geng_convnet'][1] == pytest.approx(1.0)
  # Pooled over the 9 folds both models ran: reference better in all of them.
  pooled, p_all = c.tests['all']['lda']
  assert len(pooled) == 9 and p_all == pytest.approx(2 / 2 ** 9)
  header, body = benchmark.combined_cells(c)
  assert header == ['protocol', 'fold', 'all_convnet', 'lda', 'geng_convnet']
  assert body[0] == ['intra_session', '0', '82.0 ± 2.0', '81.0', '83.0 ± 2.0']
  assert body[6] == ['intra_session', '**mean ± std (folds)**', '84.5 ± 1.9', '81.0 ± 0.0',
                     '84.5 ± 1.9']
  assert body[7] == ['intra_session', 'all_convnet − model (pp), Wilcoxon p', 'ref.',
                     '+3.5 (p = 0.0312)', '+0.0 (p = 1)']
  # geng_convnet ran intra-session only.
  assert body[8] == ['inter_session', '0', '62.0 ± 2.0', '50.0', '—']
  assert body[-1][:4] == ['all', 'all_convnet − model (pp), Wilcoxon p', 'ref.',
                          '+6.0 (p = 0.00391, 9 folds)']


def test_decision_accuracy_is_the_vote_for_networks_and_the_window_for_classical_models():
  c = benchmark.combine_runs(_runs(), 'decision_accuracy/40', reference=None)
  assert c.values['intra_session']['all_convnet'][0].tolist() == pytest.approx([0.75, 0.77, 0.79])
  assert c.values['intra_session']['lda'][0].tolist() == pytest.approx([0.79])
  assert c.tests == {}
  # The figure's curves: per window, mean and std over folds of per-fold seed means.
  curve = c.curves['inter_session']['all_convnet']
  assert sorted(curve) == [1, 40, 150]
  assert curve[150] == pytest.approx((0.62, 0.0))
  assert c.curves['inter_session']['lda'][40][0] == pytest.approx(0.51 - 0.02)


def test_costs_per_model():
  runs = _runs()
  for row in runs[0].rows:  # all_convnet on intra_session: memory and total values.
    row.update(num_total_params=1100, peak_host_memory_bytes=512 * 2**20,
               peak_device_memory_bytes=None)
  c = benchmark.combine_runs(runs, 'decision_accuracy/150')
  assert c.costs['all_convnet'] == {
      'num_params': 1000, 'num_total_params': 1100, 'flops_per_frame': 2000,
      'flops_per_decision': 150 * 2000, 'train_seconds': 11.0,
      'inference_seconds_per_frame': 2e-5, 'peak_host_memory_bytes': 512 * 2**20}
  assert c.costs['lda']['flops_per_decision'] == 1500 and 'flops_per_frame' not in c.costs['lda']
  header, body = benchmark.cost_cells(c)
  assert header[4] == 'FLOPs / decision (150 frames)'
  assert header[-2:] == ['peak host MiB', 'peak device MiB']
  assert body[0] == ['all_convnet', '1,000', '1,100', '2,000', '300,000', '11.0', '20', '512',
                     '—']
  assert body[1] == ['lda', '30', '—', '—', '1,500', '10.0', '20', '—', '—']


def test_mixed_split_ids_are_refused():
  runs = _runs()
  for run in runs:
    for row in run.rows:
      row['split_id'] = f'split{row["fold"]}'  # One id per fold, shared by every model.
  benchmark.combine_runs(runs)
  runs[0].rows[1]['split_id'] = 'other'  # all_convnet, fold 0, seed 1.
  with pytest.raises(ValueError, match=r'all_convnet on intra_session fold 0: rows carry '
                     r'different split_id values \(other, split0\)'):
    benchmark.combine_runs(runs)
  runs[0].rows[1]['split_id'] = 'split0'
  for row in runs[1].rows:
    row['split_id'] = 'x'  # lda's fold 0 (its only seed) differs from all_convnet's.
  with pytest.raises(ValueError, match=r'intra_session fold 0: the models carry different '
                     r'split_id values \(all_convnet: split0, lda: x'):
    benchmark.combine_runs(runs)


def test_a_pretrain_run_may_carry_its_own_split_id():
  runs = _runs()[:1]
  pretrain = _network('geng_convnet', 'intra_session', range(6), _convnet,
                      protocol_name='intra_session_pretrain')
  for row in runs[0].rows:
    row['split_id'] = f'split{row["fold"]}'
  for row in pretrain.rows:
    row['split_id'] = f'pretrain{row["fold"]}'
  c = benchmark.combine_runs([*runs, pretrain])
  assert c.models == ['all_convnet', 'geng_convnet+pretrain']


def test_models_tested_on_other_trials_or_folds_are_refused():
  runs = _runs()
  runs[1].rows[0]['split'] = {'test': ['elsewhere']}
  with pytest.raises(ValueError, match='intra_session fold 0: models were tested on different '
                     'trials'):
    benchmark.combine_runs(runs)
  runs = _runs()
  runs[1] = compare.Run(path='x', label='lda', config={}, rows=runs[1].rows[:5],
                        protocol='intra_session')
  with pytest.raises(ValueError, match=r'run lda \(x\) has folds \[\] .* lacks folds \[5\]'):
    benchmark.combine_runs(runs)
  with pytest.raises(ValueError, match="reference model 'resnet' is not among"):
    benchmark.combine_runs(_runs(), reference='resnet')
  with pytest.raises(ValueError, match='two runs of lda on intra_session'):
    benchmark.combine_runs([*_runs(), _runs()[1]])


def test_a_pretrain_run_is_its_own_column_in_its_base_protocol(tmp_path):
  path = tmp_path / 'pretrain'
  os.makedirs(path)
  results.write_json(str(path / results.CONFIG_FILE),
                     {'model': {'name': 'geng_convnet'}, 'protocol': {'name': 'intra_session_pretrain'}})
  for row in _network('geng_convnet', 'intra_session', range(6), _convnet,
                      protocol_name='intra_session_pretrain').rows:
    results.append_row(str(path), row)
  run = compare.load_run(str(path))
  c = benchmark.combine_runs([_runs()[0], run])
  assert c.models == ['all_convnet', 'geng_convnet+pretrain'] and c.protocols == ['intra_session']


def test_written_report_has_table_csv_and_figure(tmp_path):
  c = benchmark.combine_runs(_runs(), 'decision_accuracy/150')
  paths = benchmark.write_combined_report(c, str(tmp_path), 'synthetic')
  assert sorted(os.path.basename(p) for p in paths.values()) == [
      'comparison.csv', 'comparison.md', 'comparison.png']
  text = open(paths['md']).read()
  assert '| intra_session | 0 | 82.0 ± 2.0 | 81.0 | 83.0 ± 2.0 |' in text and '## Cost' in text
  table = list(csv.DictReader(io.StringIO(open(paths['csv']).read())))
  test = [r for r in table if r['kind'] == 'wilcoxon' and r['protocol'] == 'intra_session'
          and r['model'] == 'lda']
  assert float(test[0]['p_value']) == pytest.approx(0.03125)
  assert float(test[0]['reference_minus_model']) == pytest.approx(0.035)
  with open(paths['png'], 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  assert not any('.tmp' in n for n in os.listdir(tmp_path))


@pytest.mark.slow
def test_report_cli_combines_protocols_and_models(tmp_path):
  import subprocess
  import sys
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  dirs = []
  for run in _runs():
    path = tmp_path / run.path.strip('/').replace('/', '_')
    os.makedirs(path)
    results.write_json(str(path / results.CONFIG_FILE), run.config)
    for row in run.rows:
      results.append_row(str(path), row)
    dirs.append(str(path))
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.report', '--combine', *dirs,
       '--metric=decision_accuracy/150', '--reference=all_convnet', f'--out={tmp_path}/out'],
      cwd=repo, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert '| intra_session | 0 | 82.0 ± 2.0 | 81.0 | 83.0 ± 2.0 |' in proc.stdout
  assert {'comparison.md', 'comparison.csv', 'comparison.png', 'comparison.json',
          'report.html'} <= set(os.listdir(tmp_path / 'out'))
  from hdsemg_jax.reporting import document
  doc = results.read_json(str(tmp_path / 'out' / 'comparison.json'), 'the document')
  document.validate(doc)
  assert doc['provenance']['commands'][0].startswith(
      'python -m experiments.report --combine ')


# --- The suite driver (experiments.compare_models) ----------------------------------------------

def _tiny_suite(data_dir):
  import ml_collections
  from experiments.configs import compare_models as suite_config
  config = suite_config.get_config('synthetic_hdsemg/tiny')
  config.dataset.data_dir = data_dir
  config.protocol.subjects, config.protocol.sessions = (1, 2), (1,)
  config.seeds = (0, 1)
  config.train.epochs, config.train.frame_stride, config.train.batch_size = 1, 2, 32
  config.eval.vote_windows = (1, 5, 150)
  suite = config.suite
  suite.protocols = ('intra_session', 'leave_one_subject_out')
  suite.models = ('all_convnet', 'geng_convnet_pretrain', 'lda', 'chance')
  suite.metric = 'decision_accuracy/5'
  suite.model_overrides = ml_collections.ConfigDict({
      'all_convnet': {'model': dict(features=(8, 8, 16, 16), kernel_sizes=(3, 3, 3, 1),
                                    strides=(1, 2, 1, 1))},
      'geng_convnet_pretrain': {'model': dict(conv_features=(8, 8), local_features=(8, 8),
                                              dense_features=(16, 16, 8)),
                                'adapt': {'finetune_epochs': 1}}})
  return config


def test_suite_plan_lists_every_run():
  from experiments import suite
  from experiments.configs import compare_models as suite_config
  config = suite_config.get_config('flexemg')
  config.train.epochs = 2
  specs = suite.plan(config, '/suite')
  # 3 protocols x 6 models, plus Geng's pre-training recipe on intra-session only.
  assert len(specs) == 19
  pretrain = [s for s in specs if s.label == 'geng_convnet_pretrain']
  assert [(s.protocol, s.run_protocol) for s in pretrain] == [
      ('intra_session', 'intra_session_pretrain')]
  assert pretrain[0].workdir == '/suite/intra_session/geng_convnet_pretrain'
  lda = next(s for s in specs if s.label == 'lda' and s.protocol == 'inter_session')
  assert lda.seeds == (0,) and lda.config.model.name == 'lda'
  assert lda.config.model.td_features == ('mav', 'wl', 'zc', 'ssc', 'log_rms')
  assert lda.config.model.zc_threshold == 0.02 and lda.config.train.epochs == 2
  network = next(s for s in specs if s.label == 'all_convnet' and s.protocol == 'inter_session')
  assert network.seeds == (0, 1, 2)
  assert network.config.dataset.filters == ('notch:60:50', 'bandpass:20:450')  # The preset.
  # Each run's config is an ordinary experiment config, locked like experiments.main's.
  assert network.config.is_locked and network.config.model.name == 'all_convnet'
  loso = next(s for s in specs if s.protocol == 'leave_one_subject_out')
  assert loso.config.protocol.sessions == (1,)  # The flexemg budget's protocol override.
  text = suite.describe(specs)
  assert text.startswith('19 runs') and '/suite/leave_one_subject_out/chance' in text
  config.suite.models = ('all_convnet', 'resnet')
  with pytest.raises(ValueError, match="config.suite.models: 'resnet' is not a model of the "
                                       'suite'):
    suite.plan(config, '/suite')
  # A run's bad value fails at plan time, naming the run and the key, as main's would.
  config.suite.models = ('all_convnet', 'lda')
  config.train.epochs = 0
  with pytest.raises(ValueError, match=r'run intra_session/all_convnet: train.epochs=0'):
    suite.plan(config, '/suite')
  config.train.epochs = 2
  config.suite.model_overrides = ml_collections.ConfigDict({'lda': {'model': {'Cee': 1.0}}})
  with pytest.raises(ValueError, match=r'model_overrides.lda.model.Cee is not an experiment'):
    suite.plan(config, '/suite')


@pytest.mark.slow
def test_suite_dry_run_command(tmp_path):
  import subprocess
  import sys
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.compare_models',
       '--config=experiments/configs/compare_models.py:capgmyo/dba', f'--workdir={tmp_path}',
       '--config.seeds=0,1,2,3', '--config.train.epochs=3',
       '--config.suite.models=all_convnet,lda',
       '--dry_run'], cwd=repo, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.startswith('6 runs')
  assert 'intra_session / all_convnet: protocol.name=intra_session, model.name=all_convnet, ' \
         'seeds 0,1,2,3' in proc.stdout
  assert 'leave_one_subject_out / lda' in proc.stdout and 'train.epochs=3' in proc.stdout
  assert 'seeds 0\n' in proc.stdout  # Classical models: the first seed only.
  assert not os.listdir(tmp_path)  # Nothing ran.


@pytest.mark.slow
def test_suite_runs_networks_resumes_and_reports(tiny_data_dir, tmp_path):
  from experiments import suite as suite_lib
  suite = _tiny_suite(tiny_data_dir)
  combined, markdown, paths, outcome = suite_lib.run_suite(suite, str(tmp_path))
  assert outcome.complete
  assert combined.protocols == ['intra_session', 'leave_one_subject_out']
  assert combined.models == ['all_convnet', 'geng_convnet_pretrain', 'lda', 'chance']
  assert combined.folds['intra_session'] == ['S01-s1', 'S02-s1']
  assert 'geng_convnet_pretrain' not in combined.values['leave_one_subject_out']
  assert set(combined.tests['intra_session']) == {'geng_convnet_pretrain', 'lda', 'chance'}
  assert set(combined.tests['leave_one_subject_out']) == {'lda', 'chance'}
  lda_rows = results.read_rows(str(tmp_path / 'intra_session' / 'lda' / results.RESULTS_FILE))
  assert len(lda_rows) == 2 and all(r['seed_independent'] for r in lda_rows)
  assert '| intra_session | S01-s1 |' in markdown
  assert sorted(os.path.basename(p) for p in paths.values()) == [
      'comparison.csv', 'comparison.json', 'comparison.md', 'comparison.png', 'report.html']
  rows = results.read_rows(str(tmp_path / 'intra_session' / 'geng_convnet_pretrain' /
                               results.RESULTS_FILE))
  assert {r['protocol'] for r in rows} == {'intra_session_pretrain'} and len(rows) == 4
  # A rerun resumes: every run is finished, so the same numbers come back.
  again = suite_lib.run_suite(suite, str(tmp_path))[0]
  for protocol in combined.protocols:
    for model, cells in combined.values[protocol].items():
      for fold, values in cells.items():
        np.testing.assert_array_equal(again.values[protocol][model][fold], values)
