"""A benchmark as one JSON document: ``comparison.json`` (a suite) or ``results.json`` (a run).

`document(combined, runs, ...)` turns a `benchmark.Combined` and the runs it was
made from into plain JSON that any tool can read, and that `report_page` renders
(the page reads nothing else). The schema is versioned (``schema_version``) and
written down as JSON Schema in ``comparison.schema.json`` beside this module
(`SCHEMA_FILE`); `validate` checks a document against it. Version 1 holds:

* ``title``, ``metric`` (the table's), ``reference`` (the tested model or null),
  ``generated_at``; ``datasets`` (name, version, synthetic) of the rows;
* ``protocols`` and ``folds`` (per protocol, in table order); ``windows``: every
  decision window (frames) of the rows; ``models``: name, ``seed_free`` and the
  cost medians (`benchmark.COSTS` keys, null where no row has one);
* ``cells``: one per (protocol, fold, model): the run's own protocol name, the
  split id, its seeds, and per seed the frame accuracy, balanced accuracy and the
  decision accuracy at every window; the confusion matrix summed over seeds;
* ``summary``: per (protocol, model) and window (and ``frame``), the mean and
  sample std over folds of the per-fold seed means, and the fold count;
* ``tests``: the paired two-sided Wilcoxon tests of the reference against each
  model on the table's metric (per protocol and ``all``): mean difference of the
  per-fold means in percentage points, p-value, folds;
* ``provenance``: per run its folder, config hashes, code versions, library
  versions and device kinds; and the commands that made the document.

Accuracies are fractions (0-1); differences are percentage points.
"""

from __future__ import annotations

import datetime
import json
import math
import os
from typing import Any, Hashable, Sequence

import numpy as np

from hdsemg_jax.reporting import benchmark, results
from hdsemg_jax.reporting.compare import Run

SCHEMA_NAME = 'hdsemg_jax.comparison'
SCHEMA_VERSION = 1
SCHEMA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'comparison.schema.json')
SUITE_FILE = 'comparison.json'
RUN_FILE = 'results.json'


def _number(value: Any) -> float | None:
  """A JSON number: None for NaN and infinities (JSON has neither)."""
  if value is None:
    return None
  value = float(value)
  return value if math.isfinite(value) else None


def _windows(rows: Sequence[results.ResultRow]) -> list[int]:
  windows: set[int] = set()
  for row in rows:
    windows.update(int(w) for w in results.decision_values(row))
  return sorted(windows)


def _stats(values: Sequence[float]) -> dict[str, Any]:
  finite = [v for v in values if v is not None and math.isfinite(v)]
  return {'mean': _number(np.mean(finite)) if finite else None,
          'std': _number(np.std(finite, ddof=1)) if len(finite) > 1 else None,
          'folds': len(finite)}


def _cell(protocol: str, fold: Hashable, model: str, rows: Sequence[results.ResultRow],
          windows: Sequence[int]) -> dict[str, Any]:
  rows = sorted(rows, key=lambda r: r['seed'])
  matrices = [np.asarray(r['confusion_matrix']) for r in rows if r.get('confusion_matrix')]
  split_ids = sorted({str(r['split_id']) for r in rows if r.get('split_id') is not None})
  return {
      'protocol': protocol,
      'fold': str(fold),
      'model': model,
      'run_protocol': str(rows[0].get('protocol', protocol)),
      'split_id': split_ids[0] if split_ids else None,
      'seeds': [int(r['seed']) for r in rows],
      'frame_accuracy': [_number(r.get('frame_accuracy')) for r in rows],
      'balanced_accuracy': [_number(r.get('balanced_accuracy')) for r in rows],
      'decision_accuracy': {str(w): [_number(results.decision_values(r).get(str(w)))
                                     for r in rows] for w in windows},
      'confusion_matrix': (np.sum(matrices, axis=0).astype(int).tolist() if matrices
                           and len({m.shape for m in matrices}) == 1 else None),
  }


def _summary(cells: Sequence[dict[str, Any]], c: benchmark.Combined,
             windows: Sequence[int]) -> list[dict[str, Any]]:
  out = []
  for protocol in c.protocols:
    for model in c.models:
      mine = [cell for cell in cells if cell['protocol'] == protocol and cell['model'] == model]
      if not mine:
        continue

      def fold_means(values_of):
        means = []
        for cell in mine:
          values = [v for v in values_of(cell) if v is not None]
          means.append(float(np.mean(values)) if values else None)
        return means
      entry = {'protocol': protocol, 'model': model,
               'frame': _stats(fold_means(lambda cell: cell['frame_accuracy'])),
               'windows': {str(w): _stats(fold_means(
                   lambda cell, w=w: cell['decision_accuracy'][str(w)])) for w in windows}}
      out.append(entry)
  return out


def _tests(c: benchmark.Combined) -> list[dict[str, Any]]:
  return [{'protocol': protocol, 'model': model, 'reference': c.reference, 'metric': c.metric,
           'mean_difference_pp': _number(100 * float(np.mean(diffs))),
           'p_value': _number(p), 'folds': int(len(diffs))}
          for protocol, tests in c.tests.items() for model, (diffs, p) in tests.items()]


def _provenance(runs: Sequence[Run], commands: Sequence[str]) -> dict[str, Any]:
  out = []
  for run in runs:
    prov = [r.get('provenance') or {} for r in run.rows]
    out.append({
        'protocol': run.protocol, 'model': run.label, 'path': os.path.abspath(run.path),
        'rows': len(run.rows),
        'config_hashes': sorted({str(p['config_hash']) for p in prov if p.get('config_hash')}),
        'git_commits': sorted({str(p['git_commit']) for p in prov if p.get('git_commit')}),
        'git_dirty': any(bool(p.get('git_dirty')) for p in prov),
        'versions': next((p['versions'] for p in prov if p.get('versions')), {}),
        'device_kinds': sorted({str(p['device_kind']) for p in prov if p.get('device_kind')}),
    })
  return {'runs': out, 'commands': list(commands)}


def document(c: benchmark.Combined, runs: Sequence[Run], title: str = '',
             commands: Sequence[str] = ()) -> dict[str, Any]:
  """The JSON document of a benchmark ``c`` made from ``runs`` (see the module docstring)."""
  runs = benchmark.group_runs(runs)
  rows = [row for run in runs for row in run.rows]
  windows = _windows(rows)
  cells = []
  for protocol in c.protocols:
    for fold in c.folds[protocol]:
      for model in c.models:
        mine = [row for run in runs if run.protocol == protocol and run.label == model
                for row in run.rows if row.get('fold') == fold]
        if mine:
          cells.append(_cell(protocol, fold, model, mine, windows))
  datasets = sorted({(str(r.get('dataset')), str(r.get('dataset_version')),
                      bool(r.get('synthetic'))) for r in rows})
  return {
      'schema': SCHEMA_NAME,
      'schema_version': SCHEMA_VERSION,
      'title': title,
      'metric': c.metric,
      'reference': c.reference,
      'generated_at': datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec='seconds'),
      'datasets': [{'name': n, 'version': v, 'synthetic': s} for n, v, s in datasets],
      'protocols': list(c.protocols),
      'folds': {p: [str(f) for f in c.folds[p]] for p in c.protocols},
      'windows': windows,
      'models': [{'name': m, 'seed_free': m in c.single,
                  'costs': {key: _number(c.costs[m].get(key)) for key, _ in benchmark.COSTS}}
                 for m in c.models],
      'cells': cells,
      'summary': _summary(cells, c, windows),
      'tests': _tests(c),
      'provenance': _provenance(runs, commands),
  }


def to_json(doc: dict[str, Any]) -> str:
  return json.dumps(doc, indent=1, sort_keys=True, allow_nan=False) + '\n'


def write(doc: dict[str, Any], path: str) -> str:
  """Writes ``doc`` to ``path`` atomically; returns the path."""
  results.write_atomic(path, to_json(doc))
  return path


def schema() -> dict[str, Any]:
  return results.read_json(SCHEMA_FILE, 'the comparison schema')


def validate(doc: dict[str, Any]) -> None:
  """Raises ``jsonschema.ValidationError`` if ``doc`` does not follow `schema`."""
  import jsonschema  # Only validation needs it (the test requirements).
  jsonschema.validate(doc, schema())
