"""The library's structure: layers that only import downward, no cycle, the run layer on top.

Every module of ``hdsemg_jax`` sits in one of `LAYERS` (the folder layout: data ->
preprocessing -> protocols -> models -> training -> evaluation -> reporting ->
run); an import may go to its own layer or one below, never up, and nothing
outside ``hdsemg_jax.run`` imports the run layer, the one code that reads a
ConfigDict. A module in no layer fails the test, so a new one is placed on purpose.
"""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = 'hdsemg_jax'


def _module_name(path: str) -> str:
  rel = os.path.relpath(path, ROOT)[:-len('.py')].replace(os.sep, '.')
  return rel[:-len('.__init__')] if rel.endswith('.__init__') else rel


def _modules() -> dict[str, str]:
  out = {}
  for folder, _, files in os.walk(os.path.join(ROOT, PACKAGE)):
    for name in files:
      if name.endswith('.py'):
        path = os.path.join(folder, name)
        out[_module_name(path)] = path
  return out


def import_graph() -> dict[str, set[str]]:
  """Module -> the library modules it imports, at any depth of its code (lazy imports too)."""
  modules = _modules()
  graph = {}
  for name, path in modules.items():
    tree = ast.parse(open(path).read(), path)
    package = name if path.endswith('__init__.py') else name.rpartition('.')[0]
    targets = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        targets.update(a.name for a in node.names)
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ''
        if node.level:
          base = '.'.join(package.split('.')[:len(package.split('.')) - node.level + 1]
                          + ([base] if base else []))
        # `from package import module` depends on the module; `from module import name` on it.
        for alias in node.names:
          full = f'{base}.{alias.name}'
          targets.add(full if full in modules else base)
    graph[name] = {t for t in targets if t in modules and t != name}
  return graph


def _imported_names(path: str) -> set[str]:
  names = set()
  for node in ast.walk(ast.parse(open(path).read(), path)):
    if isinstance(node, ast.Import):
      names.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      names.add(node.module)
  return names


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
  state: dict[str, int] = {}
  stack: list[str] = []

  def visit(node: str) -> list[str] | None:
    state[node] = 1
    stack.append(node)
    for nxt in sorted(graph[node]):
      if state.get(nxt) == 1:
        return stack[stack.index(nxt):] + [nxt]
      if nxt not in state:
        found = visit(nxt)
        if found:
          return found
    stack.pop()
    state[node] = 2
    return None

  for node in sorted(graph):
    if node not in state:
      found = visit(node)
      if found:
        return found
  return None


# From the bottom up; a module belongs to the layer of the longest prefix of its name.
LAYERS = [
    ('foundations', ('hdsemg_jax.config', 'hdsemg_jax.provenance', 'hdsemg_jax.data',
                     'hdsemg_jax.reporting.results')),
    ('signals', ('hdsemg_jax.preprocessing', 'hdsemg_jax.ops', 'hdsemg_jax.protocols')),
    ('models', ('hdsemg_jax.models',)),
    ('training', ('hdsemg_jax.training', 'hdsemg_jax.checkpointing',
                  'hdsemg_jax.process_setup')),
    ('evaluation', ('hdsemg_jax.evaluation.evaluate', 'hdsemg_jax.evaluation.metrics',
                    'hdsemg_jax.evaluation.voting', 'hdsemg_jax.evaluation.robustness',
                    'hdsemg_jax.evaluation.cost', 'hdsemg_jax.evaluation',
                    'hdsemg_jax.classical')),
    ('streaming', ('hdsemg_jax.deployment.artifacts', 'hdsemg_jax.streaming',
                   'hdsemg_jax.evaluation.online')),
    ('results', ('hdsemg_jax.saved_model', 'hdsemg_jax.workdir', 'hdsemg_jax.reporting',
                 'hdsemg_jax.deployment')),
    ('run', ('hdsemg_jax.run',)),
]
RUN = 'hdsemg_jax.run'


def layer_of(module: str) -> int | None:
  if module == PACKAGE:
    return len(LAYERS) - 2  # The package's face: hdsemg_jax.load_model.
  matches = [(len(p), rank) for rank, (_, prefixes) in enumerate(LAYERS) for p in prefixes
             if module == p or module.startswith(p + '.')]
  return max(matches)[1] if matches else None


def violations(graph: dict[str, set[str]]) -> list[str]:
  """Every import that runs up the layers or into the run layer from outside it."""
  out = []
  for module, deps in sorted(graph.items()):
    for dep in sorted(deps):
      inside_run = module == RUN or module.startswith(RUN + '.')
      if (dep == RUN or dep.startswith(RUN + '.')) and not inside_run:
        out.append(f'{module} -> {dep}: only the run layer reads configs')
      elif layer_of(dep) > layer_of(module):
        out.append(f'{module} ({LAYERS[layer_of(module)][0]}) -> {dep} '
                   f'({LAYERS[layer_of(dep)][0]}): runs up the layers')
  return out


def test_the_graph_sees_imports_of_every_kind():
  graph = import_graph()
  # A package-level import, a relative-free `from x import y` of a module, a lazy import.
  assert 'hdsemg_jax.run.setup' in graph['hdsemg_jax.run.experiment']
  assert 'hdsemg_jax.ops.conv' in graph['hdsemg_jax.models.layers']
  assert 'hdsemg_jax.saved_model' in graph['hdsemg_jax']  # Inside load_model.
  assert _cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']


def test_no_import_cycle_in_the_library():
  assert _cycle(import_graph()) is None


def test_every_module_has_a_layer():
  assert [m for m in import_graph() if layer_of(m) is None] == []


def test_no_import_runs_up_the_layers_or_into_the_run_layer():
  assert violations(import_graph()) == []


def test_the_arrows_of_the_old_layout_are_caught():
  # Before hdsemg_jax/run/ existed: the training recipe imported the run setup, and the
  # deployment's run-directory half the saved models and the fold table of a raw config.
  old = {
      'hdsemg_jax.training.recipe': {'hdsemg_jax.run.setup', 'hdsemg_jax.training.trainer'},
      'hdsemg_jax.deployment.artifacts': {'hdsemg_jax.saved_model'},
      'hdsemg_jax.protocols': {'hdsemg_jax.evaluation.evaluate'},
      'hdsemg_jax.training.trainer': set(),
  }
  found = violations(old)
  assert any(v.startswith('hdsemg_jax.training.recipe -> hdsemg_jax.run.setup') for v in found)
  assert any(v.startswith('hdsemg_jax.deployment.artifacts (streaming) -> hdsemg_jax.saved_model')
             for v in found)
  assert any('hdsemg_jax.protocols (signals) -> hdsemg_jax.evaluation.evaluate' in v
             for v in found)
  assert len(found) == 3


def test_only_the_run_layer_reads_a_config_dict():
  # A library module may name ml_collections only to take a ConfigDict, which it must not.
  readers = []
  for name, path in _modules().items():
    if name.startswith(RUN) or name == 'hdsemg_jax.config':
      continue
    if {'ml_collections', 'ml_collections.config_dict'} & _imported_names(path):
      readers.append(name)
  assert readers == []


def test_the_experiment_module_is_orchestration_only():
  # It runs folds and seeds, writes rows and the report; it builds, trains and scores nothing
  # itself (run.recipe trains, run.rows scores) and reads no config key.
  tree = ast.parse(open(_modules()['hdsemg_jax.run.experiment']).read())
  classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
  assert classes == ['_Outputs']
  imported = import_graph()['hdsemg_jax.run.experiment']
  assert not any(m.startswith(('hdsemg_jax.models', 'hdsemg_jax.training', 'hdsemg_jax.config',
                               'hdsemg_jax.classical', 'hdsemg_jax.saved_model',
                               'hdsemg_jax.evaluation.evaluate', 'hdsemg_jax.evaluation.cost',
                               'hdsemg_jax.evaluation.online', 'hdsemg_jax.run.settings'))
                 for m in imported), imported
  assert {'hdsemg_jax.run.recipe', 'hdsemg_jax.run.rows', 'hdsemg_jax.run.setup'} <= imported
