"""``report.html``: one self-contained page to explore a benchmark document, offline.

`render(doc)` fills the page template (``report_page.html`` beside this module:
HTML, CSS and script, no network access) with the document of
`hdsemg_jax.reporting.document`, embedded as JSON: the page reads nothing else,
so it works opened from disk, copied, or on a cluster without internet. It shows
the per-fold table (sortable by any column, filterable by protocol, fold and
model, at any decision window, per-seed values on demand; a click on a cell
shows its seeds, split and confusion matrix), the means over folds, the
accuracy-against-window curves (drawn as SVG from the document), the paired
tests, the costs and the provenance with the commands.
"""

from __future__ import annotations

import html
import os
from typing import Any

from hdsemg_jax.reporting import document, results

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'report_page.html')
PAGE_FILE = 'report.html'
DATA_ELEMENT_ID = 'comparison-data'


def render(doc: dict[str, Any]) -> str:
  """The page of ``doc`` as one HTML string."""
  with open(TEMPLATE, encoding='utf-8') as f:
    page = f.read()
  # Inside <script> only "</" can end the element early; "<\/" is the same JSON string.
  data = document.to_json(doc).replace('</', '<\\/')
  return (page.replace('__TITLE__', html.escape(doc.get('title') or 'Benchmark'))
          .replace('__DATA__', data))


def embedded_document(page: str) -> dict[str, Any]:
  """The document a rendered page holds (what its script reads)."""
  import json
  start = page.index(f'id="{DATA_ELEMENT_ID}">') + len(f'id="{DATA_ELEMENT_ID}">')
  end = page.index('</script>', start)
  return json.loads(page[start:end])


def write(doc: dict[str, Any], path: str) -> str:
  """Writes the page of ``doc`` to ``path`` atomically; returns the path."""
  results.write_atomic(path, render(doc))
  return path


def publish(combined: Any, runs: Any, out_dir: str, title: str = '',
            commands: tuple[str, ...] = ()) -> dict[str, str]:
  """Writes ``comparison.json`` and ``report.html`` of a benchmark into ``out_dir``.

  ``combined`` is a `benchmark.Combined` of ``runs`` (`compare.Run`s); the JSON is
  written first, then the page that embeds it. Returns ``{'json': path, 'html': path}``.
  """
  doc = document.document(combined, runs, title, commands)
  os.makedirs(out_dir, exist_ok=True)
  return {'json': document.write(doc, os.path.join(out_dir, document.SUITE_FILE)),
          'html': write(doc, os.path.join(out_dir, PAGE_FILE))}
