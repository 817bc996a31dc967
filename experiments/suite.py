"""The benchmark suite: every model on every protocol, as runs, and their combined report.

`plan` turns a suite config (`experiments/configs/compare_models.py`) into runs,
each a checked and locked experiment config with its sub-workdir
``<workdir>/<protocol>/<model>``; `hdsemg_jax.run.launch` runs them (here, on a
pool of local workers or as a SLURM job array), and `report` combines the finished
ones (rows protocol x fold, a column per model, paired Wilcoxon tests of the
suite's ``reference`` against every other model, costs) into
``comparison.{md,csv,png,json}`` and ``report.html``. `experiments.compare_models`
is the command; `run_suite` plans, launches and reports in one call.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

import ml_collections
from absl import logging


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


VARIANT_SEPARATOR = '@'


def suite_model(label: str) -> SuiteModel:
  """The suite model of ``label``: a name of `SUITE_MODELS`, or ``<name>@<variant>``.

  A variant (e.g. ``all_convnet@cosine``) is its base model with the label's own
  ``suite.model_overrides[label]``, so one suite can hold one model at several
  settings (a training budget, a schedule) as columns of one table.
  """
  from hdsemg_jax.config import ConfigError
  base = label.split(VARIANT_SEPARATOR, 1)[0]
  if base not in SUITE_MODELS or label.endswith(VARIANT_SEPARATOR):
    raise ConfigError(f'config.suite.models: {label!r} is not a model of the suite (known: '
                      f'{", ".join(SUITE_MODELS)}, or <model>{VARIANT_SEPARATOR}<variant> with '
                      f'its keys in config.suite.model_overrides).')
  return SUITE_MODELS[base]


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
    suite_model(m)
  for group, known in (('protocol_overrides', suite.protocols), ('model_overrides',
                                                                 suite.models)):
    for name in suite[group]:
      if name not in known:
        raise ConfigError(f'config.suite.{group}.{name}: {name!r} is not among the suite\'s '
                          f'{group.split("_")[0]}s ({", ".join(known)}).')
  specs = []
  for protocol in suite.protocols:
    for label in suite.models:
      model = suite_model(label)
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


def report_record(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """What the suite's report needs besides the runs (kept in launch.json for a rebuild)."""
  suite = split_suite(config)[1]
  return {'kind': 'suite', 'dataset': str(config.dataset.name), 'metric': str(suite.metric),
          'reference': str(suite.reference) if suite.reference else None}


def report(record: Mapping[str, Any], runs: Sequence[Any], workdir: str,
           commands: tuple[str, ...] = ()):
  """Combines the finished ``runs`` (each with ``workdir`` and ``labels`` protocol and model,
  a `hdsemg_jax.run.launch.Run`) into comparison.{md,csv,png,json} and report.html in
  ``workdir``. ``record``: `report_record`; ``commands``: what made them, for the page."""
  from hdsemg_jax.reporting import benchmark, compare, report_page, results

  loaded = []
  for run in runs:
    if not os.path.isfile(os.path.join(run.workdir, results.RESULTS_FILE)):
      continue
    found = compare.load_run(run.workdir)
    loaded.append(dataclasses.replace(found, label=run.labels['model'],
                                      protocol=run.labels['protocol']))
  if not loaded:
    raise ValueError(f'no finished runs under {workdir} to report.')
  reference = record['reference']
  if reference is not None and reference not in {r.label for r in loaded}:
    logging.warning('reference model %s has no finished run: no tests.', reference)
    reference = None
  combined = benchmark.combine_runs(loaded, record['metric'], reference)
  synthetic = any(row.get('synthetic') for run in loaded for row in run.rows)
  title = f'{record["dataset"]}: {record["metric"]}' + (' (synthetic data)' if synthetic else '')
  paths = benchmark.write_combined_report(combined, workdir, title)
  paths.update(report_page.publish(combined, loaded, workdir, title, commands))
  return combined, benchmark.combined_markdown(combined, title), paths


def launch_runs(specs: Sequence[RunSpec]) -> list[Any]:
  """The suite's runs as `hdsemg_jax.run.launch.Run`s, labelled by protocol and model."""
  from hdsemg_jax.run import launch
  return [launch.Run(name=f'{s.protocol}/{s.label}', workdir=s.workdir, config=s.config,
                     labels={'protocol': s.protocol, 'model': s.label}) for s in specs]


def run_suite(config: ml_collections.ConfigDict, workdir: str, *, keep_going: bool = False,
              commands: tuple[str, ...] = (), settings: Any = None):
  """Runs (or resumes) every run of the suite ``config``, then the report.

  ``settings``: a `hdsemg_jax.run.launch.LaunchSettings` (default: every task in
  this process, in order). Returns the `benchmark.Combined`, its Markdown, the
  written paths and the `launch.Outcome` (its ``failures``: only with
  ``keep_going`` or an executor other than this process; with SLURM's ``wait``
  off, nothing is reported and the first three are None).
  """
  from hdsemg_jax.run import launch

  settings = settings or launch.LaunchSettings(keep_going=keep_going)
  specs = plan(config, workdir)
  runs = launch_runs(specs)
  record = {**report_record(config), 'commands': list(commands)}
  outcome = launch.launch(runs, workdir, settings, record)
  if not settings.wait and settings.executor == 'slurm':
    return None, None, None, outcome
  combined, markdown, paths = report(record, runs, workdir, commands)
  return combined, markdown, paths, outcome


def command(config: ml_collections.ConfigDict, workdir: str | None, *, dry_run: bool,
            keep_going: bool, commands: tuple[str, ...] = ()) -> Any:
  """What a suite command does after its flags: check, plan, run, report, print.

  ``--dry_run`` prints every run and returns None; with SLURM and ``--no_wait`` it
  prints the array id and returns None; otherwise it prints the comparison and
  returns the `hdsemg_jax.run.launch.Outcome` (the caller reports what is unfinished).
  """
  from experiments import cli, launch_flags
  from hdsemg_jax import process_setup
  process_setup.enable_compilation_cache()
  process_setup.quiet_library_logs()
  if not workdir:
    raise cli.UsageError('--workdir is required (the suite folder).')
  settings = launch_flags.settings(keep_going=keep_going)
  if dry_run:
    print(describe(plan(config, workdir)))
    return None
  _, markdown, paths, outcome = run_suite(config, workdir, commands=commands, settings=settings)
  if markdown is None:
    print(f'submitted SLURM job array {outcome.job_id}: {len(outcome.tasks)} task(s); rerun '
          f'this command, or python -m experiments.report --combine {workdir}, to report what '
          'has finished.')
    return None
  print(markdown)
  print('wrote ' + ', '.join(paths.values()))
  return outcome
