"""Process-level JAX settings shared by the command-line tools and tests.

The compilation cache, the CPU's device count, several hosts, the resolution of a
run's ``parallel`` and ``num_cpu_devices`` (`configure_devices`, which must happen
before JAX starts), and quieter library logs (`quiet_library_logs`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from typing import Mapping

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


def auto_num_cpu_devices() -> int:
  """How many devices XLA splits the CPU into when ``num_cpu_devices='auto'``.

  The one place that decides it. A count this process has already chosen is
  kept (``jax_num_cpu_devices`` set in code, or
  ``XLA_FLAGS=--xla_force_host_platform_device_count=N``); otherwise one device.
  """
  if jax.config.jax_num_cpu_devices >= 1:
    return int(jax.config.jax_num_cpu_devices)
  match = re.search(r'--xla_force_host_platform_device_count=(\d+)',
                    os.environ.get('XLA_FLAGS', ''))
  return int(match.group(1)) if match else 1


def multi_host_env() -> bool:
  """Whether the environment says this process is one of several hosts of one program.

  ``JAX_COORDINATOR_ADDRESS`` (with ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``
  where no cluster manager supplies them), a TPU pod slice (several
  ``TPU_WORKER_HOSTNAMES``), or a SLURM / Open MPI job of several tasks.
  """
  env = os.environ
  if env.get('JAX_COORDINATOR_ADDRESS'):
    return True
  if len([h for h in env.get('TPU_WORKER_HOSTNAMES', '').split(',') if h.strip()]) > 1:
    return True
  return any(int(env.get(k, '1') or 1) > 1 for k in ('SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE'))


def partial_slurm_environment(env: Mapping[str, str]) -> str | None:
  """Why ``env`` is a SLURM job's but not one of its ``srun`` tasks' (None: it is fine).

  A shell inside ``salloc`` or a batch script has ``SLURM_NTASKS`` but not the step's
  variables; JAX would look for a coordinator there and fail obscurely.
  """
  ntasks = int(env.get('SLURM_NTASKS', '1') or 1)
  if ntasks > 1 and not env.get('JAX_COORDINATOR_ADDRESS') and not env.get(
      'SLURM_STEP_NODELIST'):
    return (f'SLURM_NTASKS={ntasks} says this is one of {ntasks} processes, but '
            'SLURM_STEP_NODELIST is not set: the program was not started by srun. Start it '
            'with srun (srun python -m experiments.main ...), or unset the SLURM_* variables '
            'for a one-process run.')
  return None


def initialize_distributed() -> bool:
  """`jax.distributed.initialize` when `multi_host_env`; returns whether it did.

  Must run before any JAX computation. Idempotent.
  """
  if not multi_host_env():
    return False
  if jax.distributed.is_initialized():
    return True
  env = os.environ
  partial = partial_slurm_environment(env)
  if partial:
    raise ValueError(partial)
  kwargs = {}
  for key, name in (('num_processes', 'JAX_NUM_PROCESSES'), ('process_id', 'JAX_PROCESS_ID')):
    if env.get(name):
      kwargs[key] = int(env[name])
  # CPU devices of several processes need a collectives backend; GPUs and TPUs have their own.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(**kwargs)
  return True


def _set_num_cpu_devices(requested: str) -> int:
  requested = str(requested).strip()
  if requested != 'auto' and not (requested.isdigit() and int(requested) >= 1):
    raise ValueError(f"num_cpu_devices={requested!r} must be 'auto' or a positive integer.")
  n = auto_num_cpu_devices() if requested == 'auto' else int(requested)
  try:
    jax.config.update('jax_num_cpu_devices', n)
  except RuntimeError:
    # JAX has started (a notebook, a test): the CPU's split is fixed by now.
    current = len(jax.devices('cpu'))
    if requested == 'auto':
      return current
    if n != current:
      raise ValueError(f'num_cpu_devices={n}, but JAX has already started with {current} CPU '
                       'device(s); set it before the first JAX computation (experiments.main '
                       'does) or use num_cpu_devices=auto.') from None
  return n


@dataclasses.dataclass(frozen=True)
class DeviceSettings:
  """The resolved ``parallel`` and ``num_cpu_devices`` of a run, and what JAX then sees."""
  parallel: str
  num_cpu_devices: int
  num_devices: int
  num_processes: int


def configure_devices(parallel: str, num_cpu_devices: str) -> DeviceSettings:
  """Sets up this process's devices for a run and resolves ``parallel``.

  Run before JAX initialises (experiments.main does) so that ``num_cpu_devices``
  ('auto' or N) takes effect: it sets how many host devices XLA splits the CPU
  into, starts `jax.distributed` on several hosts, and only then looks at the
  devices to resolve ``parallel='auto'`` (``sharding`` with several devices, else
  ``none``). Safe to call again.
  """
  from hdsemg_jax.training.parallel import resolve_mode  # Imports nothing that starts JAX.
  cpu_devices = _set_num_cpu_devices(num_cpu_devices)
  initialize_distributed()
  num_devices = jax.device_count()
  return DeviceSettings(parallel=resolve_mode(str(parallel), num_devices),
                        num_cpu_devices=cpu_devices, num_devices=num_devices,
                        num_processes=jax.process_count())


class _DropLibraryInfo(logging.Filter):
  """Drops INFO and DEBUG records logged from inside the noisy libraries' own files."""

  def __init__(self, fragments: tuple[str, ...]):
    super().__init__()
    self.fragments = fragments

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno >= logging.WARNING:
      return True
    path = record.pathname.replace(os.sep, '/')
    return not any(f in path for f in self.fragments)


# Orbax logs dozens of INFO lines per checkpoint through absl; they are not progress.
NOISY_LIBRARIES = ('/orbax/', '/tensorflow_datasets/', '/etils/', '/jax/_src/')


def quiet_library_logs() -> None:
  """Keeps the libraries' INFO logs out of the console; this project's progress stays."""
  from absl import logging as absl_logging
  handler = absl_logging.get_absl_handler()
  if not any(isinstance(f, _DropLibraryInfo) for f in handler.filters):
    handler.addFilter(_DropLibraryInfo(NOISY_LIBRARIES))
