r"""The paper's comparison in one command: every model on every protocol, then one report.

  python -m experiments.compare_models --config=experiments/configs/compare_models.py:flexemg \
      --config.manual_dir=../shared/data/flexemg --workdir=workdirs/compare_flexemg
  python -m experiments.compare_models --config=experiments/configs/compare_models.py \
      --workdir=/tmp/suite --config.epochs=2 --config.frame_stride=8 --config.seeds=0,1,2 \
      --config.models=all_convnet,lda,chance --dry_run

Each run (protocol x model) goes to its own sub-workdir ``<workdir>/<protocol>/<model>``
through `hdsemg_jax.run.experiment.train_and_evaluate`, so rerunning the command
resumes where it stopped: finished runs are skipped, partial ones continue. Then
the combined report (`hdsemg_jax.reporting.benchmark.combine_runs`; rows protocol x
fold, a column per model, paired Wilcoxon tests of ``reference`` against every
other model, costs) is printed and written to ``<workdir>/comparison.{md,csv,png}``.

``--dry_run`` checks every run's config as the run would (a bad value fails here,
naming the run and the key) and prints every run (protocol, model, seeds,
sub-workdir, the keys it sets beyond the dataset's protocol config); it runs nothing. ``--keep_going`` runs the others when one fails and
reports the finished ones; the command then exits non-zero.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

import ml_collections
from absl import flags, logging
from ml_collections import config_flags

from experiments import cli

_CONFIG = config_flags.DEFINE_config_file('config', 'experiments/configs/compare_models.py',
                                          'Suite config file (experiments/configs/'
                                          'compare_models.py:DATASET).', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Suite folder: one sub-workdir per run, and '
                               'the report.')
_DRY_RUN = flags.DEFINE_bool('dry_run', False, 'Print every run it would make, then exit.')
_KEEP_GOING = flags.DEFINE_bool('keep_going', False, 'Run the others when a run fails.')


@dataclasses.dataclass(frozen=True)
class SuiteModel:
  """A model label of the suite: the experiment keys it sets, and where it runs."""
  overrides: Mapping[str, Any]  # Experiment keys, nested: {'model': {'name': ...}}.
  # Where set, the only suite protocols it runs on, and the protocol.name of each such run.
  runs_as: Mapping[str, str] | None = None


SUITE_MODELS = {
    'all_convnet': SuiteModel({'model': {'name': 'all_convnet'}}),
    'geng_convnet': SuiteModel({'model': {'name': 'geng_convnet'}}),
    'geng_convnet_pretrain': SuiteModel({'model': {'name': 'geng_convnet'}},
                                        runs_as={'intra_session': 'intra_session_pretrain'}),
    'lda': SuiteModel({'model': {'name': 'lda'}}),
    'logreg': SuiteModel({'model': {'name': 'logreg'}}),
    'linear_svm': SuiteModel({'model': {'name': 'linear_svm'}}),
    'chance': SuiteModel({'model': {'name': 'chance'}}),
}


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """One run of the suite: a model on a protocol, in its own sub-workdir."""
  protocol: str  # The table's row group (the suite's protocol).
  label: str  # The table's column (the suite's model).
  workdir: str
  config: ml_collections.ConfigDict  # An experiment config, checked and locked.

  @property
  def run_protocol(self) -> str:
    return self.config.protocol.name

  @property
  def seeds(self) -> tuple[int, ...]:
    return tuple(self.config.seeds)


def _apply(config: ml_collections.ConfigDict, overrides: Mapping[str, Any], where: str) -> None:
  """Sets the nested experiment keys of ``overrides``; a key the tree lacks is an error."""
  from hdsemg_jax.config import ConfigError
  for key, value in overrides.items():
    if key not in config:
      raise ConfigError(f'{where}.{key} is not an experiment config key (keys there: '
                        f'{", ".join(sorted(config.keys()))}).')
    if isinstance(value, Mapping):
      _apply(config[key], value, f'{where}.{key}')
    else:
      config[key] = tuple(value) if isinstance(value, list) else value


def split_suite(config: ml_collections.ConfigDict) -> tuple[ml_collections.ConfigDict,
                                                            ml_collections.ConfigDict]:
  """The suite config as (the experiment tree every run starts from, the checked suite group)."""
  from experiments.configs import compare_models as suite_config
  from hdsemg_jax import config as config_lib
  base = ml_collections.ConfigDict(config.to_dict())
  suite = base.suite
  with base.unlocked():
    del base['suite']
  # The override groups hold experiment keys, checked when `plan` applies them.
  free = {k: suite[k] for k in ('protocol_overrides', 'model_overrides')}
  defaults = suite_config.suite_defaults()
  with suite.unlocked(), defaults.unlocked():
    for k in free:
      del suite[k], defaults[k]
  try:
    config_lib.check(suite, defaults, 'config.suite')
  except ValueError as e:
    raise config_lib.ConfigError(str(e)) from None
  with suite.unlocked():
    suite.update(free)
  return base, suite


def plan(config: ml_collections.ConfigDict, workdir: str) -> list[RunSpec]:
  """Every run of the suite ``config``, in the order they run: by protocol, then model.

  Each run's config is checked exactly as `experiments.main` checks it (types, then
  every value a run would refuse), before any run starts.
  """
  from hdsemg_jax import protocols as protocols_lib
  from hdsemg_jax.config import ConfigError
  from hdsemg_jax.run import setup as run_setup

  base, suite = split_suite(config)
  for p in suite.protocols:
    if p not in protocols_lib.PROTOCOLS:
      raise ConfigError(f'config.suite.protocols: {p!r} is not a protocol (known: '
                        f'{", ".join(protocols_lib.PROTOCOLS)}).')
  for m in suite.models:
    if m not in SUITE_MODELS:
      raise ConfigError(f'config.suite.models: {m!r} is not a model of the suite (known: '
                        f'{", ".join(SUITE_MODELS)}).')
  for group, known in (('protocol_overrides', suite.protocols), ('model_overrides',
                                                                 suite.models)):
    for name in suite[group]:
      if name not in known:
        raise ConfigError(f'config.suite.{group}.{name}: {name!r} is not among the suite\'s '
                          f'{group.split("_")[0]}s ({", ".join(known)}).')
  specs = []
  for protocol in suite.protocols:
    for label in suite.models:
      model = SUITE_MODELS[label]
      if model.runs_as is not None and protocol not in model.runs_as:
        continue
      run = ml_collections.ConfigDict(base.to_dict())
      run.protocol.name = model.runs_as[protocol] if model.runs_as else protocol
      for what, overrides in ((f'config.suite.protocol_overrides.{protocol}',
                               suite.protocol_overrides.get(protocol)),
                              (f'suite model {label}', model.overrides),
                              (f'config.suite.model_overrides.{label}',
                               suite.model_overrides.get(label))):
        if overrides:
          _apply(run, overrides.to_dict() if hasattr(overrides, 'to_dict') else overrides, what)
      run_config, settings = _checked(run_setup.check_config, run, protocol, label)
      if settings.model.is_classical:  # Seed-free: the first seed's run is the run.
        run.seeds = tuple(run.seeds)[:1]
      run.lock()
      specs.append(RunSpec(protocol=protocol, label=label,
                           workdir=os.path.join(workdir, protocol, label), config=run))
  if not specs:
    raise ConfigError('the suite has no runs: check config.suite.protocols and .models.')
  return specs


def _checked(fn, config, protocol: str, label: str):
  from hdsemg_jax.config import ConfigError
  try:
    return fn(config)
  except ConfigError as e:
    raise ConfigError(f'run {protocol}/{label}: {e}') from None


def _differences(spec: RunSpec, dataset: str) -> dict[str, Any]:
  """The keys of a run's config that differ from the dataset's protocol config."""
  from experiments.configs import datasets
  from hdsemg_jax import config as config_lib
  reference = datasets.protocol_config(spec.run_protocol, dataset).to_dict()
  return {line.split(':')[0]: line.split(' -> ')[-1] for line in
          config_lib.differences(reference, spec.config.to_dict())}


def describe(specs: Sequence[RunSpec]) -> str:
  """What ``--dry_run`` prints: one paragraph per run."""
  lines = [f'{len(specs)} runs']
  for i, spec in enumerate(specs, 1):
    lines.append(f'[{i}/{len(specs)}] {spec.protocol} / {spec.label}: protocol.name='
                 f'{spec.run_protocol}, model.name={spec.config.model.name}, seeds '
                 f'{",".join(map(str, spec.seeds))}')
    lines.append(f'  workdir: {spec.workdir}')
    shown = {k: v for k, v in _differences(spec, spec.config.dataset.name).items()
             if k not in ('model.name', 'seeds', 'protocol.name')}
    lines.append('  sets: ' + (' '.join(f'{k}={v}' for k, v in shown.items()) or 'nothing'))
  return '\n'.join(lines)


def report(config: ml_collections.ConfigDict, specs: Sequence[RunSpec], workdir: str,
           commands: tuple[str, ...] = ()):
  """Combines the finished runs of ``specs``; writes comparison.{md,csv,png,json} and
  report.html into ``workdir`` (``commands``: what made them, for the page's provenance)."""
  from hdsemg_jax.reporting import benchmark, compare, report_page, results

  runs = []
  for spec in specs:
    if not os.path.isfile(os.path.join(spec.workdir, results.RESULTS_FILE)):
      continue
    run = compare.load_run(spec.workdir)
    runs.append(dataclasses.replace(run, label=spec.label, protocol=spec.protocol))
  if not runs:
    raise ValueError(f'no finished runs under {workdir} to report.')
  suite = split_suite(config)[1]
  reference = str(suite.reference) if suite.reference else None
  if reference is not None and reference not in {r.label for r in runs}:
    logging.warning('reference model %s has no finished run: no tests.', reference)
    reference = None
  combined = benchmark.combine_runs(runs, str(suite.metric), reference)
  synthetic = any(row.get('synthetic') for run in runs for row in run.rows)
  title = f'{config.dataset.name}: {suite.metric}' + (' (synthetic data)' if synthetic else '')
  paths = benchmark.write_combined_report(combined, workdir, title)
  paths.update(report_page.publish(combined, runs, workdir, title, commands))
  return combined, benchmark.combined_markdown(combined, title), paths


def run_suite(config: ml_collections.ConfigDict, workdir: str, *, keep_going: bool = False,
              commands: tuple[str, ...] = ()) -> tuple[Any, str, dict[str, str], list[str]]:
  """Runs (or resumes) every run of the suite ``config``, then the report.

  Returns the `benchmark.Combined`, its Markdown, the written paths and the
  failed runs (``'<protocol>/<model>: <error>'``; only with ``keep_going``).
  """
  from hdsemg_jax.run import experiment

  specs = plan(config, workdir)
  failures = []
  for i, spec in enumerate(specs, 1):
    logging.info('[%d/%d] %s / %s -> %s', i, len(specs), spec.protocol, spec.label, spec.workdir)
    try:
      experiment.train_and_evaluate(spec.config, spec.workdir)
    except Exception as e:  # noqa: BLE001  (reported, and re-raised unless keep_going)
      if not keep_going:
        raise
      failures.append(f'{spec.protocol}/{spec.label}: {type(e).__name__}: {e}')
      logging.error('%s / %s failed: %s', spec.protocol, spec.label, e)
  combined, markdown, paths = report(config, specs, workdir, commands)
  return combined, markdown, paths, failures


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise cli.UsageError(f'unexpected arguments: {argv[1:]}')
  from hdsemg_jax import process_setup
  process_setup.enable_compilation_cache()
  process_setup.quiet_library_logs()
  if not _WORKDIR.value:
    raise cli.UsageError('--workdir is required (the suite folder).')
  if _DRY_RUN.value:
    print(describe(plan(_CONFIG.value, _WORKDIR.value)))
    return
  _, markdown, paths, failures = run_suite(_CONFIG.value, _WORKDIR.value,
                                           keep_going=_KEEP_GOING.value,
                                           commands=(cli.command_line(),))
  print(markdown)
  print('wrote ' + ', '.join(paths.values()))
  if failures:
    cli.fail('failed runs:\n  ' + '\n  '.join(failures), cli.FAILED_EXIT)


if __name__ == '__main__':
  cli.run(main)
