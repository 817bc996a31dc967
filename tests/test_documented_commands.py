"""Every `experiments.main` / `experiments.compare_models` / `experiments.budget_curve` command
in the docs runs.

The commands of the config files' docstrings and of README's command blocks are
run as written (workdir dropped, or a temporary one for the suite) with
``--dry_run``: they must parse, resolve the config and print the folds (the
suite: its runs). flexemg's path points at the real recordings. CapgMyo cannot
be downloaded here and a faithful fake copy of a whole database is gigabytes, so
its placeholders (``DIR``, ``CAPGMYO``) point at an empty folder: the command must
get as far as reading the data and stop there with the builder's own error naming
the archives to put in it (no config error, no traceback).
"""

import glob
import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.cli_helpers import ROOT, cli_env

RUNNABLE = ('experiments.main', 'experiments.compare_models', 'experiments.budget_curve')
SUITES = RUNNABLE[1:]
CAPGMYO_PLACEHOLDERS = ('DIR', 'CAPGMYO')
FLEXEMG_PATH = '../shared/data/flexemg'


def _commands(text: str, where: str) -> list[tuple[str, str]]:
  """``python -m ...`` commands of ``text``, with their shell line continuations joined."""
  lines = text.splitlines()
  out = []
  i = 0
  while i < len(lines):
    line = lines[i].strip()
    if line.startswith('python -m experiments.'):
      parts = [line]
      while parts[-1].endswith('\\') and i + 1 < len(lines):
        i += 1
        parts.append(lines[i].strip())
      out.append((where, '\n'.join(parts)))
    i += 1
  return out


def documented_commands() -> list[tuple[str, str]]:
  found = []
  for path in sorted(glob.glob(os.path.join(ROOT, 'experiments', 'configs', '*.py'))):
    text = open(path).read()
    match = re.match(r'\s*r?"""(.*?)"""', text, re.S)
    if match:
      found += _commands(match.group(1), os.path.relpath(path, ROOT))
  block, inside = [], False
  for line in open(os.path.join(ROOT, 'README.md')):
    if line.startswith('```'):
      if inside:
        found += _commands(''.join(block), 'README.md')
      block, inside = [], not inside
    elif inside:
      block.append(line)
  return found


# A command documented in several places (a config's docstring and README) runs once.
COMMANDS = list({' '.join(command.replace('\\\n', ' ').split()): (where, command)
                 for where, command in reversed(documented_commands())}.values())[::-1]


def test_the_docs_hold_commands_and_every_one_is_one_shell_command():
  assert len([c for c in COMMANDS if 'experiments.main' in c[1]]) >= 10
  for where, command in COMMANDS:
    # A continuation must be a single backslash ending the line (a doubled one breaks a paste).
    assert '\\\\' not in command, (where, command)
    tokens = _tokens(command)
    assert tokens[:2] == ['python', '-m'], (where, command)
    assert all(not t.startswith(('\\', '\n')) for t in tokens), (where, command)


def _tokens(command: str) -> list[str]:
  """The command's arguments as a shell reads it (a backslash-newline continues the line)."""
  return shlex.split(command.replace('\\\n', ' '))


def _runnable(command: str) -> bool:
  return _tokens(command)[2] in RUNNABLE


@pytest.mark.slow
@pytest.mark.parametrize('where, command', [c for c in COMMANDS if _runnable(c[1])],
                         ids=lambda v: v.split('--config=')[-1].split()[0][-60:] if '\n' in v
                         or ' ' in v else v)
def test_documented_command_runs_with_dry_run(where, command, tmp_path, tmp_path_factory,
                                              request):
  tokens = _tokens(command)
  module = tokens[2]
  suite = module in SUITES
  args = [t for t in tokens[3:] if not t.startswith('--workdir') and t != '--dry_run']
  if suite:
    args.append(f'--workdir={tmp_path / "suite"}')
  manual_key = '--config.dataset.manual_dir='
  capgmyo = False
  for i, token in enumerate(args):
    if token.startswith(manual_key):
      value = token[len(manual_key):]
      if value in CAPGMYO_PLACEHOLDERS:
        capgmyo = True
        (tmp_path / 'capgmyo').mkdir()
        args[i] = manual_key + str(tmp_path / 'capgmyo')
      elif value == FLEXEMG_PATH:
        args[i] = manual_key + request.getfixturevalue('flexemg_manual_dir')
  data_dir = tmp_path_factory.getbasetemp() / 'documented_tfds'
  data_key = '--config.dataset.data_dir='
  proc = subprocess.run([sys.executable, '-m', module, *args, f'{data_key}{data_dir}',
                         '--dry_run'], cwd=ROOT, capture_output=True, text=True, timeout=900,
                        env=cli_env())
  assert 'Traceback' not in proc.stderr and 'config key' not in proc.stderr, proc.stderr[-3000:]
  if capgmyo:
    assert proc.returncode != 0 and 'preprocessed-001' in proc.stderr, proc.stderr[-3000:]
    return
  assert proc.returncode == 0, f'{where}: {command}\n{proc.stderr[-3000:]}'
  # The run's fold table (main) or the suite's list of runs (compare_models).
  assert ('workdir:' if suite else 'fold ') in proc.stdout, proc.stdout[-2000:]
