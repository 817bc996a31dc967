"""flexemg: real HD-sEMG gesture trials from a flexible 16 x 4 forearm array.

The public release of Moin et al. (ISCAS 2018) holds 3 subjects, up to 3
sessions each, split into ``Train`` and ``Test`` folders of 28-second trials.
Every trial runs through the same timeline: rest, then 4 gestures back to back
(in the order of ``p.sequence``), then rest again.

One example is one whole trial file, kept continuous so that filters can run
over it:

* ``emg``: the 64 electrodes in mV, placed on the 16 x 4 grid by ``arraymap.mat``
  (the unused ADC columns 64-95 are dropped);
* ``label``: 0 = rest, 1..4 = Fist, Raise, Lower, Open (``p.sequence`` values
  map straight through), and -1 where the authors drop frames: 20% of
  ``timegest`` on each side of every label change, the same number of frames at
  the start of the file, and everything after the last gesture (in the release:
  the first 1000 and the last 3000 samples);
* ``part``: ``'train'`` or ``'test'``, from the folder name.

The release is downloaded by hand (see MANUAL_DOWNLOAD_INSTRUCTIONS); any
subset of its trial files can be built.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from typing import Any

import numpy as np
import scipy.io
import tensorflow_datasets as tfds

from tfds_builders import prepare, schema

CLASS_NAMES = ('rest', 'Fist', 'Raise', 'Lower', 'Open')
GRID_SHAPE = (16, 4)
NUM_ELECTRODES = GRID_SHAPE[0] * GRID_SHAPE[1]
# The release stores no rate; DATA.md and the paper give 1000 Hz, and the
# p.timegest / p.timerest durations in ms then equal sample counts.
SAMPLING_RATE_HZ = 1000.0
# The sources (release README, DATA.md, arraymap.mat, the paper's abstract) say neither
# which way the array lies on the forearm nor its electrode pitch. The recordings do:
# row 0 correlates with row 15 (0.66, band-passed, mean over 15 trials) as strongly as
# with row 1 (0.69), far above row 8 (0.28), so the 16-electrode axis closes round the
# forearm; columns 0 and 3 (0.54) are the least alike of the 4 columns, so that axis
# does not wrap. See README.md ("Grid geometry").
GRID_GEOMETRY = schema.GridGeometry(wrap_axis=0, electrode_spacing_mm=None)
# Fraction of p.timegest dropped on each side of a label change (the authors' 20%).
MARGIN_FRACTION = 0.2
RELEASE_URL = 'https://github.com/a-moin/flexemg'

_FOLDER_RE = re.compile(r'^(\d{3})-Session(\d+)(Train|Test)$')
_FILE_RE = re.compile(r'^(\d{3})-(\d{3})\.mat$')
_REQUIRED_P_FIELDS = ('lsbmV', 'sequence', 'timegest', 'timerest')

_INSTRUCTIONS = f"""\
Clone the public release and pass its root folder as manual_dir:

  git clone {RELEASE_URL}
  python -m tfds_builders.prepare flexemg --manual_dir=flexemg --data_dir=DIR

manual_dir must hold `arraymap.mat` and `data/SSS-SessionN{{Train,Test}}/SSS-TTT.mat`
(any subset of the trial files will do).
"""


@dataclasses.dataclass(frozen=True)
class Recording:
  """One trial file of the release and its identity."""
  subject: int
  session: int
  part: str
  trial: int
  path: str


def _error(message: str) -> prepare.DatasetError:
  return prepare.DatasetError(f'flexemg: {message}')


def find_recordings(root: os.PathLike | str) -> list[Recording]:
  """Lists the trial files under ``root/data``, sorted by identity.

  Raises:
    DatasetError: ``root/data`` is missing or holds no trial file, or a file's
      subject disagrees with its folder's.
  """
  data_dir = os.path.join(os.fspath(root), 'data')
  if not os.path.isdir(data_dir):
    raise _error(f'no data folder at {data_dir}.\n{_INSTRUCTIONS}')
  recordings = []
  for folder in sorted(os.listdir(data_dir)):
    folder_match = _FOLDER_RE.match(folder)
    if not folder_match or not os.path.isdir(os.path.join(data_dir, folder)):
      continue  # Not a session folder of the release (e.g. .DS_Store); nothing to read.
    subject, session, part = folder_match.groups()
    for name in sorted(os.listdir(os.path.join(data_dir, folder))):
      file_match = _FILE_RE.match(name)
      if not file_match:
        continue
      path = os.path.join(data_dir, folder, name)
      if file_match.group(1) != subject:
        raise _error(f'{path}: file subject {file_match.group(1)} differs from its '
                     f'folder {folder!r}; is the release laid out as published?')
      recordings.append(Recording(subject=int(subject), session=int(session), part=part.lower(),
                                  trial=int(file_match.group(2)), path=path))
  if not recordings:
    raise _error(f'no trial files (SSS-SessionN{{Train,Test}}/SSS-TTT.mat) under {data_dir}.\n'
                 f'{_INSTRUCTIONS}')
  return recordings


def missing_folders(recordings: list[Recording]) -> list[str]:
  """Session folders that some subjects have and others lack (``SSS-SessionN{Train,Test}``).

  The release has the same folders for every subject; a copy that lacks one would
  silently lose the folds that need it.
  """
  held: dict[int, set[tuple[int, str]]] = {}
  for r in recordings:
    held.setdefault(r.subject, set()).add((r.session, r.part))
  everywhere = set().union(*held.values()) if held else set()
  return [f'{subject:03d}-Session{session}{part.capitalize()}' for subject in sorted(held)
          for session, part in sorted(everywhere - held[subject])]


def _load_mat(path: str) -> dict[str, Any]:
  try:
    return scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
  except Exception as e:  # scipy raises many types (ValueError, MatReadError, OSError, ...).
    raise _error(f'cannot read {path} as a MATLAB file ({type(e).__name__}: {e}).') from e


def read_arraymap(path: os.PathLike | str) -> np.ndarray:
  """Reads ``arraymap.mat``: the 1-based channel (16, 4) at each grid position.

  Raises:
    DatasetError: the file is missing, unreadable or not a permutation of 1..64.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise _error(f'{path} not found: it maps grid positions to channels.\n{_INSTRUCTIONS}')
  mat = _load_mat(path)
  if 'arraymap' not in mat:
    raise _error(f'{path} has no variable `arraymap`.')
  arraymap = np.asarray(mat['arraymap'])
  if arraymap.shape != GRID_SHAPE:
    raise _error(f'{path}: `arraymap` has shape {arraymap.shape}, expected {GRID_SHAPE}.')
  if sorted(arraymap.ravel().tolist()) != list(range(1, NUM_ELECTRODES + 1)):
    raise _error(f'{path}: `arraymap` must hold each channel 1..{NUM_ELECTRODES} once.')
  return arraymap.astype(np.int64)


def timeline_labels(num_frames: int, sequence: np.ndarray, timegest: int,
                    timerest: int) -> np.ndarray:
  """Per-frame labels of one trial, -1 on the frames the authors drop.

  Args:
    num_frames: frames in the file.
    sequence: gesture classes (1-based) in the order they were performed.
    timegest: frames per gesture.
    timerest: frames of rest before the first gesture.

  Returns:
    int32 (num_frames,).
  """
  sequence = np.asarray(sequence, np.int32).reshape(-1)
  end = timerest + len(sequence) * timegest
  label = np.zeros(num_frames, np.int32)
  for j, gesture in enumerate(sequence):
    label[timerest + j * timegest:timerest + (j + 1) * timegest] = gesture
  margin = int(round(MARGIN_FRACTION * timegest))
  # Changes are found before any frame is dropped, so each margin centres on a true boundary.
  changes = np.flatnonzero(np.diff(label)) + 1
  for change in changes:
    label[max(change - margin, 0):change + margin] = schema.UNUSED_LABEL
  # The authors' first 1000 / last 3000 samples: the start-up margin and the trailing rest.
  label[:margin] = schema.UNUSED_LABEL
  label[end:] = schema.UNUSED_LABEL
  return label


def _scalar(p: Any, field: str, path: str) -> float:
  value = np.asarray(getattr(p, field))
  if value.size != 1 or not np.issubdtype(value.dtype, np.number):
    raise _error(f'{path}: p.{field} should be one number, got {value!r}.')
  return float(value.reshape(()))


def _frames(p: Any, field: str, path: str) -> int:
  """A duration field of ``p`` in ms, as a whole number of frames."""
  frames = _scalar(p, field, path) * SAMPLING_RATE_HZ / 1000.0
  if frames != int(frames) or frames <= 0:
    raise _error(f'{path}: p.{field} = {getattr(p, field)!r} is not a positive whole '
                 'number of frames.')
  return int(frames)


def read_trial(path: os.PathLike | str, arraymap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Reads one trial file: ``emg`` float32 (T, 16, 4) in mV and ``label`` int32 (T,).

  Raises:
    DatasetError: naming ``path``, when the file is unreadable, lacks ``raw`` or
      a field of ``p``, or its shapes disagree with the timeline in ``p``.
  """
  path = os.fspath(path)
  mat = _load_mat(path)
  for var in ('raw', 'p'):
    if var not in mat:
      raise _error(f'{path} has no variable `{var}`; is it a flexemg trial file?')
  p = mat['p']
  missing = [f for f in _REQUIRED_P_FIELDS if not hasattr(p, f)]
  if missing:
    raise _error(f'{path}: struct `p` lacks field(s) {", ".join(missing)}.')

  raw = np.asarray(mat['raw'])
  if raw.ndim != 2 or raw.shape[1] < NUM_ELECTRODES or not np.issubdtype(raw.dtype, np.number):
    raise _error(f'{path}: `raw` has shape {raw.shape} ({raw.dtype}), expected numeric '
                 f'(frames, >= {NUM_ELECTRODES} channels).')

  sequence = np.atleast_1d(np.asarray(p.sequence))
  if (sequence.ndim != 1 or not np.issubdtype(sequence.dtype, np.number)
      or not np.all(np.isin(sequence, np.arange(1, len(CLASS_NAMES))))):
    raise _error(f'{path}: p.sequence = {p.sequence!r}; expected gesture numbers '
                 f'1..{len(CLASS_NAMES) - 1}.')
  if hasattr(p, 'labelnames'):
    names = [str(n) for n in np.atleast_1d(p.labelnames)]
    if names != list(CLASS_NAMES[1:]):
      raise _error(f'{path}: p.labelnames = {names}, expected {list(CLASS_NAMES[1:])}; '
                   'the class order would not match.')
  if hasattr(p, 'reps') and _scalar(p, 'reps', path) != 1:
    raise _error(f'{path}: p.reps = {p.reps!r}; only the release\'s single repetition '
                 'per trial has a documented timeline.')
  timegest = _frames(p, 'timegest', path)
  timerest = _frames(p, 'timerest', path)
  end = timerest + len(sequence) * timegest
  if raw.shape[0] < end:
    raise _error(f'{path}: `raw` has {raw.shape[0]} frames but p.timerest + '
                 f'{len(sequence)} x p.timegest spans {end}.')

  lsb_mv = _scalar(p, 'lsbmV', path)
  # Multiplying in float64 first keeps each mV value the correctly rounded float32.
  emg = (raw[:, arraymap - 1].astype(np.float64) * lsb_mv).astype(np.float32)
  return emg, timeline_labels(raw.shape[0], sequence, timegest, timerest)


def recordings_metadata(recordings: list[Recording]) -> list[dict[str, Any]]:
  """The (subject, session, part) folders found and their trial numbers, JSON-ready."""
  groups: dict[tuple[int, int, str], list[int]] = {}
  for r in recordings:
    groups.setdefault((r.subject, r.session, r.part), []).append(r.trial)
  return [{'subject': s, 'session': n, 'part': part, 'trials': sorted(trials)}
          for (s, n, part), trials in sorted(groups.items())]


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for flexemg."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release: one example per trial file.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS
  # Read from the code by the library, so datasets prepared without it load unchanged.
  GRID_GEOMETRY = GRID_GEOMETRY

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=schema.trial_features(GRID_SHAPE, list(CLASS_NAMES)),
        homepage=RELEASE_URL,
        # `recordings` is filled in from manual_dir when the dataset is built.
        metadata=schema.trial_metadata(
            class_names=list(CLASS_NAMES), grid_shape=GRID_SHAPE,
            sampling_rate_hz=SAMPLING_RATE_HZ, synthetic=False, geometry=GRID_GEOMETRY,
            margin_fraction=MARGIN_FRACTION, release=RELEASE_URL),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    try:
      root = dl_manager.manual_dir
    except AssertionError as e:  # TFDS's way of saying the folder is missing or empty.
      raise _error(f'{str(e).splitlines()[0]}\n{_INSTRUCTIONS}') from None
    arraymap = read_arraymap(os.path.join(os.fspath(root), 'arraymap.mat'))
    recordings = find_recordings(root)
    missing = missing_folders(recordings)
    if missing:
      # Built anyway (a pool without them can still run); a run whose folds need them is
      # refused by name (hdsemg_jax.run.setup.check_complete).
      logging.warning('flexemg: %s lacks the folder(s) %s, which the other subjects have: '
                      'the copy looks incomplete, and the folds that need them cannot run.',
                      os.path.join(os.fspath(root), 'data'), ', '.join(missing))
    found = recordings_metadata(recordings)
    self.info.metadata['recordings'] = found
    self.info.metadata['subjects'] = sorted({g['subject'] for g in found})
    self.info.metadata['sessions'] = sorted({g['session'] for g in found})
    # One split holds every trial; the experiment protocols decide train and test.
    return {'train': self._generate_examples(recordings, arraymap)}

  def _generate_examples(self, recordings: list[Recording], arraymap: np.ndarray):
    for r in recordings:
      emg, label = read_trial(r.path, arraymap)
      yield schema.trial_key(r.subject, r.session, r.part, r.trial), {
          'emg': emg,
          'label': label,
          'subject': r.subject,
          'session': r.session,
          'trial': r.trial,
          'part': r.part,
      }
