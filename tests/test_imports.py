"""The package's imports go one way down: no module imports, at any depth and inside a function or not, a module
that imports it back. Read from the source with ast, so a circle is caught before it ever runs."""

import ast
import os

PACKAGE = os.path.join(os.path.dirname(__file__), "..", "crackjax")


def import_graph(root: str = PACKAGE, package: str = "crackjax") -> dict[str, set[str]]:
  """module -> the package's modules it imports (module-level and inside functions; `from a import b` counts a.b
  where that is a module, else a)."""
  modules = {}
  for dirpath, _, files in os.walk(root):
    for f in files:
      if f.endswith(".py"):
        rel = os.path.relpath(os.path.join(dirpath, f), root)[:-3].replace(os.sep, ".")
        name = package if rel == "__init__" else f"{package}.{rel.removesuffix('.__init__')}"
        modules[name] = os.path.join(dirpath, f)
  graph = {}
  for name, path in modules.items():
    deps = set()
    for node in ast.walk(ast.parse(open(path).read())):
      if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == package:
        for a in node.names:
          deps.add(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module)
      elif isinstance(node, ast.Import):
        deps |= {a.name for a in node.names if a.name in modules}
    graph[name] = {d for d in deps if d in modules and d != name and d != package}
  return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components of more than one module (Tarjan), each sorted."""
  index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

  def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in sorted(graph[v]):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      comp = []
      while True:
        w = stack.pop()
        on.discard(w)
        comp.append(w)
        if w == v:
          break
      if len(comp) > 1:
        out.append(sorted(comp))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return out


def test_the_package_has_no_import_circle():
  """The finder first proves it finds a planted circle (a -> b -> c -> a, d hanging off it, a module importing
  itself none), then finds none in the package."""
  assert circles({"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": set()}) == [["a", "b", "c"]]
  found = circles(import_graph())
  assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)
