"""notebooks/colab_quickstart.ipynb runs top to bottom on a CPU from this checkout."""

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, 'notebooks', 'colab_quickstart.ipynb')


def _kernel_spec(jupyter_dir) -> str:
  """A kernel spec running this interpreter (the project's environment), whatever else exists."""
  name = 'hdsemg-jax-test'
  spec_dir = jupyter_dir / 'kernels' / name
  spec_dir.mkdir(parents=True)
  (spec_dir / 'kernel.json').write_text(json.dumps({
      'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
      'display_name': name, 'language': 'python'}))
  return name


def test_quickstart_notebook_runs_on_the_tiny_config(tiny_data_dir, tmp_path, monkeypatch):
  nbclient = pytest.importorskip('nbclient')
  import nbformat

  workdir = tmp_path / 'run'
  monkeypatch.setenv('JUPYTER_PATH', str(tmp_path / 'jupyter'))
  kernel = _kernel_spec(tmp_path / 'jupyter')
  monkeypatch.setenv('JAX_PLATFORMS', 'cpu')
  monkeypatch.setenv('HDSEMG_NOTEBOOK_CONFIG', 'experiments/configs/tiny.py')
  monkeypatch.setenv('HDSEMG_NOTEBOOK_WORKDIR', str(workdir))
  monkeypatch.setenv('HDSEMG_NOTEBOOK_OVERRIDES', json.dumps({
      'dataset.data_dir': tiny_data_dir, 'protocol.subjects': [1], 'seeds': [0, 1]}))
  monkeypatch.delenv('XLA_FLAGS', raising=False)
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  client = nbclient.NotebookClient(
      notebook, kernel_name=kernel, timeout=600,
      resources={'metadata': {'path': os.path.join(ROOT, 'notebooks')}})
  client.execute()

  rows = [json.loads(line) for line in (workdir / 'results.jsonl').read_text().splitlines()]
  assert [(r['seed'], r['seed_parallel']) for r in rows] == [(0, True), (1, True)]
  outputs = [o for cell in notebook.cells if cell.cell_type == 'code' for o in cell.outputs]
  text = ''.join(o.get('text', '') for o in outputs if o.output_type == 'stream')
  assert 'frame accuracy' in text and 'parallel=none' in text
  markdown = [o for o in outputs if 'text/markdown' in o.get('data', {})]
  assert markdown and '| fold |' in markdown[0]['data']['text/markdown']
  assert sum('image/png' in o.get('data', {}) for o in outputs) >= 3  # Figures and curves.
  assert not any(o.output_type == 'error' for o in outputs)
