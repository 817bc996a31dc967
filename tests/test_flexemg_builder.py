"""Tests of the flexemg TFDS builder: generated release files, bad inputs, the real data.

The real-data tests read the recordings by path (``HDSEMG_FLEXEMG_DIR`` or
``../shared/data/flexemg`` beside the repository). Without them they are skipped
with a reason starting "REAL DATA MISSING"; they carry the ``real_data`` marker,
and with ``HDSEMG_REQUIRE_REAL_DATA=1`` they fail instead of skipping.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from hdsemg_jax.data import trials as trials_lib
from tfds_builders import prepare
from tfds_builders.flexemg.dummy_data import generate

REAL_DIR = Path(os.environ.get('HDSEMG_FLEXEMG_DIR')
                or Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'flexemg')
CLASS_NAMES = ['rest', 'Fist', 'Raise', 'Lower', 'Open']
LSB_MV = 0.0030517578125


def _examples(builder) -> dict[tuple[int, int, str, int], dict]:
  source = builder.as_data_source()['train']
  examples = {}
  for i in range(len(source)):
    ex = dict(source[i])
    ex['part'] = ex['part'].decode() if isinstance(ex['part'], bytes) else str(ex['part'])
    examples[(int(ex['subject']), int(ex['session']), ex['part'], int(ex['trial']))] = ex
  return examples


def _load(path: Path) -> dict:
  return scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)


def _expected_emg(raw: np.ndarray, arraymap: np.ndarray, lsb_mv: float) -> np.ndarray:
  grid = np.empty((raw.shape[0], 16, 4), np.float32)
  for r in range(16):
    for c in range(4):
      grid[:, r, c] = raw[:, int(arraymap[r, c]) - 1] * lsb_mv
  return grid


def _runs(label: np.ndarray) -> list[tuple[int, int, int]]:
  """(value, start, stop) of each run of consecutive equal usable labels."""
  runs = []
  for t, value in enumerate(label.tolist()):
    if value >= 0 and runs and runs[-1][0] == value and runs[-1][2] == t:
      runs[-1] = (value, runs[-1][1], t + 1)
    elif value >= 0:
      runs.append((value, t, t + 1))
  return runs


# --- A generated release in the published format ---------------------------------------------

@pytest.fixture(scope='module')
def dummy(tmp_path_factory):
  root = generate.write_release(tmp_path_factory.mktemp('flexemg_release'))
  builder = prepare.prepare('flexemg', data_dir=str(tmp_path_factory.mktemp('flexemg_tfds')),
                            manual_dir=root)
  return Path(root), builder


def test_dummy_every_field(dummy):
  root, builder = dummy
  examples = _examples(builder)
  expected_ids = {(s, n, part.lower(), t) for s, n, part, ts in generate.DEFAULT_RECORDINGS
                  for t in ts}
  assert set(examples) == expected_ids
  arraymap = _load(root / 'arraymap.mat')['arraymap']
  for (subject, session, part, trial), ex in examples.items():
    mat = _load(root / 'data' / f'{subject:03d}-Session{session}{part.title()}'
                / f'{subject:03d}-{trial:03d}.mat')
    raw, seq = mat['raw'], [int(g) for g in mat['p'].sequence]
    assert ex['emg'].dtype == np.float32 and ex['emg'].shape == (280, 16, 4)
    np.testing.assert_array_equal(ex['emg'], _expected_emg(raw, arraymap, LSB_MV))
    # timerest = timegest = 50, 30 trailing frames: margins are 20% of 50 = 10 frames.
    expected_label = np.concatenate([
        np.full(10, -1), np.full(30, 0), np.full(20, -1), np.full(30, seq[0]), np.full(20, -1),
        np.full(30, seq[1]), np.full(20, -1), np.full(30, seq[2]), np.full(20, -1),
        np.full(30, seq[3]), np.full(40, -1)])
    assert ex['label'].dtype == np.int32
    np.testing.assert_array_equal(ex['label'], expected_label)


def test_dummy_metadata_and_library_reader(dummy):
  _, builder = dummy
  meta = builder.info.metadata
  assert meta['class_names'] == CLASS_NAMES
  assert meta['grid_shape'] == [16, 4] and meta['sampling_rate_hz'] == 1000.0
  assert meta['synthetic'] is False
  assert meta['recordings'] == [
      {'subject': 1, 'session': 1, 'part': 'test', 'trials': [1, 3]},
      {'subject': 1, 'session': 1, 'part': 'train', 'trials': [1, 2]},
      {'subject': 2, 'session': 2, 'part': 'test', 'trials': [2]},
  ]
  spec, trials = trials_lib.read_builder(builder)
  assert spec.name == 'flexemg' and spec.num_classes == 5 and spec.grid_shape == (16, 4)
  assert not spec.synthetic
  assert [t.id for t in trials] == ['1-1-test-1', '1-1-test-3', '1-1-train-1', '1-1-train-2',
                                    '2-2-test-2']


# --- Bad inputs: the message names the file ---------------------------------------------------

def _build(tmp_path: Path, manual_dir: Path):
  return prepare.prepare('flexemg', data_dir=str(tmp_path / 'tfds'), manual_dir=str(manual_dir))


def _release(tmp_path: Path, **kwargs) -> Path:
  return Path(generate.write_release(tmp_path / 'release',
                                     recordings=((1, 1, 'Train', (1,)),), **kwargs))


def test_missing_manual_dir(tmp_path):
  missing = tmp_path / 'nowhere'
  with pytest.raises(prepare.DatasetError, match=re.escape(str(missing))) as error:
    _build(tmp_path, missing)
  assert 'git clone https://github.com/a-moin/flexemg' in str(error.value)


def test_missing_arraymap(tmp_path):
  root = _release(tmp_path)
  (root / 'arraymap.mat').unlink()
  with pytest.raises(prepare.DatasetError, match=re.escape(str(root / 'arraymap.mat'))):
    _build(tmp_path, root)


def test_missing_data_folder(tmp_path):
  root = tmp_path / 'release'
  root.mkdir()
  scipy.io.savemat(root / 'arraymap.mat', {'arraymap': generate.fake_arraymap()})
  with pytest.raises(prepare.DatasetError, match=r'no data folder at .*data') as error:
    _build(tmp_path, root)
  assert str(root / 'data') in str(error.value)


def test_data_folder_without_trials(tmp_path):
  root = _release(tmp_path)
  (root / 'data' / '001-Session1Train' / '001-001.mat').unlink()
  with pytest.raises(prepare.DatasetError, match='no trial files'):
    _build(tmp_path, root)


def test_unreadable_trial_file(tmp_path):
  root = _release(tmp_path)
  bad = root / 'data' / '001-Session1Train' / '001-001.mat'
  bad.write_bytes(b'not a MATLAB file at all' * 10)
  with pytest.raises(prepare.DatasetError, match=re.escape(str(bad))):
    _build(tmp_path, root)


@pytest.mark.parametrize('raw_shape, why', [((280, 32), 'shape'), ((100, 96), 'frames')])
def test_wrong_raw_shape(tmp_path, raw_shape, why):
  root = _release(tmp_path)
  path = root / 'data' / '001-Session1Train' / '001-001.mat'
  variables = generate.fake_trial(1, 1, 1, timegest=50, timerest=50, tail=30)
  variables['raw'] = np.zeros(raw_shape, np.uint16)
  scipy.io.savemat(path, variables)
  with pytest.raises(prepare.DatasetError, match=re.escape(str(path))) as error:
    _build(tmp_path, root)
  assert why in str(error.value)


def test_wrong_arraymap_shape(tmp_path):
  root = _release(tmp_path)
  scipy.io.savemat(root / 'arraymap.mat', {'arraymap': np.arange(1, 49).reshape(16, 3)})
  with pytest.raises(prepare.DatasetError, match=re.escape(str(root / 'arraymap.mat'))):
    _build(tmp_path, root)


# --- The real recordings ----------------------------------------------------------------------

real_data = pytest.mark.real_data


@pytest.fixture(scope='module')
def real(flexemg_data_dir, flexemg_manual_dir):
  builder = prepare.prepare('flexemg', data_dir=flexemg_data_dir, manual_dir=flexemg_manual_dir)
  # Keep labels only; emg is read back per test, so 60+ trials of 7 MB are not all held.
  source = builder.as_data_source()['train']
  index = {}
  for i in range(len(source)):
    ex = source[i]
    index[(int(ex['subject']), int(ex['session']), ex['part'].decode(), int(ex['trial']))] = (
        i, np.asarray(ex['label']))
  return builder, source, index


def _real_file(subject: int, session: int, part: str, trial: int) -> Path:
  return (REAL_DIR / 'data' / f'{subject:03d}-Session{session}{part.title()}'
          / f'{subject:03d}-{trial:03d}.mat')


@real_data
def test_real_every_file_built(real):
  builder, _, index = real
  found = {}
  for folder in sorted((REAL_DIR / 'data').iterdir()):
    m = re.fullmatch(r'(\d{3})-Session(\d+)(Train|Test)', folder.name)
    if m:
      key = (int(m.group(1)), int(m.group(2)), m.group(3).lower())
      found[key] = sorted(int(f.stem[4:]) for f in folder.glob(f'{m.group(1)}-???.mat'))
  assert set(index) == {(*key, t) for key, ts in found.items() for t in ts}
  assert builder.info.metadata['recordings'] == [
      {'subject': s, 'session': n, 'part': part, 'trials': ts}
      for (s, n, part), ts in sorted(found.items())]


@real_data
def test_real_segments_per_trial(real):
  _, _, index = real
  for key, (_, label) in index.items():
    seq = [int(g) for g in _load(_real_file(*key))['p'].sequence]
    runs = _runs(label)
    # Rest, then 4 back-to-back gestures; the closing rest lies wholly in the dropped
    # last 3000 samples, so 5 usable segments of 5000 - 2 x 1000 frames each.
    assert [v for v, _, _ in runs] == [0, *seq], key
    assert all(stop - start == 3000 for _, start, stop in runs), key


@real_data
@pytest.mark.parametrize('key', [(1, 1, 'train', 1), (2, 3, 'test', 2), (3, 2, 'test', 4)])
def test_real_labels_by_hand(real, key):
  _, _, index = real
  _, label = index[key]
  seq = [int(g) for g in _load(_real_file(*key))['p'].sequence]
  assert label.shape == (28000,)
  # From DATA.md: rest 0-5000, gesture j at 5000j..5000(j+1) for j = 1..4, rest 25000-28000;
  # 1000 frames dropped on each side of 5000, 10000, ..., 25000, the first 1000, the last 3000.
  expected = np.full(28000, -1)
  expected[1000:4000] = 0
  expected[6000:9000] = seq[0]
  expected[11000:14000] = seq[1]
  expected[16000:19000] = seq[2]
  expected[21000:24000] = seq[3]
  np.testing.assert_array_equal(label, expected)


@real_data
@pytest.mark.parametrize('key', [(1, 3, 'train', 2), (3, 1, 'test', 1)])
def test_real_grid_and_mv_scaling(real, key):
  _, source, index = real
  emg = np.asarray(source[index[key][0]]['emg'])
  mat = _load(_real_file(*key))
  raw, lsb_mv = mat['raw'], float(mat['p'].lsbmV)
  arraymap = _load(REAL_DIR / 'arraymap.mat')['arraymap']
  assert lsb_mv == LSB_MV
  assert emg.dtype == np.float32 and emg.shape == (raw.shape[0], 16, 4)
  for r, c in [(0, 0), (7, 0), (8, 0), (15, 3), (4, 2)]:
    channel = int(arraymap[r, c]) - 1
    np.testing.assert_array_equal(emg[:, r, c], (raw[:, channel] * lsb_mv).astype(np.float32))
  np.testing.assert_array_equal(emg, _expected_emg(raw, arraymap, lsb_mv))
  # mV, not ADC codes: every value is a whole number of LSBs below the 16-bit range.
  np.testing.assert_allclose(emg / LSB_MV, np.round(emg / LSB_MV), atol=1e-2)
  assert 0 <= emg.min() and emg.max() <= 65535 * LSB_MV


def test_a_copy_missing_a_session_folder_is_named():
  from tfds_builders.flexemg import flexemg_dataset_builder as builder
  recordings = [builder.Recording(subject=s, session=session, part=part, trial=1,
                                  path=f'{s}-{session}-{part}')
                for s in (1, 2, 3) for session, part in ((1, 'train'), (1, 'test'), (3, 'test'))]
  assert builder.missing_folders(recordings) == []
  lost = [r for r in recordings if (r.subject, r.session, r.part) != (2, 3, 'test')]
  assert builder.missing_folders(lost) == ['002-Session3Test']


@pytest.mark.real_data
def test_real_copy_has_every_session_folder_of_every_subject(flexemg_manual_dir):
  from tfds_builders.flexemg import flexemg_dataset_builder as builder
  assert builder.missing_folders(builder.find_recordings(flexemg_manual_dir)) == []
