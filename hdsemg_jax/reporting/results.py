"""The workdir's results files: ``config.json``, ``results.jsonl`` and ``results.md``.

Other files are written to a temporary file and renamed, so a kill leaves either
the old or the new file. A row is appended as one ``write`` of a whole line and
fsynced; a kill inside that call can still leave a torn last line, which the next
run drops (`hdsemg_jax.workdir.finished_rows`) before it runs that pair again.
"""

from __future__ import annotations

import json
import os
from typing import Any

SCHEMA_VERSION = 1
RESULTS_FILE = 'results.jsonl'
TABLE_FILE = 'results.md'
CONFIG_FILE = 'config.json'


def write_atomic(path: str, text: str) -> None:
  tmp = f'{path}.tmp{os.getpid()}'
  with open(tmp, 'w') as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def append_row(workdir: str, row: dict[str, Any]) -> None:
  """Appends one row to ``results.jsonl`` as a single fsynced line."""
  line = json.dumps({'schema_version': SCHEMA_VERSION, **row}, sort_keys=True) + '\n'
  with open(os.path.join(workdir, RESULTS_FILE), 'a') as f:
    f.write(line)
    f.flush()
    os.fsync(f.fileno())


def read_rows(path: str) -> list[dict[str, Any]]:
  """Rows of a ``results.jsonl``; a malformed line is an error naming the file and line."""
  rows = []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f'{path}:{number}: malformed results row ({e.msg}).') from None
      if not isinstance(row, dict):
        raise ValueError(f'{path}:{number}: a results row must be a JSON object.')
      rows.append(row)
  return rows


def write_json(path: str, value: Any) -> None:
  write_atomic(path, json.dumps(value, indent=2, sort_keys=True) + '\n')


def read_json(path: str, what: str) -> Any:
  """The JSON value in ``path``; a missing or malformed file is a ValueError naming it."""
  try:
    with open(path) as f:
      return json.load(f)
  except OSError as e:
    raise ValueError(f'{path}: cannot read {what} ({e.strerror or e}).') from None
  except json.JSONDecodeError as e:
    raise ValueError(f'{path}: {what} is not valid JSON ({e}).') from None
