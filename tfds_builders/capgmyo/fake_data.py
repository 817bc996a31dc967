r"""Writes fake CapgMyo copies in the published layout, for tests and dummy data.

The values are pseudo-random functions of the trial's identity, never taken from
recordings, so a test can recompute what any file holds (`trial_data`).

  python -m tfds_builders.capgmyo.fake_data OUT_DIR [--database=dba] [--subjects=1,2]
      [--frames=8] [--layout=zip|folder|figshare]
"""

from __future__ import annotations

import argparse
import io
import pathlib
import zipfile
from typing import Iterable, Sequence

import numpy as np
import scipy.io

LAYOUTS = ('zip', 'folder', 'figshare')
DUMMY_FRAMES = 8


def num_gestures(database: str) -> int:
  return 12 if database == 'dbc' else 8


def archive_name(database: str, file_subject: int, layout: str) -> str:
  """The archive's name without ``.zip``: ``dba-preprocessed-001`` or figshare's ``dba-s1``."""
  if layout == 'figshare':
    return f'{database}-s{file_subject}'
  return f'{database}-preprocessed-{file_subject:03d}'


def mat_name(file_subject: int, gesture: int, trial: int) -> str:
  return f'{file_subject:03d}-{gesture:03d}-{trial:03d}.mat'


def trial_data(database: str, file_subject: int, gesture: int, trial: int, frames: int,
               dtype=np.float64) -> np.ndarray:
  """What the fake file ``SSS-GGG-TTT.mat`` of ``database`` holds: (frames, 128)."""
  rng = np.random.default_rng([ord(database[-1]), file_subject, gesture, trial])
  return rng.uniform(-1.0, 1.0, (frames, 128)).astype(dtype)


def mat_bytes(data: np.ndarray, *, gesture: float, subject: float, trial: float) -> bytes:
  """A ``.mat`` file as published: ``data`` plus 1 x 1 ``gesture``, ``subject``, ``trial``."""
  buffer = io.BytesIO()
  scipy.io.savemat(buffer, {
      'data': data,
      'gesture': np.array([[gesture]], np.float64),
      'subject': np.array([[subject]], np.float64),
      'trial': np.array([[trial]], np.float64),
  })
  return buffer.getvalue()


def write_copy(root: str | pathlib.Path, database: str, file_subjects: Iterable[int], *,
               frames: int, layout: str = 'zip', member_dir: str = '',
               max_force: bool = True, dtype=np.float64) -> list[pathlib.Path]:
  """Writes one archive (or unzipped folder) per subject under ``root``; returns them.

  Args:
    root: the folder to write into (the manual_dir), created if needed.
    database: ``'dba'``, ``'dbb'`` or ``'dbc'``.
    file_subjects: subjects as numbered in file names.
    frames: rows of every trial's ``data``.
    layout: ``'zip'`` (``dba-preprocessed-001.zip``), ``'folder'`` (the same, unzipped)
      or ``'figshare'`` (``dba-s1.zip``).
    member_dir: a folder inside each archive holding the files, '' for none.
    max_force: also write the two maximum-force files (gestures 100 and 101), with
      another frame count, as the builder must leave them out unread.
    dtype: dtype of ``data``.
  """
  if layout not in LAYOUTS:
    raise ValueError(f'layout must be one of {LAYOUTS}, not {layout!r}')
  root = pathlib.Path(root)
  root.mkdir(parents=True, exist_ok=True)
  written = []
  for subject in file_subjects:
    files = {}
    for gesture in range(1, num_gestures(database) + 1):
      for trial in range(1, 11):
        data = trial_data(database, subject, gesture, trial, frames, dtype)
        files[mat_name(subject, gesture, trial)] = mat_bytes(
            data, gesture=gesture, subject=subject, trial=trial)
    if max_force:
      for gesture in (100, 101):
        data = trial_data(database, subject, gesture, 1, frames + 3, dtype)
        files[mat_name(subject, gesture, 1)] = mat_bytes(
            data, gesture=gesture, subject=subject, trial=1)
    name = archive_name(database, subject, layout)
    if layout == 'folder':
      folder = root / name / member_dir
      folder.mkdir(parents=True, exist_ok=True)
      for file_name, content in files.items():
        (folder / file_name).write_bytes(content)
      written.append(root / name)
    else:
      path = root / f'{name}.zip'
      with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for file_name, content in files.items():
          zf.writestr(f'{member_dir}/{file_name}' if member_dir else file_name, content)
      written.append(path)
  return written


def write_dummy_data(root: str | pathlib.Path) -> None:
  """The dummy manual_dir of the TFDS builder tests: person 1 of each database, 8 frames."""
  write_copy(root, 'dba', [1], frames=DUMMY_FRAMES, layout='zip')
  write_copy(root, 'dbb', [1, 2], frames=DUMMY_FRAMES, layout='folder')
  write_copy(root, 'dbc', [1], frames=DUMMY_FRAMES, layout='zip', member_dir='dbc-preprocessed-001')


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('out_dir')
  parser.add_argument('--database', default='dba', choices=('dba', 'dbb', 'dbc'))
  parser.add_argument('--subjects', default='1', help='file subjects, comma-separated')
  parser.add_argument('--frames', type=int, default=DUMMY_FRAMES)
  parser.add_argument('--layout', default='zip', choices=LAYOUTS)
  args = parser.parse_args(argv)
  subjects = [int(s) for s in args.subjects.split(',')]
  for path in write_copy(args.out_dir, args.database, subjects, frames=args.frames,
                         layout=args.layout):
    print(path)


if __name__ == '__main__':
  main()
