"""Finds, reads and checks CapgMyo's preprocessed ``.mat`` recordings.

A copy of one database (DB-a, DB-b or DB-c) is a set of per-subject archives
under a folder (the TFDS ``manual_dir``): zips named ``dba-preprocessed-001.zip``
(or ``dba-s1.zip`` in the figshare copy of DB-a), or the same archives already
unzipped into folders named like the zip. Each holds ``SSS-GGG-TTT.mat`` files
(subject, gesture, trial; 1-based) with ``data`` (frames x 128 channels) and
1x1 ``gesture``, ``subject`` and ``trial`` variables.

`survey` checks a whole copy (complete, no duplicates, every file readable and
consistent with its name) and reports every problem at once, before anything is
written; `read` then yields the trials. This module needs numpy and scipy only,
not TensorFlow. Paths go through `epath` so that other file systems work too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import posixpath
import re
import zipfile
from typing import Iterable, Iterator

from absl import logging
from etils import epath
import numpy as np
import scipy.io

from tfds_builders.prepare import DatasetError

NUM_CHANNELS = 128
# Recordings of maximum voluntary force, not gestures; the builder leaves them out.
MAX_FORCE_GESTURES = (100, 101)
# The preprocessed release is well inside this; larger values hint at a different scaling.
LARGE_VALUE = 10.0
# Archives may lie in sub-folders of manual_dir nested up to this deep (capgmyo/dba/x.zip: 2).
_MAX_SUBFOLDER_DEPTH = 3

_MAT_NAME = re.compile(r'^(\d{3})-(\d{3})-(\d{3})\.mat$', re.IGNORECASE)
# `dba-preprocessed-001` (the release) or `dba-s1` (figshare), optionally `.zip`.
_ARCHIVE_NAME = re.compile(r'^(db[a-z])-(?:preprocessed-(\d+)|s(\d+))(\.zip)?$', re.IGNORECASE)
_METADATA_VARIABLES = ('gesture', 'subject', 'trial')


class CapgMyoError(DatasetError):
  """A CapgMyo copy is incomplete or holds a file that cannot be used."""


class _FileProblem(Exception):
  """What is wrong with one file; becomes a line of a `CapgMyoError`."""


@dataclasses.dataclass(frozen=True)
class Expected:
  """The files one build needs.

  Attributes:
    database: archive prefix, ``'dba'``, ``'dbb'`` or ``'dbc'``.
    num_file_subjects: subjects in the database, as numbered in file names.
    file_subjects: the subjects (file numbering) this build reads.
    num_gestures: gestures per subject, numbered from 1.
    num_trials: trials per gesture, numbered from 1.
    frames_per_trial: rows of every ``data`` array.
  """
  database: str
  num_file_subjects: int
  file_subjects: tuple[int, ...]
  num_gestures: int
  num_trials: int
  frames_per_trial: int

  @property
  def title(self) -> str:
    return f'DB-{self.database[-1]}'

  def archive_names(self, subject: int) -> str:
    """The names a subject's archive may have, for messages."""
    names = [f'{self.database}-preprocessed-{subject:03d}.zip',
             f'folder {self.database}-preprocessed-{subject:03d}/']
    if self.database == 'dba':
      names.append(f'dba-s{subject}.zip')
    return ' or '.join(names)


@dataclasses.dataclass(frozen=True, order=True)
class FileId:
  """A trial file's identity, from its name ``SSS-GGG-TTT.mat``."""
  subject: int
  gesture: int
  trial: int

  @property
  def name(self) -> str:
    return f'{self.subject:03d}-{self.gesture:03d}-{self.trial:03d}.mat'


@dataclasses.dataclass(frozen=True)
class Location:
  """Where a ``.mat`` file lies: a member of a zip, or a file under an unzipped folder."""
  archive: epath.Path
  member: str  # Posix path inside the archive.
  is_zip: bool
  label: str  # The archive's path relative to manual_dir, for messages.

  def describe(self) -> str:
    return f'{self.member} in {self.label}'


@dataclasses.dataclass(frozen=True)
class Survey:
  """A checked copy: every trial file to read, and what its values span."""
  files: tuple[tuple[FileId, Location], ...]
  value_range: tuple[float, float]


def survey(root: epath.PathLike, expected: Expected, dataset_name: str) -> Survey:
  """Checks a whole copy under ``root``; raises one `CapgMyoError` listing every problem.

  Reads every file, so nothing is written from a copy that fails part-way.
  """
  root = epath.Path(root)
  problems: list[str] = []
  found, unreadable_subjects = _inventory(root, expected, problems)

  files = []
  for file_id in sorted(found):
    locations = found[file_id]
    if len(locations) > 1:
      places = '; '.join(location.describe() for location in locations)
      problems.append(f'{file_id.name}: duplicate, found {len(locations)} times (in {places})')
    else:
      files.append((file_id, locations[0]))
  problems.extend(_missing(found, unreadable_subjects, expected))

  low, high = np.inf, -np.inf
  for file_id, location, result in _load_all(files, expected):
    if isinstance(result, _FileProblem):
      problems.append(f'{location.describe()}: {result}')
    else:
      low, high = min(low, float(result.min())), max(high, float(result.max()))

  if problems:
    raise CapgMyoError(_report(dataset_name, root, expected, problems))
  return Survey(files=tuple(files), value_range=(low, high))


def read(checked: Survey, expected: Expected) -> Iterator[tuple[FileId, np.ndarray]]:
  """Yields ``(file_id, data)`` of every trial of a `survey`; ``data`` is float32 (T, 128)."""
  for file_id, location, result in _load_all(checked.files, expected, warn=False):
    if isinstance(result, _FileProblem):  # Changed since the survey.
      raise CapgMyoError(f'{location.describe()}: {result}')
    yield file_id, result.astype(np.float32)


def _inventory(root: epath.Path, expected: Expected,
               problems: list[str]) -> tuple[dict[FileId, list[Location]], set[int]]:
  """Lists the trial files of the wanted subjects in every archive under ``root``."""
  found: dict[FileId, list[Location]] = {}
  unreadable_subjects = set()
  for archive, number, is_zip in _find_archives(root, expected.database):
    label = archive.relative_to(root).as_posix()
    if number < 1 or number > expected.num_file_subjects:
      problems.append(f'{label}: unexpected archive, {expected.title} has subjects '
                      f'1-{expected.num_file_subjects}')
      continue
    if number not in expected.file_subjects:
      continue  # Not asked for: a partial build leaves the other subjects' archives alone.
    try:
      members = _zip_members(archive) if is_zip else _folder_members(archive)
    except Exception as e:  # pylint: disable=broad-except
      problems.append(f'{label}: cannot be read as a {"zip archive" if is_zip else "folder"} '
                      f'({type(e).__name__}: {e})')
      unreadable_subjects.add(number)
      continue
    for member in members:
      match = _MAT_NAME.match(posixpath.basename(member))
      if not match:
        continue
      file_id = FileId(*(int(part) for part in match.groups()))
      location = Location(archive=archive, member=member, is_zip=is_zip, label=label)
      if file_id.gesture in MAX_FORCE_GESTURES:
        continue
      if file_id.subject != number:
        problems.append(f'{location.describe()}: a file of subject {file_id.subject} in the '
                        f'archive of subject {number}')
      elif not (1 <= file_id.gesture <= expected.num_gestures
                and 1 <= file_id.trial <= expected.num_trials):
        problems.append(f'{location.describe()}: unexpected file, {expected.title} has gestures '
                        f'1-{expected.num_gestures} and trials 1-{expected.num_trials}')
      else:
        found.setdefault(file_id, []).append(location)
  return found, unreadable_subjects


def _find_archives(root: epath.Path, database: str) -> list[tuple[epath.Path, int, bool]]:
  """The zips and unzipped folders of ``database`` under ``root``: (path, subject, is_zip)."""
  archives = []

  def visit(folder: epath.Path, depth: int) -> None:
    for entry in sorted(folder.iterdir()):
      if entry.name.startswith(('.', '__MACOSX')):
        continue
      match = _ARCHIVE_NAME.match(entry.name)
      is_dir = entry.is_dir()
      if match and (is_dir or match.group(4)):
        if match.group(1).lower() == database:
          archives.append((entry, int(match.group(2) or match.group(3)), not is_dir))
      elif is_dir and depth < _MAX_SUBFOLDER_DEPTH:
        visit(entry, depth + 1)

  visit(root, 0)
  return archives


def _zip_members(archive: epath.Path) -> list[str]:
  with archive.open('rb') as f, zipfile.ZipFile(f) as zf:
    return [name for name in zf.namelist() if _is_data_member(name)]


def _folder_members(folder: epath.Path) -> list[str]:
  members = []

  def visit(sub: epath.Path, prefix: str) -> None:
    # Not `rglob`: epath refuses `**` patterns (costly on remote file systems).
    for entry in sorted(sub.iterdir()):
      member = f'{prefix}{entry.name}'
      if not _is_data_member(member):
        continue
      if entry.is_dir():
        visit(entry, f'{member}/')
      else:
        members.append(member)

  visit(folder, '')
  return members


def _is_data_member(member: str) -> bool:
  # Archives made on macOS carry `__MACOSX/._name.mat` resource forks; they are not data.
  parts = member.split('/')
  return not any(part.startswith(('.', '__MACOSX')) for part in parts) and not member.endswith('/')


def _missing(found: dict[FileId, list[Location]], unreadable_subjects: set[int],
             expected: Expected) -> list[str]:
  """One line per missing file, or per subject when a whole archive is missing."""
  lines = []
  per_subject = expected.num_gestures * expected.num_trials
  for subject in expected.file_subjects:
    if subject in unreadable_subjects:
      continue  # Already reported; listing its files again would bury the cause.
    wanted = [FileId(subject, g, t) for g in range(1, expected.num_gestures + 1)
              for t in range(1, expected.num_trials + 1)]
    absent = [file_id for file_id in wanted if file_id not in found]
    if len(absent) == per_subject:
      lines.append(f'subject {subject}: missing, no {expected.archive_names(subject)} '
                   f'with its {per_subject} trial files')
    else:
      lines.extend(f'{file_id.name}: missing (subject {subject}\'s archive lacks it)'
                   for file_id in absent)
  return lines


def _report(dataset_name: str, root: epath.Path, expected: Expected, problems: list[str]) -> str:
  lines = [f'{dataset_name}: the CapgMyo {expected.title} copy in {root} cannot be used '
           f'({len(problems)} problem{"s" if len(problems) > 1 else ""}):']
  lines.extend(f'  - {problem}' for problem in problems)
  advice = (f'Nothing was written. Place every {expected.database}-preprocessed-NNN.zip archive '
            '(or its unzipped folder, not both) in the manual_dir; see '
            'tfds_builders/capgmyo/README.md.')
  if any(problem.startswith('subject ') for problem in problems):
    advice += (' To build from a partial copy on purpose, name its subjects, e.g. '
               f'capgmyo/{expected.database}-subjects-1to3.')
  lines.append(advice)
  return '\n'.join(lines)


def _load_all(files: Iterable[tuple[FileId, Location]], expected: Expected, warn: bool = True
              ) -> Iterator[tuple[FileId, Location, np.ndarray | _FileProblem]]:
  """Loads and checks files in order, opening each zip once."""
  for archive, group in itertools.groupby(files, key=lambda item: item[1].archive):
    group = list(group)
    if not group[0][1].is_zip:
      for file_id, location in group:
        yield file_id, location, _load_checked(
            lambda location=location: (location.archive / location.member).read_bytes(),
            file_id, location, expected, warn)
      continue
    with contextlib.ExitStack() as stack:
      try:
        zf = stack.enter_context(zipfile.ZipFile(stack.enter_context(archive.open('rb'))))
      except Exception as e:  # pylint: disable=broad-except
        for file_id, location in group:
          yield file_id, location, _FileProblem(f'its archive cannot be opened '
                                                f'({type(e).__name__}: {e})')
        continue
      for file_id, location in group:
        yield file_id, location, _load_checked(
            lambda location=location: zf.read(location.member),
            file_id, location, expected, warn)


def _load_checked(read_bytes, file_id: FileId, location: Location, expected: Expected,
                  warn: bool) -> np.ndarray | _FileProblem:
  try:
    try:
      raw = read_bytes()
    except Exception as e:  # pylint: disable=broad-except
      raise _FileProblem(f'cannot be read ({type(e).__name__}: {e})') from None
    data = _parse(raw, file_id, expected)
  except _FileProblem as problem:
    return problem
  peak = float(np.abs(data).max(initial=0.0))
  if warn and peak > LARGE_VALUE:
    logging.warning('%s: values reach %.4g, beyond +/-%g; the preprocessed release is not '
                    'expected to hold such values (kept as they are).',
                    location.describe(), peak, LARGE_VALUE)
  return data


def _parse(raw: bytes, file_id: FileId, expected: Expected) -> np.ndarray:
  """The checked ``data`` of one ``.mat`` file's bytes; raises `_FileProblem`."""
  try:
    mat = scipy.io.loadmat(io.BytesIO(raw), variable_names=('data', *_METADATA_VARIABLES))
  except Exception as e:  # pylint: disable=broad-except
    raise _FileProblem(f'cannot be read as a MATLAB .mat file ({type(e).__name__}: {e})') from None

  absent = [name for name in ('data', *_METADATA_VARIABLES) if name not in mat]
  if absent:
    raise _FileProblem(f'lacks the variable{"s" if len(absent) > 1 else ""} {", ".join(absent)}')

  from_name = {'gesture': file_id.gesture, 'subject': file_id.subject, 'trial': file_id.trial}
  for name in _METADATA_VARIABLES:
    value = np.asarray(mat[name])
    if value.size != 1 or value.dtype.kind not in 'uif':
      raise _FileProblem(f'variable {name!r} is not a single number '
                         f'(shape {value.shape}, dtype {value.dtype})')
    number = value.reshape(()).item()
    if number != from_name[name]:
      raise _FileProblem(f'holds {name}={number:g}, which contradicts its name '
                         f'({name} {from_name[name]})')

  data = np.asarray(mat['data'])
  if data.dtype.kind not in 'uif':
    raise _FileProblem(f"'data' is not numeric (dtype {data.dtype})")
  want = (expected.frames_per_trial, NUM_CHANNELS)
  if data.shape != want:
    raise _FileProblem(f"'data' has shape {data.shape}, expected {want} (frames x channels)")
  bad = data.size - int(np.count_nonzero(np.isfinite(data)))
  if bad:
    raise _FileProblem(f"'data' holds {bad} non-finite value{'s' if bad > 1 else ''} (NaN or inf)")
  return data
