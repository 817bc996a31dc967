"""Label-free alignment: known shifts recovered exactly, unit level and end to end."""

import numpy as np
import pytest

from hdsemg_jax.data import trials as trials_lib
from hdsemg_jax.preprocessing import alignment, grid_shift
from tfds_builders import prepare
from tfds_builders.synthetic_hdsemg import synthetic_hdsemg_dataset_builder as synthetic

SHIFTED = 'synthetic_hdsemg/shifted'


def _recordings(rng, grid=(16, 8), sources=5, windows=40, window=25):
  """Frames of an "arm" three grids long whose activity comes from a few smooth sources
  switching on and off; an array sees a (16, 8) window of it (`_view`), so a translated
  array sees real activity at its edges, not fill."""
  big = (3 * grid[0], grid[1])
  rows, cols = np.mgrid[:big[0], :big[1]]
  maps = []
  for _ in range(sources):
    r0, c0 = rng.uniform(grid[0], 2 * grid[0]), rng.uniform(0, grid[1])
    dc = (cols - c0 + grid[1] / 2) % grid[1] - grid[1] / 2  # Columns wrap.
    maps.append(np.exp(-0.5 * (((rows - r0) / 2.0)**2 + (dc / 1.2)**2)))
  weights = rng.uniform(0, 1, (windows, sources)) ** 2
  amplitude = 0.05 + np.einsum('ns,sij->nij', weights, np.array(maps))
  amplitude = np.repeat(amplitude, window, axis=0)
  return amplitude * rng.normal(size=amplitude.shape)


def _view(arm_frames, row_offset, grid=(16, 8), shift=(0, 0), gain=None):
  """What an array displaced by ``shift`` records: a (16, 8) window, columns rolled."""
  start = row_offset - shift[0]
  frames = np.roll(arm_frames[:, start:start + grid[0]], shift[1], axis=2)
  return frames * (1.0 if gain is None else gain)


@pytest.mark.parametrize('truth', [(0, 0), (2, 0), (-3, 1), (1, -4), (0, 3)])
def test_coactivation_recovers_a_shift_despite_new_gains(truth):
  rng = np.random.default_rng([truth[0] + 10, truth[1] + 10])
  arm = _recordings(rng)
  source = alignment.coactivation(_view(arm, 16))
  # The same arm recorded again through channel gains of its own (log std 0.35).
  gains = np.exp(rng.normal(0, 0.35, (16, 8)))
  target = _view(arm, 16, shift=truth, gain=gains)
  target = target + 0.01 * rng.normal(size=target.shape)
  assert alignment.estimate_shift(source, target, (3, 4), wrap_axis=1) == (-truth[0], -truth[1])


@pytest.mark.parametrize('truth', [(0, 0), (2, 0), (-1, 3), (3, -2)])
def test_activation_map_recovers_a_shift_without_gain_changes(truth):
  rng = np.random.default_rng(7)
  arm = _recordings(rng)
  source = alignment.activation_map(_view(arm, 16))
  target = _view(arm, 16, shift=truth)
  assert alignment.estimate_shift(source, target, (3, 4), wrap_axis=1) == (-truth[0], -truth[1])


@pytest.mark.parametrize('shift,wrap_axis', [((5, 0), 0), ((0, 3), 1), ((-7, 0), 0)])
def test_exact_circular_shift_of_the_same_frames_scores_one(shift, wrap_axis):
  rng = np.random.default_rng(0)
  frames = _view(_recordings(rng), 16)
  moved = grid_shift.shift_grid(frames, shift, wrap_axis)
  for source in (alignment.coactivation(frames), alignment.activation_map(frames)):
    target = (alignment.coactivation(moved) if source.ndim == 4
              else alignment.activation_map(moved))
    scores = alignment.shift_scores(source, target, (8, 4), wrap_axis)
    assert scores[(-shift[0], -shift[1])] == pytest.approx(1.0)
    assert alignment.estimate_shift(source, moved, (8, 4), wrap_axis) == (-shift[0], -shift[1])


def test_statistics_ignore_gains_and_offsets_as_documented():
  rng = np.random.default_rng(1)
  frames = _view(_recordings(rng), 16)
  gains = np.exp(rng.normal(0, 0.5, (16, 8)))
  offsets = rng.normal(0, 30, (16, 8))  # DC offsets, as flexemg's ADC has.
  np.testing.assert_allclose(alignment.coactivation(frames * gains + offsets),
                             alignment.coactivation(frames), atol=1e-9)
  # The map is not gain-invariant per channel, only overall.
  np.testing.assert_allclose(alignment.activation_map(3.0 * frames + offsets),
                             alignment.activation_map(frames), atol=1e-9)
  m = alignment.activation_map([frames[:500], frames[500:]])
  assert m.shape == (16, 8) and abs(m.mean()) < 1e-12 and m.std() == pytest.approx(1.0)


def test_candidate_shifts_order_and_wrap_duplicates():
  shifts = alignment.candidate_shifts((1, 4), (16, 8), wrap_axis=1)
  assert shifts[0] == (0, 0)
  assert shifts[1:5] == [(-1, 0), (0, -1), (0, 1), (1, 0)]
  # Along 8 wrapping columns, -4 and +4 are one shift, kept as +4.
  assert (0, 4) in shifts and (0, -4) not in shifts
  assert len(shifts) == 3 * 8


def test_ties_go_to_the_smallest_shift():
  flat = np.zeros((6, 4))
  flat[:, 1] = 1.0  # Identical under every row shift (rows wrap).
  frames = np.random.default_rng(0).normal(size=(200, 6, 4)) * (1 + flat)
  source = alignment.activation_map(frames)
  assert alignment.estimate_shift(source, frames, (2, 0), wrap_axis=0) == (0, 0)


@pytest.mark.parametrize('max_shift,wrap_axis,match', [
    ((15, 0), None, 'fewer than 2 of the 16'),
    ((1, 7), 0, 'fewer than 2 of the 8'),
    ((-1, 0), None, 'whole numbers'),
    ((1.5, 0), None, 'whole numbers'),
])
def test_bad_max_shift(max_shift, wrap_axis, match):
  with pytest.raises(ValueError, match=match):
    alignment.candidate_shifts(max_shift, (16, 8), wrap_axis)


def test_too_few_windows_is_an_error():
  with pytest.raises(ValueError, match='fewer than 3 windows'):
    alignment.coactivation(np.ones((50, 4, 4)), window=25)


@pytest.fixture(scope='module')
def shifted(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp('tfds_shifted')
  builder = prepare.prepare(SHIFTED, data_dir=str(data_dir))
  return builder, trials_lib.read_builder(builder)


def test_end_to_end_on_the_shifted_builder(shifted):
  """Per subject: session 1's odd repetitions are the training data; every session's even ones
  are aligned to them without labels, and the estimate is the truth in the metadata."""
  builder, (spec, trials) = shifted
  truth = builder.info.metadata['session_shifts']
  assert [tuple(t) for t in truth] == list(synthetic.SHIFTED_SESSION_SHIFTS)
  assert spec.wrap_axis == 1
  for subject in (1, 2):
    train = [t.emg for t in trials
             if t.subject == subject and t.session == 1 and t.repetition % 2]
    source = alignment.coactivation(train)
    for session in range(1, 5):
      test = [t.emg for t in trials
              if t.subject == subject and t.session == session and not t.repetition % 2]
      dr, dc = truth[session - 1]
      estimate = alignment.estimate_shift(source, test, (3, 4), spec.wrap_axis)
      assert estimate == (-dr, -dc), (subject, session)
      aligned = alignment.align(test[0], estimate, spec.wrap_axis)
      np.testing.assert_array_equal(aligned, grid_shift.shift_grid(test[0], (-dr, -dc), 1))
