"""The package's structure holds: no import circle, imports inside functions only where they
defer a heavy or optional dependency (and say so), and the weights wing never imports the
model builder. Read from the source (`ast`): nothing is imported."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("keras_alexnet", "keras_alexnet_cli")


def _modules() -> dict[str, pathlib.Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imported(module: str, node: ast.AST) -> list[str]:
    """The modules of this package that an import statement names (a `from X import name`
    counts `X.name` where that is a module, else `X`)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        assert node.level == 0, f"{module}: a relative import; the package imports absolutely"
        base = node.module or ""
        names = [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
            for alias in node.names
        ]
    else:
        return []
    found = []
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.append(name)
    return found


def _imports(in_functions: bool) -> dict[str, set[str]]:
    """Module -> the modules it imports: at module level, or also inside functions."""
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = ast.walk(tree) if in_functions else _module_level(tree)
        graph[module] = {name for node in nodes for name in _imported(module, node)}
    return graph


def _module_level(tree: ast.Module):
    """The import statements run when the module loads (not `if TYPE_CHECKING:` ones)."""
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            for child in ast.walk(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    yield child


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph` (its modules in order), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module):
        state[module] = 1
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


def _parents(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


@pytest.mark.parametrize("in_functions", [False, True], ids=["module level", "with functions"])
def test_the_package_has_no_import_circle(in_functions):
    graph = _imports(in_functions)
    # A submodule's import of its own parent package is how Python loads it, not a circle.
    graph = {m: {t for t in targets if t not in _parents(m)} for m, targets in graph.items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_checker_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_weights_wing_never_imports_the_model_builder():
    graph = _imports(in_functions=True)
    for module, targets in graph.items():
        if module == "keras_alexnet.weights" or module.startswith("keras_alexnet.weights."):
            assert "keras_alexnet.alexnet" not in targets, module


def test_reading_an_export_does_not_import_the_writer():
    graph = _imports(in_functions=True)
    assert "keras_alexnet.serving.export" not in graph["keras_alexnet.serving.trained_model"]


# What an import inside a function may defer, named in a comment on its line or the line
# above it: a heavy or optional dependency (or a command's start, after flag parsing).
_DEFERRAL_WORDS = ("tensorflow", "onnx", "absl", "heavy", "optional", "--help", "serving")


def _import_group(lines: list[str], first: int, end: int) -> str:
    """The import at `lines[first:end]` with the imports, blanks and comments just above it."""
    while first > 0 and (
        not lines[first - 1].strip() or lines[first - 1].strip().startswith(("#", "import", "from"))
    ):
        first -= 1
    return " ".join(lines[first:end])


def test_imports_inside_functions_say_what_they_defer():
    unexplained = []
    for path in MODULES.values():
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    nearby = _import_group(lines, node.lineno - 1, node.end_lineno).lower()
                    if not any(word in nearby for word in _DEFERRAL_WORDS):
                        unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not unexplained, "\n".join(unexplained)
