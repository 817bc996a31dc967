"""Process-level JAX settings shared by the command-line tools and tests."""

from __future__ import annotations

import os

import jax

CACHE_ENV = 'HDSEMG_JAX_CACHE_DIR'


def enable_compilation_cache(path: str | None = None) -> str:
  """Turns on JAX's persistent compilation cache (``$HDSEMG_JAX_CACHE_DIR`` or ~/.cache)."""
  path = path or os.environ.get(CACHE_ENV) or os.path.join(
      os.path.expanduser('~'), '.cache', 'hdsemg_jax', 'xla')
  os.makedirs(path, exist_ok=True)
  jax.config.update('jax_compilation_cache_dir', path)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.2)
  return path
