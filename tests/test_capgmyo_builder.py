"""Tests of the CapgMyo builder on fake archives written in the published format.

Fake copies are written into tmp dirs by `tfds_builders.capgmyo.fake_data`; a
config with few frames and subjects keeps every build fast.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import math
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds

from hdsemg_jax.data import trials as trials_lib
from tfds_builders.capgmyo import capgmyo_dataset_builder as capgmyo
from tfds_builders.capgmyo import fake_data
from tfds_builders.prepare import DatasetError

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
FRAMES = 8


def tiny_config(database: str, persons, frames: int = FRAMES) -> capgmyo.CapgMyoConfig:
  """``database`` restricted to ``persons``, with ``frames`` rows per trial."""
  name = f'{database}_test_{"_".join(map(str, persons))}_f{frames}'
  return dataclasses.replace(capgmyo.Builder.builder_configs[database], name=name,
                             frames_per_trial=frames, subjects=tuple(persons))


def build(manual_dir, data_dir, config) -> capgmyo.Builder:
  builder = capgmyo.Builder(config=config, data_dir=str(data_dir), file_format='array_record')
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)),
      file_format='array_record')
  return builder


def file_subjects_of(database: str, persons) -> list[tuple[int, int, int]]:
  """(file subject, person, session) triples, written out independently of the builder."""
  if database == 'dbb':
    return [(k, math.ceil(k / 2), 1 if k % 2 else 2) for p in persons for k in (2 * p - 1, 2 * p)]
  return [(p, p, 1) for p in persons]


def check_dataset(builder, database: str, persons, frames: int = FRAMES) -> None:
  """Every field of every example against the files written by `fake_data`."""
  num_gestures = 12 if database == 'dbc' else 8
  expected = {}
  for k, person, session in file_subjects_of(database, persons):
    for g in range(1, num_gestures + 1):
      for t in range(1, 11):
        expected[(person, session, (g - 1) * 10 + t)] = (k, g, t)

  examples = list(builder.as_data_source()['train'])
  assert len(examples) == len(expected)  # Max-force files left out.
  seen = set()
  low, high = np.inf, -np.inf
  for ex in examples:
    identity = (int(ex['subject']), int(ex['session']), int(ex['trial']))
    assert identity in expected and identity not in seen
    seen.add(identity)
    k, g, t = expected[identity]
    data = fake_data.trial_data(database, k, g, t, frames)
    low, high = min(low, data.min()), max(high, data.max())
    emg = ex['emg']
    assert emg.dtype == np.float32 and emg.shape == (frames, 16, 8)
    for c in range(128):
      np.testing.assert_array_equal(emg[:, c // 8, c % 8], data[:, c].astype(np.float32))
    assert ex['label'].dtype == np.int32
    np.testing.assert_array_equal(ex['label'], np.full(frames, g - 1))
    assert ex['part'] in (b'', '')

  meta = builder.info.metadata
  assert len(meta['class_names']) == num_gestures
  assert meta['class_names'][0] == ('index flexion' if database == 'dbc' else 'thumb up')
  assert meta['grid_shape'] == [16, 8] and meta['sampling_rate_hz'] == 1000.0
  assert meta['subjects'] == list(persons)
  assert meta['sessions'] == ([1, 2] if database == 'dbb' else [1])
  assert meta['value_range'] == [low, high]


def written_files(data_dir) -> list[pathlib.Path]:
  return [p for p in pathlib.Path(data_dir).rglob('*') if p.is_file() and '.config' not in p.parts]


@pytest.mark.parametrize('database,layout,member_dir', [
    ('dba', 'zip', ''),
    ('dba', 'folder', ''),
    ('dba', 'figshare', 'dba-s1'),
    ('dbb', 'zip', ''),
    ('dbc', 'folder', 'nested'),
])
def test_builds_every_field(tmp_path, database, layout, member_dir):
  persons = (1, 2)
  all_files = [k for k, _, _ in file_subjects_of(database, (1, 2, 3))]
  # A third person's archives lie there too; a build of persons 1 and 2 leaves them alone.
  fake_data.write_copy(tmp_path / 'manual', database, all_files, frames=FRAMES, layout=layout,
                       member_dir=member_dir)
  builder = build(tmp_path / 'manual', tmp_path / 'data', tiny_config(database, persons))
  check_dataset(builder, database, persons)


def test_layouts_mix_and_databases_share_a_manual_dir(tmp_path):
  manual = tmp_path / 'manual' / 'a' / 'b' / 'c'  # Archives may lie in sub-folders.
  fake_data.write_copy(manual, 'dba', [1], frames=FRAMES, layout='zip')
  fake_data.write_copy(manual, 'dba', [2], frames=FRAMES, layout='folder')
  fake_data.write_copy(manual, 'dbc', [1, 2], frames=FRAMES, layout='zip')
  builder = build(tmp_path / 'manual', tmp_path / 'data', tiny_config('dba', (1, 2)))
  check_dataset(builder, 'dba', (1, 2))


def test_trial_numbers_keep_repetition_parity(tmp_path):
  fake_data.write_copy(tmp_path / 'manual', 'dbb', [1, 2], frames=FRAMES)
  builder = build(tmp_path / 'manual', tmp_path / 'data', tiny_config('dbb', (1,)))
  _, trials = trials_lib.read_builder(builder)
  assert len(trials) == 160
  for trial in trials:
    assert trial.trial == trial.gesture * 10 + trial.repetition
    assert trial.trial % 2 == trial.repetition % 2


def test_subset_names_resolve_through_tfds_builder(tmp_path):
  builder = tfds.builder('capgmyo/dbb-subjects-2to3-5', data_dir=str(tmp_path))
  cfg = builder.builder_config
  assert cfg.subjects == (2, 3, 5)
  assert cfg.file_subjects == (3, 4, 5, 6, 9, 10)
  assert builder.info.metadata['subjects'] == [2, 3, 5]
  assert 'dbb-subjects-2to3-5' in str(builder.data_dir)
  assert capgmyo.subset_config('dbb-subjects-2to3-5') is cfg
  assert capgmyo.subset_config('dbb') is None
  for name in ('dba-subjects-19', 'dbb-subjects-0', 'dbc-subjects-3to11'):
    with pytest.raises(DatasetError, match='has subjects 1-'):
      tfds.builder(f'capgmyo/{name}', data_dir=str(tmp_path))


def test_partial_copy_needs_named_subjects(tmp_path):
  fake_data.write_copy(tmp_path / 'manual', 'dba', [1, 2, 3], frames=FRAMES)
  config = dataclasses.replace(capgmyo.Builder.builder_configs['dba'], name='dba_all_f8',
                               frames_per_trial=FRAMES)
  with pytest.raises(DatasetError) as error:
    build(tmp_path / 'manual', tmp_path / 'data', config)
  message = str(error.value)
  for subject in range(4, 19):
    assert f'subject {subject}: missing, no dba-preprocessed-{subject:03d}.zip' in message
  assert 'subject 3:' not in message
  assert 'capgmyo/dba-subjects-1to3' in message
  assert not written_files(tmp_path / 'data')


def test_every_completeness_problem_in_one_error(tmp_path):
  manual = tmp_path / 'manual'
  fake_data.write_copy(manual, 'dba', [1], frames=FRAMES, layout='folder')
  fake_data.write_copy(manual, 'dba', [2, 3], frames=FRAMES, layout='zip')
  (manual / 'dba-preprocessed-001' / '001-003-007.mat').unlink()
  (manual / 'dba-preprocessed-001' / '001-004-002.mat').write_bytes(b'garbage')
  # The same file unzipped next to its zip.
  (manual / 'dba-preprocessed-002').mkdir()
  with zipfile.ZipFile(manual / 'dba-preprocessed-002.zip') as zf:
    (manual / 'dba-preprocessed-002' / '002-005-006.mat').write_bytes(zf.read('002-005-006.mat'))
  # Subject 3's zip is cut short.
  zip3 = manual / 'dba-preprocessed-003.zip'
  zip3.write_bytes(zip3.read_bytes()[:5000])

  with pytest.raises(DatasetError) as error:
    build(manual, tmp_path / 'data', tiny_config('dba', (1, 2, 3, 4)))
  message = str(error.value)
  assert '001-003-007.mat: missing' in message
  assert '001-004-002.mat in dba-preprocessed-001: cannot be read as a MATLAB .mat file' in message
  assert ('002-005-006.mat: duplicate, found 2 times (in 002-005-006.mat in '
          'dba-preprocessed-002; 002-005-006.mat in dba-preprocessed-002.zip)') in message
  assert 'dba-preprocessed-003.zip: cannot be read as a zip archive' in message
  assert 'subject 4: missing' in message
  assert '(5 problems)' in message  # Subject 3's files are not listed as missing again.
  assert not written_files(tmp_path / 'data')


def _rewrite(manual: pathlib.Path, name: str, **fields) -> None:
  """Replaces file ``name`` of subject 1's unzipped folder; ``fields`` override its content."""
  k, g, t = (int(part) for part in name[:-4].split('-'))
  content = dict(data=fake_data.trial_data('dba', k, g, t, FRAMES), gesture=g, subject=k, trial=t)
  content.update(fields)
  raw = fake_data.mat_bytes(content.pop('data'), **content)
  (manual / 'dba-preprocessed-001' / name).write_bytes(raw)


def _with_value(value: float) -> np.ndarray:
  data = fake_data.trial_data('dba', 1, 2, 3, FRAMES)
  data[4, 77] = value
  return data


@pytest.mark.parametrize('corrupt,problem', [
    (lambda m: _rewrite(m, '001-002-003.mat', data=np.zeros((FRAMES + 1, 128))),
     f"'data' has shape ({FRAMES + 1}, 128), expected ({FRAMES}, 128)"),
    (lambda m: _rewrite(m, '001-002-003.mat', data=np.zeros((128, FRAMES))),
     f"'data' has shape (128, {FRAMES})"),
    (lambda m: _rewrite(m, '001-002-003.mat', data=_with_value(np.nan)),
     "'data' holds 1 non-finite value (NaN or inf)"),
    (lambda m: _rewrite(m, '001-002-003.mat', data=_with_value(-np.inf)),
     "'data' holds 1 non-finite value (NaN or inf)"),
    (lambda m: _rewrite(m, '001-002-003.mat', gesture=5),
     'holds gesture=5, which contradicts its name (gesture 2)'),
    (lambda m: _rewrite(m, '001-002-003.mat', subject=2),
     'holds subject=2, which contradicts its name (subject 1)'),
    (lambda m: _rewrite(m, '001-002-003.mat', trial=4),
     'holds trial=4, which contradicts its name (trial 3)'),
    (lambda m: (m / 'dba-preprocessed-001' / '001-002-003.mat').write_bytes(
        (m / 'dba-preprocessed-001' / '001-002-003.mat').read_bytes()[:300]),
     'cannot be read as a MATLAB .mat file'),
    (lambda m: (m / 'dba-preprocessed-001' / '001-002-003.mat').write_bytes(b'\0' * 64),
     'cannot be read as a MATLAB .mat file'),
], ids=['frames', 'transposed', 'nan', 'inf', 'gesture', 'subject', 'trial', 'truncated',
        'garbage'])
def test_bad_mat_file_is_named(tmp_path, corrupt, problem):
  manual = tmp_path / 'manual'
  fake_data.write_copy(manual, 'dba', [1], frames=FRAMES, layout='folder')
  corrupt(manual)
  with pytest.raises(DatasetError) as error:
    build(manual, tmp_path / 'data', tiny_config('dba', (1,)))
  assert f'001-002-003.mat in dba-preprocessed-001: {problem}' in str(error.value)
  assert not written_files(tmp_path / 'data')


def test_missing_variable_is_named(tmp_path):
  manual = tmp_path / 'manual'
  fake_data.write_copy(manual, 'dba', [1], frames=FRAMES, layout='folder')
  scipy.io.savemat(manual / 'dba-preprocessed-001' / '001-008-010.mat',
                   {'data': np.zeros((FRAMES, 128)), 'gesture': [[8]]})
  with pytest.raises(DatasetError, match=r'001-008-010\.mat in dba-preprocessed-001: lacks the '
                                         r'variables subject, trial'):
    build(manual, tmp_path / 'data', tiny_config('dba', (1,)))


def test_corrupt_zip_member_is_named(tmp_path):
  manual = tmp_path / 'manual'
  fake_data.write_copy(manual, 'dba', [1], frames=FRAMES, layout='zip')
  path = manual / 'dba-preprocessed-001.zip'
  with zipfile.ZipFile(path) as zf:
    info = zf.getinfo('001-006-009.mat')
  raw = bytearray(path.read_bytes())
  # Past the 30-byte local header and the name: the member's compressed bytes.
  start = info.header_offset + 30 + len(info.filename) + len(info.extra)
  for i in range(start + 10, start + 40):
    raw[i] ^= 0xFF
  path.write_bytes(bytes(raw))
  with pytest.raises(DatasetError, match=r'001-006-009\.mat in dba-preprocessed-001\.zip: '
                                         r'cannot be read'):
    build(manual, tmp_path / 'data', tiny_config('dba', (1,)))
  assert not written_files(tmp_path / 'data')


def test_unexpected_files_are_named(tmp_path):
  manual = tmp_path / 'manual'
  fake_data.write_copy(manual, 'dba', [1], frames=FRAMES, layout='folder')
  _rewrite(manual, '001-002-003.mat')
  (manual / 'dba-preprocessed-001' / '001-009-001.mat').write_bytes(b'')  # DB-a has 8 gestures.
  (manual / 'dba-preprocessed-001' / '002-001-001.mat').write_bytes(b'')  # Subject 2's file.
  with pytest.raises(DatasetError) as error:
    build(manual, tmp_path / 'data', tiny_config('dba', (1,)))
  message = str(error.value)
  assert '001-009-001.mat in dba-preprocessed-001: unexpected file, DB-a has gestures 1-8' in message
  assert ('002-001-001.mat in dba-preprocessed-001: a file of subject 2 in the archive of '
          'subject 1') in message


def test_missing_manual_dir_is_a_dataset_error(tmp_path):
  with pytest.raises(DatasetError, match='no CapgMyo archives to read'):
    build(tmp_path / 'absent', tmp_path / 'data', tiny_config('dba', (1,)))


def test_large_values_warn_and_are_kept(tmp_path, caplog):
  manual = tmp_path / 'manual'
  fake_data.write_copy(manual, 'dba', [1], frames=FRAMES, layout='folder')
  data = fake_data.trial_data('dba', 1, 7, 2, FRAMES)
  data[0, 0] = 12.5
  _rewrite(manual, '001-007-002.mat', data=data)
  with caplog.at_level(logging.WARNING):
    builder = build(manual, tmp_path / 'data', tiny_config('dba', (1,)))
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert any('001-007-002.mat in dba-preprocessed-001: values reach 12.5' in w for w in warnings)
  assert builder.info.metadata['value_range'][1] == 12.5
  ex = next(e for e in builder.as_data_source()['train']
            if e['trial'] == 62)  # Gesture 7, trial 2.
  assert ex['emg'][0, 0, 0] == 12.5


_BLOCK_TENSORFLOW = '''\
"""Hides TensorFlow from this interpreter, as if it were not installed."""
import sys


class _HideTensorFlow:
  """Wraps a meta path finder: finds nothing named tensorflow, so find_spec says None."""

  def __init__(self, finder):
    self._finder = finder

  def find_spec(self, name, path=None, target=None):
    if name == 'tensorflow' or name.startswith('tensorflow.'):
      return None
    find_spec = getattr(self._finder, 'find_spec', None)
    return find_spec(name, path, target) if find_spec else None

  def __getattr__(self, attr):
    return getattr(self._finder, attr)


sys.meta_path[:] = [_HideTensorFlow(finder) for finder in sys.meta_path]
'''

_READ_BACK = '''\
import json, sys
import numpy as np
import importlib.util
try:
  import tensorflow  # noqa: F401
  blocked = False
except ModuleNotFoundError:
  blocked = importlib.util.find_spec('tensorflow') is None
import tensorflow_datasets as tfds
import tfds_builders.capgmyo  # noqa: F401
from tfds_builders.capgmyo import fake_data

source = tfds.data_source('capgmyo/dba-subjects-1', data_dir=sys.argv[1], split='train')
ok = True
for ex in source:
  g, t = (int(ex['trial']) - 1) // 10 + 1, (int(ex['trial']) - 1) % 10 + 1
  data = fake_data.trial_data('dba', 1, g, t, 1000, np.float32)
  ok &= bool(np.array_equal(ex['emg'].reshape(1000, 128), data))
  ok &= bool((ex['label'] == g - 1).all()) and int(ex['subject']) == 1
print(json.dumps({'blocked': blocked, 'n': len(source), 'ok': ok,
                  'tf_loaded': 'tensorflow' in sys.modules}))
'''


def test_prepare_and_read_without_tensorflow(tmp_path):
  blocker = tmp_path / 'block_tf'
  blocker.mkdir()
  (blocker / 'sitecustomize.py').write_text(_BLOCK_TENSORFLOW)
  # The published frame count, so no test-only config is needed on the command line.
  fake_data.write_copy(tmp_path / 'manual', 'dba', [1], frames=1000, layout='folder',
                       dtype=np.float32)
  env = {'PATH': '/usr/bin:/bin', 'PYTHONPATH': f'{blocker}:{REPO_ROOT}', 'HOME': str(tmp_path)}
  data_dir = tmp_path / 'data'
  prepared = subprocess.run(
      [sys.executable, '-m', 'tfds_builders.prepare', 'capgmyo/dba-subjects-1',
       f'--manual_dir={tmp_path / "manual"}', f'--data_dir={data_dir}'],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert prepared.returncode == 0, prepared.stderr[-3000:]
  assert 'capgmyo/dba-subjects-1/1.0.0' in prepared.stdout
  assert list(data_dir.rglob('*.array_record*'))

  read = subprocess.run([sys.executable, '-c', _READ_BACK, str(data_dir)], cwd=REPO_ROOT,
                        env=env, capture_output=True, text=True, timeout=300)
  assert read.returncode == 0, read.stderr[-3000:]
  result = json.loads(read.stdout.strip().splitlines()[-1])
  assert result == {'blocked': True, 'n': 80, 'ok': True, 'tf_loaded': False}


def test_bad_input_through_the_command_line_is_one_line_not_a_traceback(tmp_path):
  fake_data.write_copy(tmp_path / 'manual', 'dba', [1], frames=FRAMES, layout='folder')
  result = subprocess.run(
      [sys.executable, '-m', 'tfds_builders.prepare', 'capgmyo/dba-subjects-1',
       f'--manual_dir={tmp_path / "manual"}', f'--data_dir={tmp_path / "data"}'],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode != 0
  assert 'Traceback' not in result.stderr
  assert ("error: capgmyo/dba-subjects-1/1.0.0: the CapgMyo DB-a copy in" in result.stderr)
  assert "'data' has shape (8, 128), expected (1000, 128)" in result.stderr


# The standard TFDS builder checks (tf.data reading included) need TensorFlow.
if importlib.util.find_spec('tensorflow') is not None:
  from tensorflow_datasets import testing as tfds_testing  # pylint: disable=g-import-not-at-top

  # Set at import: TFDS resolves (and caches) the dummy data folder while pytest collects.
  _DUMMY_DIR = tempfile.mkdtemp(prefix='capgmyo_dummy_')

  def tearDownModule():  # pylint: disable=invalid-name
    shutil.rmtree(_DUMMY_DIR, ignore_errors=True)

  class _CapgMyoTfdsTest(tfds_testing.DatasetBuilderTestCase):
    """Runs the TFDS builder test case on dummy data written on first use."""
    DATASET_CLASS = capgmyo.Builder
    EXAMPLE_DIR = _DUMMY_DIR
    SKIP_CHECKSUMS = True  # Manual download: no URL is fetched.
    __test__ = False

    @classmethod
    def setUpClass(cls):
      if not any(pathlib.Path(cls.EXAMPLE_DIR).iterdir()):
        fake_data.write_dummy_data(cls.EXAMPLE_DIR)
      super().setUpClass()

  class TestTfdsDba(_CapgMyoTfdsTest):
    __test__ = True
    BUILDER_CONFIG_NAMES_TO_TEST = [tiny_config('dba', (1,))]
    SPLITS = {'train': 80}

  class TestTfdsDbb(_CapgMyoTfdsTest):
    __test__ = True
    BUILDER_CONFIG_NAMES_TO_TEST = [tiny_config('dbb', (1,))]
    SPLITS = {'train': 160}

  class TestTfdsDbc(_CapgMyoTfdsTest):
    __test__ = True
    BUILDER_CONFIG_NAMES_TO_TEST = [tiny_config('dbc', (1,))]
    SPLITS = {'train': 120}

else:

  def test_tfds_builder_test_case():
    pytest.importorskip('tensorflow', reason='the TFDS builder test case needs TensorFlow')

