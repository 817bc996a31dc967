"""The workdir's results files: ``config.json``, ``results.jsonl`` and ``results.md``.

Other files are written to a temporary file and renamed, so a kill leaves either
the old or the new file. A row is appended as one ``write`` of a whole line and
fsynced; a kill inside that call can still leave a torn last line, which the next
run drops (`hdsemg_jax.workdir.finished_rows`) before it runs that pair again.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, TypedDict

SCHEMA_VERSION = 1
RESULTS_FILE = 'results.jsonl'
TABLE_FILE = 'results.md'
CONFIG_FILE = 'config.json'


class ResultRow(TypedDict, total=False):
  """One line of ``results.jsonl``: the scores of one fold and seed and what identifies them.

  `hdsemg_jax.run.rows` builds them (a network's in ``score_seed``, a classical
  model's in ``classical_row``, the shared fields in ``_row``). Tables
  of windows are keyed by the window in frames as a string, as JSON has it.
  Fields a model kind or an older version does not write are absent.
  """
  # What was run.
  dataset: str
  dataset_version: str
  synthetic: bool
  protocol: str
  model: str
  fold: Any  # The fold's id: a string (hand-made rows may use ints).
  seed: int  # A seed-free (classical) model's row carries the first seed.
  adapt_method: str
  augment: dict[str, Any]
  # Scores.
  frame_accuracy: float
  balanced_accuracy: float
  vote_accuracy: dict[str, float]  # Window -> accuracy of the majority vote over its frames.
  # Window -> accuracy of decisions from that many frames: a network's vote, a classical
  # model's windowed features. Absent from rows of older versions: read it by `decision_values`.
  decision_accuracy: dict[str, float]
  decision_rule: str  # 'vote' (networks) or 'window' (classical models).
  confusion_matrix: list[list[int]]  # Per frame: true class x predicted class.
  seed_independent: bool  # True: seeds do not change the row (classical models).
  shift_scores: list[dict[str, Any]]  # Scores under electrode shifts (eval.shifts).
  online: dict[str, Any]  # Scores of the streaming decoder (eval.online).
  # Costs.
  num_params: int  # Trainable: a network's parameters, a classical model's coefficients.
  num_total_params: int  # Every value the model holds (parameters and BatchNorm statistics).
  # The process's peak resident host memory so far (an upper bound for this row), and the
  # peak device memory in use where the backend reports it (None on the CPU).
  peak_host_memory_bytes: int
  peak_device_memory_bytes: int | None
  flops_per_frame: float  # Networks: one forward pass.
  flops_per_decision: dict[str, float]  # Classical models: per window.
  train_seconds: float  # With seed_parallel: all the fold's seeds together.
  inference_seconds_per_frame: float
  inference_seconds_per_decision: dict[str, float]  # Classical models: per window.
  num_train_windows: dict[str, int]  # Classical models: per window.
  # Classical models tuned on the training trials (model.selection): per window, the chosen
  # features, threshold, shrinkage or C, and the inner score; None with fixed settings.
  selection: dict[str, Any] | None
  num_train_frames: int
  num_finetune_frames: int
  align_shift: list[int] | None  # The label-free alignment's shift of the test trials.
  # How it ran.
  parallel: str  # The parallel plan's mode.
  num_devices: int
  num_cpu_devices: int
  seed_parallel: bool
  # The split: trial ids per role; with subjects and sessions; a hash of both and the data.
  split: dict[str, list[str]]
  split_detail: dict[str, dict[str, Any]]
  split_id: str
  protocol_subjects: list[Any] | None
  protocol_folds: list[Any] | None
  provenance: dict[str, Any]  # Git state, versions, devices, config hash.
  schema_version: int


def decision_values(row: ResultRow) -> Mapping[str, float]:
  """Window -> decision accuracy of ``row``; empty where it has neither table.

  A row without ``decision_accuracy`` (a network's, written before networks wrote
  it) is read from its ``vote_accuracy``: a network decides from W frames by
  voting over them.
  """
  table = row.get('decision_accuracy')
  return table if table is not None else row.get('vote_accuracy') or {}


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


def read_rows(path: str) -> list[ResultRow]:
  """Rows of a ``results.jsonl``; a malformed line is an error naming the file and line."""
  rows: list[ResultRow] = []
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
