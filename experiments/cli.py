"""How every command starts, fails and stops: one line per error, one exit code per kind.

  if __name__ == '__main__':
    cli.run(main)                      # absl's app.run with the project's flag parser

Exit codes: 0 done; 2 a usage or config error, refused before anything was
written (`UsageError`, `hdsemg_jax.config.ConfigError`, a dataset that cannot be
read, a workdir another run holds); 1 a run that failed while running (training
diverged, a file could not be written: an OSError names its path); 130 / 143
interrupted by SIGINT / SIGTERM, with one line saying that rerunning the same
command resumes. Errors are printed once, as ``error: ...`` on stderr, without
a traceback.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import signal
import sys
from typing import Callable, NoReturn

from absl import app, flags

USAGE_EXIT = 2
FAILED_EXIT = 1
RESUME_HINT = 'finished folds and seeds are kept; rerun the same command to resume'


class UsageError(ValueError):
  """A command-line mistake (flags, arguments): exit 2."""


def command_line() -> str:
  """This process's command as a user would type it: ``python -m <module> <arguments>``."""
  main_module = sys.modules.get('__main__')
  spec = getattr(main_module, '__spec__', None)
  head = ['python', '-m', spec.name] if spec is not None and spec.name else ['python', sys.argv[0]]
  return shlex.join([*head, *sys.argv[1:]])


def fail(message: str, code: int = USAGE_EXIT) -> NoReturn:
  sys.stderr.write(f'error: {message}\n')
  sys.stderr.flush()
  sys.exit(code)


def _interrupted(message: str, code: int) -> NoReturn:
  """Leaves at once: runs are kill-safe by design, and tearing JAX down in the middle of a
  computation can crash the interpreter's exit, which would hide the message's exit code."""
  sys.stdout.flush()
  sys.stderr.write(f'error: {message}\n')
  sys.stderr.flush()
  os._exit(code)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with flag and config-file errors as one line (exit 2)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(f'{e}\nPass --helpshort or --helpfull to see help on flags.')
  except (AttributeError, KeyError) as e:
    # ml_collections raises these for an override of a key the config does not have; the
    # message is the key and maybe a suggestion, quoted and escaped once or twice over.
    text = str(e.args[0] if e.args else e)
    name = (re.findall(r'[A-Za-z_][A-Za-z0-9_]*', text) or ['?'])[0]
    hint = re.search(r'Did you mean [^\\]*?\?', text)
    culprits = [a for a in argv[1:] if a.startswith('--config.') and name in a.split('=')[0]]
    fail(f'unknown config key {name!r} in {" ".join(culprits) or "the config"}: '
         + (hint.group(0) if hint else 'check its spelling against the config file.'))
  except (TypeError, ValueError) as e:
    # A config file assigning a value of the wrong type to a typed key, for instance.
    fail(f'invalid config: {e}')


def _refused_before_writing(error: BaseException) -> bool:
  from hdsemg_jax.config import ConfigError
  from hdsemg_jax.run.lock import WorkdirLocked
  from tfds_builders.prepare import DatasetError
  return isinstance(error, (UsageError, ConfigError, DatasetError, WorkdirLocked,
                            app.UsageError))


def _describe_os_error(error: OSError) -> str:
  where = ' -> '.join(str(f) for f in (error.filename, error.filename2) if f is not None)
  what = error.strerror or str(error)
  return f'{where}: {what}' if where else what


_SIGNALS = {signal.SIGINT: ('interrupted (SIGINT)', 130),
            signal.SIGTERM: ('terminated (SIGTERM)', 143)}


def _on_signal(signum, frame) -> NoReturn:
  """Leaves from the handler itself: a KeyboardInterrupt raised instead can land in a
  callback (JAX's garbage-collection hook) that swallows it, and the run goes on."""
  del frame
  what, code = _SIGNALS[signum]
  _interrupted(f'{what}: {RESUME_HINT}.', code)


def guarded(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
  """``main`` with the exit codes and messages of the module docstring."""

  @functools.wraps(main)
  def wrapper(argv: list[str]) -> None:
    previous = {}
    for signum in _SIGNALS:
      # A signal the shell set to be ignored (a background job's SIGINT) stays ignored.
      if signal.getsignal(signum) is not signal.SIG_IGN:
        previous[signum] = signal.signal(signum, _on_signal)
    try:
      main(argv)
    except KeyboardInterrupt:  # Raised by code that ran before the handler was set.
      _interrupted(f'interrupted (SIGINT): {RESUME_HINT}.', 130)
    except OSError as e:
      fail(_describe_os_error(e), FAILED_EXIT)
    except Exception as e:  # noqa: BLE001  (every error: one line, the right exit code)
      if _refused_before_writing(e):
        fail(str(e), USAGE_EXIT)
      if isinstance(e, (ValueError, RuntimeError)):
        fail(str(e), FAILED_EXIT)
      raise  # A bug: the traceback is the useful message.
    finally:
      for signum, handler in previous.items():
        signal.signal(signum, handler)
  return wrapper


def run(main: Callable[[list[str]], None]) -> None:
  """`absl.app.run` of ``guarded(main)`` with the project's flag parser."""
  app.run(guarded(main), flags_parser=parse_flags)
