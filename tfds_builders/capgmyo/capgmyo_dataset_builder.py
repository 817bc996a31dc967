"""capgmyo: CapgMyo DB-a, DB-b and DB-c (preprocessed release), from a manual download.

128 channels (8 modules of 8 x 2 electrodes) at 1000 Hz; the preprocessed release
is band-stop filtered at 45-55 Hz and keeps the middle 1 s of each trial. One
example is one trial:

* ``emg``: the file's ``data`` (frames x 128), not rescaled, each frame reshaped
  C-order to the 16 x 8 grid (channel c -> row c // 8, column c % 8).
* ``label``: the 0-based gesture on every frame.
* ``subject``: the person. DB-b recorded each person twice, as file subjects
  2p - 1 (session 1) and 2p (session 2); DB-a and DB-c have session 1 only.
* ``trial``: ``(gesture - 1) * 10 + t`` for file ``SSS-GGG-TTT.mat`` with t = TTT,
  unique within a session, with the parity of the repetition t.
* ``part``: ``''``.

The maximum-force recordings (``SSS-100-001.mat``, ``SSS-101-001.mat``) are left out.

Config names: ``dba``, ``dbb``, ``dbc`` need every subject's archive. A partial copy
is built only when asked for by naming its subjects (persons):
``dba-subjects-1to3``, ``dbb-subjects-2-5-7``; such a dataset is stored apart
from the full one and its metadata lists the subjects it holds.
"""

from __future__ import annotations

import dataclasses
import re
import threading

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import schema
from tfds_builders.capgmyo import recordings

CapgMyoError = recordings.CapgMyoError

GRID_SHAPE = (16, 8)
# 8 modules around the forearm, one per column of the 16 x 8 image as in Geng et al.
# (2016), so the 8 columns close round the arm. No source held here states the pitch
# or the order of the 128 channels within a module: see README.md ("Grid geometry").
GRID_GEOMETRY = schema.GridGeometry(wrap_axis=1, electrode_spacing_mm=None)
SAMPLING_RATE_HZ = 1000.0
TRIALS_PER_GESTURE = 10

# NinaPro DB5 exercise B, movements 13-20.
DBA_DBB_GESTURES = (
    'thumb up',
    'extension of index and middle, flexion of the others',
    'flexion of ring and little finger, extension of the others',
    'thumb opposing base of little finger',
    'abduction of all fingers',
    'fingers flexed together in fist',
    'pointing index',
    'adduction of extended fingers',
)
# NinaPro exercise A: 12 basic finger movements.
DBC_GESTURES = (
    'index flexion', 'index extension', 'middle flexion', 'middle extension',
    'ring flexion', 'ring extension', 'little finger flexion', 'little finger extension',
    'thumb adduction', 'thumb abduction', 'thumb flexion', 'thumb extension',
)

# `dba-subjects-1to3`, `dbb-subjects-2-5-7`, `dbc-subjects-1-4to6`.
_SUBSET_NAME = re.compile(r'^(db[abc])-subjects-(\d+(?:to\d+)?(?:-\d+(?:to\d+)?)*)$')


@dataclasses.dataclass
class CapgMyoConfig(tfds.core.BuilderConfig):
  """One CapgMyo database, or a subset of its subjects.

  Attributes:
    database: archive prefix: ``'dba'``, ``'dbb'`` or ``'dbc'``.
    num_file_subjects: subjects as numbered in the file names.
    two_sessions: file subject k is person ceil(k / 2), session 2 - k % 2 (DB-b).
    class_names: gesture names in file order.
    frames_per_trial: rows of every ``data`` array (1000 in the published files).
    subjects: the persons to hold, or None for all; the copy must hold all of them.
  """
  database: str = 'dba'
  num_file_subjects: int = 18
  two_sessions: bool = False
  class_names: tuple[str, ...] = DBA_DBB_GESTURES
  frames_per_trial: int = 1000
  subjects: tuple[int, ...] | None = None

  @property
  def num_persons(self) -> int:
    return self.num_file_subjects // 2 if self.two_sessions else self.num_file_subjects

  @property
  def persons(self) -> tuple[int, ...]:
    return tuple(self.subjects) if self.subjects else tuple(range(1, self.num_persons + 1))

  @property
  def file_subjects(self) -> tuple[int, ...]:
    if self.two_sessions:
      return tuple(k for p in self.persons for k in (2 * p - 1, 2 * p))
    return self.persons

  def person_session(self, file_subject: int) -> tuple[int, int]:
    """The (person, session) recorded in the files of ``file_subject``."""
    if self.two_sessions:
      return (file_subject + 1) // 2, 2 - file_subject % 2
    return file_subject, 1


_FULL_CONFIGS = (
    CapgMyoConfig(
        name='dba', database='dba', num_file_subjects=18,
        description='DB-a: 18 subjects x 8 gestures x 10 trials, one session.'),
    CapgMyoConfig(
        name='dbb', database='dbb', num_file_subjects=20, two_sessions=True,
        description='DB-b: 10 subjects x 2 sessions (days apart) x 8 gestures x 10 trials.'),
    CapgMyoConfig(
        name='dbc', database='dbc', num_file_subjects=10, class_names=DBC_GESTURES,
        description='DB-c: 10 subjects x 12 finger movements x 10 trials, one session.'),
)

_subset_configs: dict[str, CapgMyoConfig] = {}
_subset_lock = threading.Lock()


def _parse_subjects(spec: str) -> list[int]:
  subjects = []
  for token in spec.split('-'):
    first, _, last = token.partition('to')
    subjects.extend(range(int(first), int(last or first) + 1))
  return subjects


def subset_config(name: str) -> CapgMyoConfig | None:
  """The config of a subset name like ``dba-subjects-1to3``; None if ``name`` is not one.

  Raises:
    CapgMyoError: the name lists no subject, or one the database lacks.
  """
  match = _SUBSET_NAME.match(name)
  if not match:
    return None
  with _subset_lock:
    # The same object for the same name: TFDS rejects a second config object of one name.
    if name in _subset_configs:
      return _subset_configs[name]
    base = next(c for c in _FULL_CONFIGS if c.name == match.group(1))
    subjects = _parse_subjects(match.group(2))
    bad = sorted(set(s for s in subjects if not 1 <= s <= base.num_persons))
    if not subjects or bad:
      raise CapgMyoError(
          f'capgmyo/{name}: DB-{base.database[-1]} has subjects 1-{base.num_persons}; '
          f'{", ".join(map(str, bad)) or "none"} named.')
    config = dataclasses.replace(
        base, name=name, subjects=tuple(sorted(set(subjects))),
        description=f'{base.description} Only subjects {", ".join(map(str, sorted(set(subjects))))}.')
    _subset_configs[name] = config
    return config


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for CapgMyo (preprocessed release)."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = list(_FULL_CONFIGS)
  DEFAULT_CONFIG_NAME = 'dba'
  # Read from the code by the library, so datasets prepared without it load unchanged.
  GRID_GEOMETRY = GRID_GEOMETRY
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Download the preprocessed archives of the database you need:
    DB-a: dba-preprocessed-001.zip ... dba-preprocessed-018.zip
          (or the figshare copy, article 7210397, CC0: dba-s1.zip ... dba-s18.zip)
    DB-b: dbb-preprocessed-001.zip ... dbb-preprocessed-020.zip
    DB-c: dbc-preprocessed-001.zip ... dbc-preprocessed-010.zip
  from the CapgMyo page of Zhejiang University's CAPG lab (http://zju-capg.org/myo/data/)
  and place them in the manual_dir (--manual_dir=DIR; by default
  <data_dir>/downloads/manual/), directly or in sub-folders nested up to 3 deep.
  Unzipped folders named like the zip (e.g. dba-preprocessed-001/) work too, but
  keep either the zip or its folder, not both. To build from a partial copy, name
  its subjects: capgmyo/dba-subjects-1to3.
  """

  @classmethod
  def get_builder_config(cls, name: str, version=None) -> tfds.core.BuilderConfig | None:
    """Also resolves subset names (``dba-subjects-1to3``), which are made on demand."""
    config = super().get_builder_config(name, version)
    if config is None:
      config = subset_config(name)
    return config

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    return self.dataset_info_from_configs(
        features=schema.trial_features(GRID_SHAPE, list(cfg.class_names)),
        homepage='http://zju-capg.org/myo/data/',
        metadata=schema.trial_metadata(
            class_names=list(cfg.class_names), grid_shape=GRID_SHAPE,
            sampling_rate_hz=SAMPLING_RATE_HZ, synthetic=False, geometry=GRID_GEOMETRY,
            database=cfg.database,
            subjects=list(cfg.persons),
            sessions=[1, 2] if cfg.two_sessions else [1],
            frames_per_trial=cfg.frames_per_trial,
            # Filled in from the files while preparing: [min, max] of every `emg` value.
            value_range=None,
            trial_numbering='trial = (gesture - 1) * 10 + t for file SSS-GGG-TTT.mat with '
                            't = TTT; repetition t, so trial and t share their parity',
            source='CapgMyo preprocessed release (45-55 Hz band-stop, middle 1 s of each '
                   'trial); maximum-force recordings (gestures 100, 101) left out',
        ),
    )

  def _expected(self) -> recordings.Expected:
    cfg = self.builder_config
    return recordings.Expected(
        database=cfg.database, num_file_subjects=cfg.num_file_subjects,
        file_subjects=cfg.file_subjects, num_gestures=len(cfg.class_names),
        num_trials=TRIALS_PER_GESTURE, frames_per_trial=cfg.frames_per_trial)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    try:
      manual_dir = dl_manager.manual_dir
    except AssertionError as e:  # TFDS's way of saying the folder is missing or empty.
      raise CapgMyoError(
          f'{self.info.full_name}: no CapgMyo archives to read: {e}'.rstrip()) from None
    # Every file is read and checked here, before TFDS writes anything.
    checked = recordings.survey(manual_dir, self._expected(), self.info.full_name)
    self.info.metadata['value_range'] = [float(v) for v in checked.value_range]
    # One split holds every trial; the experiment protocols decide train and test.
    return {'train': self._generate_examples(checked)}

  def _generate_examples(self, checked: recordings.Survey):
    cfg = self.builder_config
    for file_id, data in recordings.read(checked, self._expected()):
      person, session = cfg.person_session(file_id.subject)
      number = (file_id.gesture - 1) * TRIALS_PER_GESTURE + file_id.trial
      # C-order: channel c lands on row c // 8, column c % 8.
      emg = data.reshape(data.shape[0], *GRID_SHAPE)
      yield schema.trial_key(person, session, '', number), {
          'emg': emg,
          'label': np.full(data.shape[0], file_id.gesture - 1, np.int32),
          'subject': person,
          'session': session,
          'trial': number,
          'part': '',
      }
