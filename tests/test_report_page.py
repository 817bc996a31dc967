"""comparison.json validates against its schema; report.html shows it in a real browser.

The page test drives Debian's Chromium headless through its ChromeDriver (Selenium);
`.ci/run` installs both and sets HDSEMG_REQUIRE_BROWSER=1, so a missing browser
fails there and skips with a visible reason elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from hdsemg_jax.reporting import document, report_page

pytestmark = pytest.mark.slow  # The tiny suite trains networks.

CHROMIUM = os.environ.get('HDSEMG_CHROMIUM', '/usr/bin/chromium')
CHROMEDRIVER = os.environ.get('HDSEMG_CHROMEDRIVER', '/usr/bin/chromedriver')


@pytest.fixture(scope='module')
def suite_dir(tiny_data_dir, tmp_path_factory) -> str:
  from experiments import suite
  from tests.test_compare_report import _tiny_suite
  workdir = str(tmp_path_factory.mktemp('tiny_suite_page'))
  _, _, paths, outcome = suite.run_suite(_tiny_suite(tiny_data_dir), workdir,
                                         commands=('python -m experiments.compare_models '
                                                   '(tiny suite)',))
  assert outcome.complete
  assert os.path.basename(paths['json']) == 'comparison.json'
  assert os.path.basename(paths['html']) == 'report.html'
  return workdir


def _doc(suite_dir):
  with open(os.path.join(suite_dir, 'comparison.json')) as f:
    return json.load(f)


def test_comparison_json_validates_and_the_page_reads_only_it(suite_dir):
  doc = _doc(suite_dir)
  document.validate(doc)
  assert doc['protocols'] == ['intra_session', 'leave_one_subject_out']
  assert [m['name'] for m in doc['models']] == ['all_convnet', 'geng_convnet_pretrain', 'lda',
                                                'chance']
  assert doc['windows'] == [1, 5, 150]
  # Every cell of the table, with its per-seed values at every window.
  cells = {(c['protocol'], c['fold'], c['model']): c for c in doc['cells']}
  assert ('intra_session', 'S01-s1', 'geng_convnet_pretrain') in cells
  assert ('leave_one_subject_out', 'S02', 'geng_convnet_pretrain') not in cells
  network = cells[('intra_session', 'S01-s1', 'all_convnet')]
  assert network['seeds'] == [0, 1] and len(network['decision_accuracy']['5']) == 2
  assert cells[('intra_session', 'S01-s1', 'lda')]['seeds'] == [0]
  assert network['run_protocol'] == 'intra_session'
  assert cells[('intra_session', 'S01-s1', 'geng_convnet_pretrain')]['run_protocol'] == (
      'intra_session_pretrain')
  # The same numbers as the Markdown table's (decision_accuracy/5).
  markdown = open(os.path.join(suite_dir, 'comparison.md')).read()
  lda = cells[('leave_one_subject_out', 'S01', 'lda')]['decision_accuracy']['5'][0]
  assert f'| leave_one_subject_out | S01 |' in markdown and f'{100 * lda:.1f}' in markdown
  assert doc['provenance']['commands'] == ['python -m experiments.compare_models (tiny suite)']
  assert {r['model'] for r in doc['provenance']['runs']} == {m['name'] for m in doc['models']}
  # The page embeds exactly this document and loads nothing from anywhere.
  page = open(os.path.join(suite_dir, 'report.html')).read()
  assert report_page.embedded_document(page) == doc
  assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', page)
  assert 'fetch(' not in page and 'XMLHttpRequest' not in page and '<link' not in page
  # A document that breaks the schema is refused.
  broken = dict(doc, cells=[dict(doc['cells'][0], seeds=[])])
  with pytest.raises(Exception, match='seeds'):
    document.validate(broken)


@pytest.fixture(scope='module')
def browser():
  missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
  if missing:
    reason = (f'BROWSER MISSING: {", ".join(missing)} not found (Debian packages chromium and '
              'chromium-driver; .ci/run installs them)')
    if os.environ.get('HDSEMG_REQUIRE_BROWSER') == '1':
      pytest.fail(reason)
    pytest.skip(reason)
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for flag in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
               '--disable-background-networking', '--disable-component-update',
               '--disable-sync', '--no-first-run', '--window-size=1400,1000'):
    options.add_argument(flag)
  driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
  yield driver
  driver.quit()


def _shown(driver) -> list[tuple[str, str]]:
  rows = driver.find_elements('css selector', '#folds tbody tr')
  return [(r.get_attribute('data-protocol'), r.get_attribute('data-fold')) for r in rows]


def _columns(driver) -> list[str]:
  return [th.get_attribute('data-key') for th in
          driver.find_elements('css selector', '#folds thead th')]


def test_the_page_shows_every_fold_and_model_and_sorts_and_filters(suite_dir, browser):
  from selenium.webdriver.common.keys import Keys
  from selenium.webdriver.support.ui import Select
  doc = _doc(suite_dir)
  # Opened from disk, as a reader would open a copied folder.
  browser.get('file://' + os.path.join(suite_dir, 'report.html'))
  every_fold = [(p, f) for p in doc['protocols'] for f in doc['folds'][p]]
  assert sorted(_shown(browser)) == sorted(every_fold)
  assert _columns(browser) == ['protocol', 'fold', *[m['name'] for m in doc['models']]]
  cells = browser.find_elements('css selector', '#folds tbody td.value')
  assert len(cells) == len(every_fold) * len(doc['models'])
  # The cell of lda on leave_one_subject_out S01 at the table's window, as the JSON has it.
  value = next(c for c in doc['cells'] if (c['protocol'], c['fold'], c['model']) ==
               ('leave_one_subject_out', 'S01', 'lda'))['decision_accuracy']['5'][0]
  row = browser.find_element('css selector', '#folds tbody tr[data-protocol='
                             '"leave_one_subject_out"][data-fold="S01"]')
  assert row.find_element('css selector', 'td[data-model="lda"]').text == f'{100 * value:.1f}'

  # Sorting: by fold, then the other way.
  browser.find_element('css selector', '#folds th[data-key="fold"]').click()
  ascending = _shown(browser)
  assert [f for _, f in ascending] == sorted(f for _, f in every_fold)
  browser.find_element('css selector', '#folds th[data-key="fold"]').click()
  assert _shown(browser) == ascending[::-1]
  # By a model's accuracy: the values shown are in order.
  browser.find_element('css selector', '#folds th[data-key="lda"]').click()
  shown = [float(td.text.split()[0]) for td in
           browser.find_elements('css selector', '#folds tbody td[data-model="lda"]')]
  assert shown == sorted(shown, reverse=True)

  # Filtering by protocol, by fold and by model changes what is shown.
  Select(browser.find_element('id', 'filter-protocol')).select_by_value('leave_one_subject_out')
  assert {p for p, _ in _shown(browser)} == {'leave_one_subject_out'}
  assert len(_shown(browser)) == len(doc['folds']['leave_one_subject_out'])
  browser.find_element('id', 'filter-fold').send_keys('S02')
  assert _shown(browser) == [('leave_one_subject_out', 'S02')]
  browser.find_element('css selector', 'input.model-toggle[data-model="chance"]').click()
  assert 'chance' not in _columns(browser)
  assert 'showing 1 of 4 folds, 3 of 4 models' in browser.find_element(
      'id', 'shown-count').text.lower()
  Select(browser.find_element('id', 'filter-protocol')).select_by_value('all')
  browser.find_element('id', 'filter-fold').send_keys(Keys.BACK_SPACE * 3)
  browser.find_element('css selector', 'input.model-toggle[data-model="chance"]').click()
  assert sorted(_shown(browser)) == sorted(every_fold)

  # Per-seed values on demand, and a cell's details with its confusion matrix.
  browser.find_element('id', 'show-seeds').click()
  seeds = browser.find_elements('css selector', '#folds td[data-model="all_convnet"] .seeds')
  assert len(seeds) == len(every_fold) and all('s0' in s.text and 's1' in s.text for s in seeds)
  browser.find_element('css selector', '#folds td[data-model="all_convnet"]').click()
  details = browser.find_element('id', 'details')
  assert 'all_convnet' in details.text and 'Confusion matrix' in details.text
  assert details.find_elements('css selector', 'table.matrix tr')

  # The other sections: curves per protocol, tests, costs, provenance with the command.
  assert len(browser.find_elements('css selector', '#charts svg')) == len(doc['protocols'])
  assert browser.find_elements('css selector', '#tests tbody tr')
  costs = [r.text for r in browser.find_elements('css selector', '#costs tbody tr')]
  assert len(costs) == len(doc['models']) and costs[0].startswith('all_convnet')
  assert 'tiny suite' in browser.execute_script(
      "return document.getElementById('provenance').textContent")
  logs = [e for e in browser.get_log('browser') if e['level'] == 'SEVERE']
  assert logs == []
