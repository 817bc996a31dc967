"""synthetic_hdsemg: builds and reads back without TensorFlow, deterministically."""

import numpy as np
import pytest

from hdsemg_jax.data import trials as trials_lib
from tfds_builders import prepare
from tfds_builders.synthetic_hdsemg import signal_model

TINY = 'synthetic_hdsemg/tiny'


def test_shapes_and_fields(tiny_trials):
  spec, trials = tiny_trials
  assert spec.grid_shape == (16, 8)
  assert spec.class_names == ('gesture_1', 'gesture_2', 'gesture_3')
  assert spec.synthetic
  assert len(trials) == 3 * 2 * 3 * 4  # subjects x sessions x gestures x trials
  assert len({t.id for t in trials}) == len(trials)
  for t in trials:
    assert t.emg.shape == (40, 16, 8) and t.emg.dtype == np.float32
    assert t.label.shape == (40,) and t.label.dtype == np.int32
    assert np.all(t.label == t.gesture)
    assert t.part == ''
    assert 1 <= t.repetition <= 4
    assert np.isfinite(t.emg).all() and 0.001 < t.emg.std() < 1.0


def test_building_twice_gives_identical_data(tiny_trials, tmp_path):
  _, first = tiny_trials
  _, second = trials_lib.load(TINY, data_dir=str(tmp_path))
  assert [t.id for t in first] == [t.id for t in second]
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a.emg, b.emg)
    np.testing.assert_array_equal(a.label, b.label)


def _log_rms_features(model, subject, session, trials=range(1, 7)):
  x, y = [], []
  for g in range(model.num_gestures):
    for trial in trials:
      emg = model.trial(subject, session, g, trial, 200)
      x.append(np.log(np.sqrt(np.mean(emg**2, axis=0))).ravel())
      y.append(g)
  return np.array(x), np.array(y)


def _nearest_centroid_accuracy(train, test):
  (xa, ya), (xb, yb) = train, test
  centroids = np.stack([xa[ya == g].mean(0) for g in np.unique(ya)])
  pred = np.argmin(((xb[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
  return float(np.mean(pred == yb))


def test_difficulty_grows_from_session_to_subject():
  """Intra-session is easier than inter-session, which is easier than inter-subject."""
  model = signal_model.SignalModel(seed=7, num_gestures=8)
  train = _log_rms_features(model, 1, 1, trials=range(1, 6))
  intra = _nearest_centroid_accuracy(train, _log_rms_features(model, 1, 1, trials=range(6, 11)))
  inter_session = np.mean([
      _nearest_centroid_accuracy(_log_rms_features(model, s, 1), _log_rms_features(model, s, 2))
      for s in (1, 2, 3)])
  inter_subject = np.mean([
      _nearest_centroid_accuracy(_log_rms_features(model, 1, 1), _log_rms_features(model, s, 1))
      for s in (2, 3, 4)])
  assert intra >= 0.95
  assert intra > inter_session > inter_subject


def test_unknown_dataset_names_known_builders():
  with pytest.raises(prepare.DatasetError, match='no builder named .nope.*synthetic_hdsemg'):
    prepare.prepare('nope/x')


def test_geometry_is_read_from_the_builder(tiny_trials):
  spec, _ = tiny_trials
  assert spec.wrap_axis == 1 and spec.electrode_spacing_mm is None


def test_whole_electrode_displacement_moves_the_pattern_as_shift_grid_does():
  """The truth of synthetic_hdsemg/shifted: activity moves with the displacement (columns wrap)."""
  from hdsemg_jax.preprocessing import grid_shift
  model = signal_model.SignalModel(seed=3, num_gestures=2)
  spots = model.subject_spots(1, 0)
  base = model.activation_map(spots, 0.0, 0.0)
  for dc in (-3, 1, 4):
    np.testing.assert_allclose(model.activation_map(spots, 0.0, float(dc)),
                               grid_shift.shift_grid(base, (0, dc), wrap_axis=1), rtol=1e-12)
  # Rows translate: the rows that stay on the grid match; the array sees new skin at the edge.
  moved = model.activation_map(spots, 2.0, 0.0)
  np.testing.assert_allclose(moved[2:], base[:-2], rtol=1e-12)
  # displacement=None keeps the random one; a given one is used exactly.
  a = model.trial(1, 2, 0, 1, 30)
  assert not np.array_equal(a, model.trial(1, 2, 0, 1, 30, displacement=(0, 0)))
  np.testing.assert_array_equal(a, model.trial(1, 2, 0, 1, 30, displacement=None))


def test_shifted_config_records_its_truth(tmp_path):
  from tfds_builders.synthetic_hdsemg import synthetic_hdsemg_dataset_builder as synthetic
  prepare.import_builder('synthetic_hdsemg/shifted')
  import tensorflow_datasets as tfds
  builder = tfds.builder('synthetic_hdsemg/shifted', data_dir=str(tmp_path))  # Info only: nothing is built.
  meta = builder.info.metadata
  assert meta['session_shifts'] == [list(s) for s in synthetic.SHIFTED_SESSION_SHIFTS]
  assert meta['session_shifts'][0] == [0, 0]
  assert meta['sessions'] == [1, 2, 3, 4] and meta['wrap_axis'] == 1
