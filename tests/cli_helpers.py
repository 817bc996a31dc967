"""Running the command line from tests: one home for the subprocess details."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CONFIG = 'experiments/configs/tiny.py'
FAULT_MAIN = os.path.join(ROOT, 'tests', 'fault_main.py')


def cli_env(**extra: str) -> dict[str, str]:
  """The environment of a CLI subprocess: CPU only, no inherited device or host settings."""
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', **extra}
  for key in ('XLA_FLAGS', 'JAX_COORDINATOR_ADDRESS'):
    if key not in extra:
      env.pop(key, None)
  return env


def main_command(*args: str, config: str = TINY_CONFIG, fault: str | None = None) -> list[str]:
  """``python -m experiments.main --config=CONFIG ARGS`` (under `fault_main` with a fault)."""
  head = [sys.executable, FAULT_MAIN, fault] if fault else [sys.executable, '-m',
                                                               'experiments.main']
  return [*head, f'--config={config}', *args]


# Measurements of the machine (wall-clock time, the process's peak memory): they differ
# between two runs of the same config.
TIMINGS = ('train_seconds', 'inference_seconds_per_frame', 'peak_host_memory_bytes',
           'peak_device_memory_bytes')


def read_rows(workdir: Any, drop: tuple[str, ...] = TIMINGS) -> list[dict[str, Any]]:
  """The rows of ``workdir/results.jsonl`` without the fields that differ between runs."""
  rows = [json.loads(line) for line in open(os.path.join(workdir, 'results.jsonl'))]
  for r in rows:
    for key in drop:
      r.pop(key, None)
  return rows
