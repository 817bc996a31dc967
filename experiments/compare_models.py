r"""The paper's comparison in one command: every model on every protocol, then one report.

  python -m experiments.compare_models --config=experiments/configs/compare_models.py:flexemg \
      --config.manual_dir=../shared/data/flexemg --workdir=workdirs/compare_flexemg
  python -m experiments.compare_models --config=experiments/configs/compare_models.py \
      --workdir=/tmp/suite --config.epochs=2 --config.frame_stride=8 --config.seeds=0,1,2 \
      --config.models=all_convnet,lda,chance --dry_run

Each run (protocol x model) goes to its own sub-workdir ``<workdir>/<protocol>/<model>``
through `hdsemg_jax.run.experiment.train_and_evaluate`, so rerunning the command
resumes where it stopped: finished runs are skipped, partial ones continue. Then
the combined report (`hdsemg_jax.reporting.compare.combine_runs`; rows protocol x
fold, a column per model, paired Wilcoxon tests of ``reference`` against every
other model, costs) is printed and written to ``<workdir>/comparison.{md,csv,png}``.

``--dry_run`` prints every run (protocol, model, seeds, sub-workdir, config
overrides) and runs nothing. ``--keep_going`` runs the others when one fails and
reports the finished ones; the command then exits non-zero.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, Mapping, Sequence

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file('config', 'experiments/configs/compare_models.py',
                                          'Suite config file (experiments/configs/'
                                          'compare_models.py:DATASET).')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Suite folder: one sub-workdir per run, and '
                               'the report.')
_DRY_RUN = flags.DEFINE_bool('dry_run', False, 'Print every run it would make, then exit.')
_KEEP_GOING = flags.DEFINE_bool('keep_going', False, 'Run the others when a run fails.')


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """One run of the suite: a model on a protocol, in its own sub-workdir."""
  protocol: str  # The table's row group (the suite's protocol).
  label: str  # The table's column (the suite's model).
  run_protocol: str  # protocol.name of the run (e.g. intra_session_pretrain).
  model: str  # model.name of the run.
  seeds: tuple[int, ...]
  workdir: str
  overrides: dict[str, Any]  # Dotted key -> value set on top of the protocol config.
  config: ml_collections.ConfigDict


def _ints(value: Any, key: str) -> tuple[int, ...] | None:
  """A tuple of ints from a tuple, an int or a comma list (as the command line gives)."""
  if value is None:
    return None
  if isinstance(value, (str, tuple, list)):
    value = _names(value)
  else:
    value = (value,)
  try:
    return tuple(int(v) for v in value)
  except (TypeError, ValueError):
    raise ValueError(f'suite {key}={value!r}: expected integers, e.g. 0,1,2.') from None


def _names(value: Any) -> tuple[str, ...]:
  """Names from a tuple or a comma list (the command line may give ``('a,b',)``)."""
  items = [value] if isinstance(value, str) else list(value)
  return tuple(n.strip() for item in items for n in str(item).split(',') if n.strip())


def _flatten(tree: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
  out: dict[str, Any] = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      out.update(_flatten(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = tuple(value) if isinstance(value, list) else value
  return out


def _set(config: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
  *path, leaf = dotted.split('.')
  node = config
  for part in path:
    if part not in node:
      node[part] = ml_collections.ConfigDict()
    node = node[part]
  node[leaf] = value


def plan(suite: ml_collections.ConfigDict, workdir: str) -> list[RunSpec]:
  """Every run of ``suite``, in the order they run: protocol by protocol, model by model."""
  from experiments.configs import compare_models as suite_lib, datasets
  from hdsemg_jax import protocols as protocols_lib

  protocols = _names(suite.protocols)
  models = _names(suite.models)
  for p in protocols:
    if p not in protocols_lib.PROTOCOLS:
      raise ValueError(f'suite protocols: {p!r} is not a protocol (known: '
                       f'{", ".join(protocols_lib.PROTOCOLS)}).')
  for m in models:
    if m not in suite_lib.RECIPES:
      raise ValueError(f'suite models: {m!r} is not a model of the suite (known: '
                       f'{", ".join(suite_lib.RECIPES)}).')
  seeds = _ints(suite.seeds, 'seeds')
  if not seeds:
    raise ValueError('suite seeds: give at least one seed.')
  overrides_by_model = suite.get('overrides') or {}
  for m in overrides_by_model:
    if m not in models:
      raise ValueError(f'suite overrides.{m}: {m!r} is not among the suite models '
                       f'({", ".join(models)}).')
  overrides_by_protocol = suite.get('protocol_overrides') or {}
  for p in overrides_by_protocol:
    if p not in protocols:
      raise ValueError(f'suite protocol_overrides.{p}: {p!r} is not among the suite protocols '
                       f'({", ".join(protocols)}).')

  common: dict[str, Any] = {}
  for key, dotted in (('data_dir', 'dataset.data_dir'), ('manual_dir', 'dataset.manual_dir'),
                      ('epochs', 'train.epochs'), ('frame_stride', 'train.frame_stride'),
                      ('batch_size', 'train.batch_size')):
    if suite.get(key) is not None:
      common[dotted] = suite[key]
  for key in ('subjects', 'sessions', 'folds'):
    if suite.get(key) is not None:
      common[f'protocol.{key}'] = (_ints(suite[key], key) if key != 'folds'
                                   else tuple(str(f) for f in _names(suite[key])))
  common['eval.vote_windows'] = _ints(suite.vote_windows, 'vote_windows')
  common.update(_flatten((suite.get('common') or ml_collections.ConfigDict()).to_dict()))
  classical = {f'model.{k}': (tuple(v) if isinstance(v, list) else v)
               for k, v in suite.classical.to_dict().items() if v is not None}

  specs = []
  for protocol in protocols:
    for label in models:
      recipe = suite_lib.RECIPES[label]
      restricted = recipe.get('protocols')
      if restricted is not None and protocol not in restricted:
        continue
      run_protocol = restricted[protocol] if restricted else protocol
      config = datasets.protocol_config(run_protocol, str(suite.dataset))
      overrides = {'model.name': recipe['model'], **common}
      protocol_overrides = overrides_by_protocol.get(protocol)
      if protocol_overrides:
        overrides.update(_flatten(protocol_overrides.to_dict()))
      if recipe['classical'] and recipe['model'] != 'chance':  # chance computes no features.
        overrides.update(classical)
      model_overrides = overrides_by_model.get(label)
      if model_overrides:
        overrides.update(_flatten(model_overrides.to_dict()))
      run_seeds = seeds[:1] if recipe['classical'] else seeds
      overrides['seeds'] = run_seeds
      with config.unlocked():
        for dotted, value in overrides.items():
          _set(config, dotted, value)
      specs.append(RunSpec(protocol=protocol, label=label, run_protocol=run_protocol,
                           model=recipe['model'], seeds=run_seeds,
                           workdir=os.path.join(workdir, protocol, label),
                           overrides=overrides, config=config))
  if not specs:
    raise ValueError('the suite has no runs: check its protocols and models.')
  return specs


def describe(specs: Sequence[RunSpec]) -> str:
  """What ``--dry_run`` prints: one paragraph per run."""
  lines = [f'{len(specs)} runs']
  for i, spec in enumerate(specs, 1):
    lines.append(f'[{i}/{len(specs)}] {spec.protocol} / {spec.label}: protocol.name='
                 f'{spec.run_protocol}, model.name={spec.model}, seeds '
                 f'{",".join(map(str, spec.seeds))}')
    lines.append(f'  workdir: {spec.workdir}')
    shown = {k: v for k, v in spec.overrides.items() if k not in ('model.name', 'seeds')}
    lines.append('  overrides: ' + (' '.join(f'{k}={v!r}' for k, v in shown.items()) or 'none'))
  return '\n'.join(lines)


def report(suite: ml_collections.ConfigDict, specs: Sequence[RunSpec], workdir: str):
  """Combines the finished runs of ``specs``; writes comparison.{md,csv,png} into ``workdir``."""
  from hdsemg_jax.reporting import compare, results

  runs = []
  for spec in specs:
    if not os.path.isfile(os.path.join(spec.workdir, results.RESULTS_FILE)):
      continue
    run = compare.load_run(spec.workdir)
    runs.append(dataclasses.replace(run, label=spec.label, protocol=spec.protocol))
  if not runs:
    raise ValueError(f'no finished runs under {workdir} to report.')
  reference = str(suite.reference) if suite.get('reference') else None
  if reference is not None and reference not in {r.label for r in runs}:
    logging.warning('reference model %s has no finished run: no tests.', reference)
    reference = None
  combined = compare.combine_runs(runs, str(suite.metric), reference)
  synthetic = any(row.get('synthetic') for run in runs for row in run.rows)
  title = f'{suite.dataset}: {suite.metric}' + (' (synthetic data)' if synthetic else '')
  paths = compare.write_combined_report(combined, workdir, title)
  return combined, compare.combined_markdown(combined, title), paths


def run_suite(suite: ml_collections.ConfigDict, workdir: str, *,
              keep_going: bool = False) -> tuple[Any, str, dict[str, str], list[str]]:
  """Runs (or resumes) every run of ``suite``, then the report.

  Returns the `compare.Combined`, its Markdown, the written paths and the
  failed runs (``'<protocol>/<model>: <error>'``; only with ``keep_going``).
  """
  from hdsemg_jax.run import experiment

  specs = plan(suite, workdir)
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
  combined, markdown, paths = report(suite, specs, workdir)
  return combined, markdown, paths, failures


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  from hdsemg_jax import process_setup
  process_setup.enable_compilation_cache()
  process_setup.quiet_library_logs()
  suite = _CONFIG.value
  try:
    if not _WORKDIR.value:
      raise ValueError('--workdir is required (the suite folder).')
    if _DRY_RUN.value:
      print(describe(plan(suite, _WORKDIR.value)))
      return
    _, markdown, paths, failures = run_suite(suite, _WORKDIR.value, keep_going=_KEEP_GOING.value)
  except (ValueError, OSError) as e:
    sys.stderr.write(f'error: {e}\n')
    sys.exit(2)
  print(markdown)
  print('wrote ' + ', '.join(paths.values()))
  if failures:
    sys.stderr.write('failed runs:\n  ' + '\n  '.join(failures) + '\n')
    sys.exit(1)


if __name__ == '__main__':
  app.run(main)
