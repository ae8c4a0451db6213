"""The layers import in one direction (docs/design.md). Every module's imports, those inside functions included and
the dynamic ones (importlib.import_module and __import__ of a string constant), are read with ast (nothing is
imported), and the graph is held to the rules below: a wrong direction, a cycle, or argparse/matplotlib reachable from
the training function's module fails, naming the modules."""

import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Layer -> the project's layers it may import (itself included). Bottom to top.
ALLOWED = {
    "jax_impl.core": {"jax_impl.core"},
    "jax_impl.files": {"jax_impl.core", "jax_impl.files"},
    "jax_impl.app": {"jax_impl.core", "jax_impl.files", "jax_impl.app"},
    "torch_impl.twin": {"jax_impl.core", "jax_impl.files", "torch_impl.twin"},
    "torch_impl.checks": {"jax_impl.core", "jax_impl.files", "torch_impl.twin", "torch_impl.checks"},
    "torch_impl.bench": {"jax_impl.core", "jax_impl.files", "torch_impl.twin", "torch_impl.checks",
                         "torch_impl.bench"},
}
# Layer -> the outside packages it may import, beyond the standard library's allowed modules.
EXTERNAL = {
    "jax_impl.core": {"jax", "optax", "numpy"},
    "jax_impl.files": {"numpy", "safetensors", "ml_dtypes"},
    "jax_impl.app": {"jax", "numpy", "matplotlib", "PIL"},
}
# The standard library's modules that parse flags, draw or read and write files: not in the JAX core.
NOT_IN_CORE = {"argparse", "pathlib", "pickle", "zipfile", "tempfile", "json", "io", "shutil", "signal",
               "multiprocessing", "subprocess", "concurrent", "socket"}
# The command line and the drawing belong to jax_impl.app: no other layer and no script imports these itself.
APP_ONLY = {"argparse", "matplotlib"}
TRAINING_MODULE = "jax_impl.core.train"
NEVER_FROM_TRAINING = {"argparse", "matplotlib"}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, pathlib.Path]:
    paths = [*ROOT.glob("jax_impl/**/*.py"), *ROOT.glob("torch_impl/**/*.py"), *ROOT.glob("scripts/*.py")]
    return {module_name(p): p for p in paths}


def dynamic_import(node: ast.AST) -> str | None:
    """The module a call imports by a string constant: importlib.import_module("m"), import_module("m") (imported
    from importlib) or __import__("m"); None for any other node. A name computed at run time cannot be read."""
    if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)):
        return None
    func = node.func
    if (isinstance(func, ast.Attribute) and func.attr == "import_module" and isinstance(func.value, ast.Name)
            and func.value.id == "importlib") or (isinstance(func, ast.Name)
                                                  and func.id in ("import_module", "__import__")):
        return node.args[0].value
    return None


def project_module_of(target: str, modules) -> str | None:
    """A project name as a module of the graph: itself, or the nearest package above it that is one (a module that
    no longer exists, imported by name, still counts as an arrow into its package); None outside the project."""
    while target and target.split(".")[0] in ("jax_impl", "torch_impl"):
        if target in modules:
            return target
        target = target.rpartition(".")[0]
    return None


def imports_of(source: str, name: str, modules) -> set[str]:
    """Every module `source` imports, anywhere in it: a project module by its full name (`from pkg import mod` is
    pkg.mod), an outside one by its top-level package."""
    found = set()
    package = name if any(m.startswith(name + ".") for m in modules) else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if (dynamic := dynamic_import(node)) is not None:
            found.add(dynamic)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules}
    project = {project_module_of(m, modules) for m in found} - {None}
    return project | {m.split(".")[0] for m in found if m.split(".")[0] not in ("", "jax_impl", "torch_impl")}


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    """module -> the modules it imports; sources: module name -> its text."""
    modules = dict.fromkeys(sources)
    return {name: imports_of(text, name, modules) for name, text in sources.items()}


def layer_of(name: str) -> str | None:
    return next((layer for layer in ALLOWED if name == layer or name.startswith(layer + ".")), None)


def stdlib(name: str) -> bool:
    return name in sys.stdlib_module_names or name == "__future__"


def violations(graph: dict[str, set[str]]) -> list[str]:
    """What breaks the rules: wrong directions, outside packages a layer may not use, cycles, and argparse or
    matplotlib reachable from the training module. Empty when the graph is sound."""
    found = []
    for name, targets in sorted(graph.items()):
        layer = layer_of(name)
        for target in sorted(targets):
            if name.startswith("jax_impl") and target.split(".")[0] in ("torch", "torch_impl"):
                found.append(f"{name} imports {target}: jax_impl never imports torch or torch_impl")
            elif target in graph:
                if layer is not None and layer_of(target) not in ALLOWED[layer]:
                    found.append(f"{name} imports {target}: {layer} may import only {sorted(ALLOWED[layer])}")
            elif layer in EXTERNAL and not (target in EXTERNAL[layer] or stdlib(target)):
                found.append(f"{name} imports {target}: {layer} may use only {sorted(EXTERNAL[layer])}")
            elif target in APP_ONLY and layer != "jax_impl.app":
                found.append(f"{name} imports {target}: only jax_impl.app parses flags and draws")
            elif layer == "jax_impl.core" and target in NOT_IN_CORE:
                found.append(f"{name} imports {target}: the JAX core parses no flags, draws and reads no files")
    found += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    if TRAINING_MODULE in graph:
        reached = reachable(graph, TRAINING_MODULE)
        found += [f"{TRAINING_MODULE} reaches {bad}" for bad in sorted(NEVER_FROM_TRAINING & reached)]
    return found


def reachable(graph, start) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def cycles(graph) -> list[list[str]]:
    """At least one cycle of each group of project modules that import each other in a circle (depth-first: every
    such group has a back edge). A package's own module importing the package (a package's __init__ imports nothing
    here) is not a cycle."""
    edges = {n: sorted(t for t in ts if t in graph and not n.startswith(t + ".")) for n, ts in graph.items()}
    found, finished = {}, set()

    def visit(node, path):
        for step in edges[node]:
            if step in path:
                cycle = path[path.index(step):] + [step]
                found.setdefault(frozenset(cycle), cycle)
            elif step not in finished:
                visit(step, path + [step])
        finished.add(node)

    for start in sorted(edges):
        if start not in finished:
            visit(start, [start])
    return list(found.values())


def test_the_project_keeps_its_layers():
    sources = {name: path.read_text() for name, path in project_modules().items()}
    assert violations(import_graph(sources)) == []


def test_every_module_belongs_to_a_layer():
    loose = [name for name in project_modules() if not name.startswith("scripts") and layer_of(name) is None
             and name not in ("jax_impl", "torch_impl")]
    assert loose == []


# The three wrong arrows the project had before its layers (issue "One clear house"), each planted in today's
# sources: the checker must name it.
PLANTED = {
    "the training core imports the command line and the outputs": (
        "jax_impl.core.train", "from jax_impl.app.cli import OPTIMIZERS\nfrom jax_impl.app import outputs\n",
        ["jax_impl.core.train imports jax_impl.app.cli", "jax_impl.core.train imports jax_impl.app.outputs",
         "jax_impl.core.train reaches argparse"]),
    "the weight files import the torch twin, which imports them: a circle": (
        "jax_impl.files.weights", "from torch_impl.twin import checkpoint\n",
        ["jax_impl.files.weights imports torch_impl.twin.checkpoint: jax_impl never imports",
         "import cycle: "]),
    # weights.py itself until the reader of torch.save's format without torch: a dynamic import, the same circle
    "the weight files reach the torch twin through importlib: a circle all the same": (
        "jax_impl.files.weights", 'import importlib\n\ndef _torch_checkpoint():\n'
                                  '    return importlib.import_module("torch_impl.twin.checkpoint")\n',
        ["jax_impl.files.weights imports torch_impl.twin.checkpoint: jax_impl never imports",
         "import cycle: "]),
    "the core reads files through the weight-file layer": (
        "jax_impl.core.data", "from jax_impl.files.params_io import load_npz\n",
        ["jax_impl.core.data imports jax_impl.files.params_io: jax_impl.core may import only"]),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_the_checker_names_each_old_wrong_arrow(case):
    module, planted, expected = PLANTED[case]
    sources = {name: path.read_text() for name, path in project_modules().items()}
    sources[module] += "\n" + planted
    sources.setdefault("torch_impl.twin.checkpoint", "from jax_impl.files.weights import read\n")
    if case.startswith("the weight files"):  # the old circle: checkpoint imported params_io back
        sources["torch_impl.twin.checkpoint"] = "import torch\nfrom jax_impl.files.weights import read\n"
    found = violations(import_graph(sources))
    for text in expected:
        assert any(line.startswith(text) for line in found), (text, found)


def test_the_checker_names_a_script_or_a_check_that_parses_flags_or_draws_itself():
    sources = {name: path.read_text() for name, path in project_modules().items()}
    sources["scripts.compare"] += "\nimport argparse\n"
    sources["torch_impl.checks.compare"] += "\ndef plot():\n    import matplotlib.pyplot\n"
    found = violations(import_graph(sources))
    assert "scripts.compare imports argparse: only jax_impl.app parses flags and draws" in found
    assert "torch_impl.checks.compare imports matplotlib: only jax_impl.app parses flags and draws" in found


def test_the_checker_reads_imports_inside_functions_and_relative_ones():
    sources = {"jax_impl.core.model": "def f():\n    import matplotlib\n",
               "jax_impl.core.train": "from . import model\n", "jax_impl.core": ""}
    graph = import_graph(sources)
    assert graph["jax_impl.core.train"] == {"jax_impl.core", "jax_impl.core.model"}
    found = violations(graph)
    assert "jax_impl.core.train reaches matplotlib" in found
    assert any(line.startswith("jax_impl.core.model imports matplotlib") for line in found)


def test_the_checker_reads_dynamic_imports_of_a_string_constant():
    sources = {"jax_impl.core.model": 'import importlib\nimportlib.import_module("matplotlib.pyplot")\n',
               "jax_impl.core.train": 'def f():\n    return __import__("jax_impl.core.model")\n',
               "jax_impl.files.weights": 'from importlib import import_module\nimport_module("torch_impl.twin.gone")\n'
                                         'import_module(name_made_at_run_time)\n',
               "jax_impl.core": "", "torch_impl.twin": ""}
    graph = import_graph(sources)
    assert graph["jax_impl.core.model"] == {"importlib", "matplotlib"}
    assert graph["jax_impl.core.train"] == {"jax_impl.core.model"}
    # a module that is not there (deleted, or a typo) still counts as an arrow into its package
    assert graph["jax_impl.files.weights"] == {"importlib", "torch_impl.twin"}
    found = violations(graph)
    assert "jax_impl.core.train reaches matplotlib" in found
    assert any(line.startswith("jax_impl.files.weights imports torch_impl.twin: jax_impl never imports")
               for line in found)
