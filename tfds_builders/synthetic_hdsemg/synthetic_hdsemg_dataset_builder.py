"""synthetic_hdsemg: deterministic synthetic HD-sEMG gesture trials (no download).

Configs mirror CapgMyo's shapes (8 gestures x 10 trials, 1000 Hz, a 16 x 8
grid, 2 sessions). Results on this data are synthetic and labelled so.

``shifted`` is for electrode-shift tests: each session's array is displaced by a
known whole number of electrodes (``SHIFTED_SESSION_SHIFTS``, also in the dataset
metadata as ``session_shifts``). Session s's activity pattern is session 1's moved
by ``session_shifts[s - 1] = (dr, dc)`` in the sense of
`hdsemg_jax.preprocessing.grid_shift.shift_grid` (content at (r, c) appears at
(r + dr, c + dc); columns wrap, rows translate), so the shift that aligns session
s back onto session 1 is ``(-dr, -dc)``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import schema
from tfds_builders.synthetic_hdsemg import signal_model


@dataclasses.dataclass
class SyntheticConfig(tfds.core.BuilderConfig):
  num_subjects: int = 4
  num_sessions: int = 2
  num_gestures: int = 8
  num_trials: int = 10
  frames_per_trial: int = 300
  grid_shape: tuple[int, int] = (16, 8)
  seed: int = 20200525
  # Per session (session s at index s - 1), the whole-electrode array displacement
  # (rows, columns) that replaces the random one; None keeps the random one.
  session_shifts: tuple[tuple[int, int], ...] | None = None


# The `shifted` config's truth: session 1 in place, then known (rows, columns) shifts.
SHIFTED_SESSION_SHIFTS = ((0, 0), (2, 0), (-1, 3), (3, -2))


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for synthetic_hdsemg."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  # The signal model's columns wrap round the forearm; it has no physical pitch.
  GRID_GEOMETRY = schema.GridGeometry(wrap_axis=1, electrode_spacing_mm=None)
  BUILDER_CONFIGS = [
      SyntheticConfig(
          name='small',
          description='The embedded default: 4 subjects x 2 sessions x 8 gestures x 10 trials '
                      'of 300 frames; sized to train on a 2-core CPU in minutes.'),
      SyntheticConfig(
          name='capgmyo',
          description='CapgMyo DB-b shapes: 10 subjects x 2 sessions x 8 gestures x 10 trials '
                      'of 1000 frames (about 0.8 GB).',
          num_subjects=10, frames_per_trial=1000),
      SyntheticConfig(
          name='tiny',
          description='For tests: 3 subjects x 2 sessions x 3 gestures x 4 trials of 40 frames.',
          num_subjects=3, num_gestures=3, num_trials=4, frames_per_trial=40),
      SyntheticConfig(
          name='shifted',
          description='For electrode-shift tests: 2 subjects x 4 sessions x 4 gestures x 4 '
                      'trials of 50 frames; session s displaced by SHIFTED_SESSION_SHIFTS[s - 1] '
                      'whole electrodes (rows, columns) relative to session 1.',
          num_subjects=2, num_sessions=4, num_gestures=4, num_trials=4, frames_per_trial=50,
          session_shifts=SHIFTED_SESSION_SHIFTS),
  ]
  DEFAULT_CONFIG_NAME = 'small'

  @property
  def _model(self) -> signal_model.SignalModel:
    cfg = self.builder_config
    return signal_model.SignalModel(seed=cfg.seed, num_gestures=cfg.num_gestures,
                                    grid_shape=tuple(cfg.grid_shape))

  def _displacement(self, session: int) -> tuple[int, int] | None:
    shifts = self.builder_config.session_shifts
    return None if shifts is None else tuple(shifts[session - 1])

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    class_names = [f'gesture_{g + 1}' for g in range(cfg.num_gestures)]
    extra = {}
    if cfg.session_shifts is not None:
      if len(cfg.session_shifts) != cfg.num_sessions:
        raise ValueError(f'synthetic_hdsemg/{cfg.name}: session_shifts has '
                         f'{len(cfg.session_shifts)} entries for {cfg.num_sessions} sessions.')
      extra = {
          'session_shifts': [[int(v) for v in s] for s in cfg.session_shifts],
          'session_shifts_meaning': (
              'entry s - 1: session s is session 1 shifted by (rows, columns) as '
              'hdsemg_jax.preprocessing.grid_shift.shift_grid shifts (columns wrap); '
              'the aligning shift is the negation'),
      }
    return self.dataset_info_from_configs(
        features=schema.trial_features(tuple(cfg.grid_shape), class_names),
        homepage='https://github.com/hdsemg-jax/hdsemg-jax',
        metadata=schema.trial_metadata(
            class_names=class_names, grid_shape=tuple(cfg.grid_shape),
            sampling_rate_hz=self._model.sampling_rate_hz, synthetic=True,
            geometry=self.GRID_GEOMETRY,
            subjects=list(range(1, cfg.num_subjects + 1)),
            sessions=list(range(1, cfg.num_sessions + 1)), **extra),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Nothing to download: the data is generated.
    # One split holds every trial; the experiment protocols decide train and test.
    return {'train': self._generate_examples()}

  def _generate_examples(self):
    cfg = self.builder_config
    model = self._model
    for subject in range(1, cfg.num_subjects + 1):
      for session in range(1, cfg.num_sessions + 1):
        for gesture in range(cfg.num_gestures):
          for trial in range(1, cfg.num_trials + 1):
            # Trials are numbered per gesture, as in CapgMyo's SSS-GGG-TTT files.
            number = gesture * cfg.num_trials + trial
            emg = model.trial(subject, session, gesture, trial, cfg.frames_per_trial,
                              displacement=self._displacement(session))
            yield schema.trial_key(subject, session, '', number), {
                'emg': emg,
                'label': np.full(cfg.frames_per_trial, gesture, np.int32),
                'subject': subject,
                'session': session,
                'trial': number,
                'part': '',
            }
