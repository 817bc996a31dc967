r"""Writes a tiny fake flexemg release, in the public release's file format.

  python -m tfds_builders.flexemg.dummy_data.generate OUT_DIR

Everything is generated from a seed; nothing is taken from the real recordings.
The files follow the release's layout and MATLAB 5 format (``arraymap.mat``,
``data/SSS-SessionN{Train,Test}/SSS-TTT.mat`` with ``raw`` uint16 ADC codes and
the ``p`` struct) with a short timeline so that builds take well under a second.
Tests generate it into a temporary folder, so no ``.mat`` file is tracked.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

import numpy as np
import scipy.io

LSB_MV = 0.0030517578125  # The release's ADC step.
LABEL_NAMES = ('Fist', 'Raise', 'Lower', 'Open')
NUM_COLUMNS = 96  # 64 electrodes and 32 unused ADC columns, as in the release.

# (subject, session, folder part, trial numbers): two subjects, both parts, a gap in the
# trial numbers and a session without a Train folder, like the shared subset.
DEFAULT_RECORDINGS = (
    (1, 1, 'Train', (1, 2)),
    (1, 1, 'Test', (1, 3)),
    (2, 2, 'Test', (2,)),
)


def fake_arraymap(seed: int = 0) -> np.ndarray:
  """A shuffled 16 x 4 uint8 map of channels 1..64, so a builder that ignores it fails."""
  rng = np.random.default_rng(seed)
  return (rng.permutation(64) + 1).reshape(16, 4).astype(np.uint8)


def fake_sequence(trial: int) -> np.ndarray:
  """A trial's gesture order (values 1-4), varying with the trial number."""
  return (np.roll(np.arange(4), trial) + 1).astype(np.uint8)


def fake_trial(subject: int, session: int, trial: int, *, timegest: int, timerest: int,
               tail: int, seed: int = 0) -> dict:
  """The variables of one trial file: ``raw`` (T, 96) uint16 and the ``p`` struct."""
  rng = np.random.default_rng([seed, subject, session, trial])
  num_frames = timerest + 4 * timegest + tail
  raw = np.zeros((num_frames, NUM_COLUMNS), np.uint16)
  # A DC offset near the release's plus noise, distinct per channel so placement is testable.
  offset = 11400 + 40 * np.arange(64)
  raw[:, :64] = offset + rng.integers(-300, 300, size=(num_frames, 64))
  raw[num_frames // 2, 70] = 51666  # The release's unused columns carry rare glitches.
  p = {
      'lsbmV': LSB_MV,
      'labelnames': np.array(LABEL_NAMES, dtype=object),  # Saved as a cell array.
      'numlabels': 4.0,
      'sequence': fake_sequence(trial),
      'reps': 1.0,
      'timegest': float(timegest),
      'timerest': float(timerest),
  }
  return {'p': p, 'raw': raw}


def write_release(root: os.PathLike | str,
                  recordings: Sequence[tuple[int, int, str, Sequence[int]]] = DEFAULT_RECORDINGS,
                  *, timegest: int = 50, timerest: int = 50, tail: int = 30,
                  seed: int = 0) -> str:
  """Writes a fake release under ``root`` and returns ``root``.

  Args:
    root: the folder to fill (created if needed); pass it as the builder's manual_dir.
    recordings: (subject, session, 'Train' or 'Test', trial numbers) per folder.
    timegest: ms (= frames at 1000 Hz) per gesture; the release has 5000.
    timerest: ms of rest before the first gesture; the release has 5000.
    tail: frames after the last gesture; the release has 3000.
    seed: seeds the arraymap and the signals.

  Returns:
    ``root`` as a string.
  """
  root = os.fspath(root)
  os.makedirs(os.path.join(root, 'data'), exist_ok=True)
  scipy.io.savemat(os.path.join(root, 'arraymap.mat'), {'arraymap': fake_arraymap(seed)})
  for subject, session, part, trials in recordings:
    folder = os.path.join(root, 'data', f'{subject:03d}-Session{session}{part}')
    os.makedirs(folder, exist_ok=True)
    for trial in trials:
      variables = fake_trial(subject, session, trial, timegest=timegest, timerest=timerest,
                             tail=tail, seed=seed)
      scipy.io.savemat(os.path.join(folder, f'{subject:03d}-{trial:03d}.mat'), variables,
                       do_compression=True)
  return root


def main(argv: Sequence[str]) -> None:
  if len(argv) != 2:
    raise SystemExit('usage: python -m tfds_builders.flexemg.dummy_data.generate OUT_DIR')
  print(write_release(argv[1]))


if __name__ == '__main__':
  main(sys.argv)
