"""The library's structure: no import cycle, and the orchestrator is the top of the house."""

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


def test_the_graph_sees_imports_of_every_kind():
  graph = import_graph()
  # A package-level import, a relative-free `from x import y` of a module, a lazy import.
  assert 'hdsemg_jax.run.setup' in graph['hdsemg_jax.run.experiment']
  assert 'hdsemg_jax.ops.conv' in graph['hdsemg_jax.models.layers']
  assert 'hdsemg_jax.saved_model' in graph['hdsemg_jax']  # Inside load_model.
  assert _cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']


def test_no_import_cycle_in_the_library():
  assert _cycle(import_graph()) is None


def test_nothing_in_the_library_imports_the_orchestrator():
  importers = sorted(m for m, deps in import_graph().items() if 'hdsemg_jax.run.experiment' in deps)
  assert importers == []
