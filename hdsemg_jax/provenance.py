"""What produced a result: code version, library versions, device, config hash.

Every results row carries `collect(...)`, so a number can be traced to the exact
code, software and settings behind it without the workdir's other files.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import subprocess
from typing import Any

import jax

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Distribution names, as pip knows them, under the keys rows use.
_PACKAGES = {
    'jax': 'jax', 'jaxlib': 'jaxlib', 'flax': 'flax', 'optax': 'optax',
    'tfds': 'tensorflow-datasets', 'orbax_checkpoint': 'orbax-checkpoint',
    'ml_collections': 'ml-collections', 'numpy': 'numpy',
}


def canonical_json(value: Any) -> str:
  """One text per value: sorted keys, no whitespace, tuples as lists."""
  return json.dumps(value, sort_keys=True, separators=(',', ':'))


def config_hash(config_dict: dict[str, Any]) -> str:
  """sha256 of the canonical JSON of a resolved config (``config.to_dict()``)."""
  return hashlib.sha256(canonical_json(config_dict).encode()).hexdigest()


def _git(*args: str) -> str | None:
  try:
    proc = subprocess.run(['git', *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=30)
  except (OSError, subprocess.SubprocessError):
    return None  # No git installed, or it hung: the code version is unknown, not an error.
  return proc.stdout if proc.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def git_state() -> dict[str, Any]:
  """``{'git_commit', 'git_dirty'}`` of the project checkout; both None outside a git checkout."""
  commit = _git('rev-parse', 'HEAD')
  if commit is None:
    return {'git_commit': None, 'git_dirty': None}
  status = _git('status', '--porcelain')
  dirty = None if status is None else bool(status.strip())
  return {'git_commit': commit.strip(), 'git_dirty': dirty}


def versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
  """Installed versions of the core libraries (under the keys rows use) and of ``extra``
  distributions (under their own names); None for one not installed."""
  return {**_versions(tuple(_PACKAGES.items())), **_versions(tuple((d, d) for d in extra))}


@functools.lru_cache(maxsize=4)
def _versions(packages: tuple[tuple[str, str], ...]) -> dict[str, str | None]:
  out = {}
  for key, dist in packages:
    try:
      out[key] = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
      out[key] = None
  return out


def collect(config_dict: dict[str, Any], dataset: str, dataset_version: str) -> dict[str, Any]:
  """The provenance record of a results row."""
  devices = jax.devices()
  return {
      **git_state(),
      'versions': versions(),
      'device_kind': devices[0].device_kind,
      'device_platform': devices[0].platform,
      'device_count': len(devices),
      'matmul_precision': jax.config.jax_default_matmul_precision,
      'dataset': dataset,
      'dataset_version': dataset_version,
      'config_hash': config_hash(config_dict),
  }
