"""The package's imports: no cycle between modules, and layers that only look down
(DESIGN.md section 2: cli and adapters -> planner -> ledger -> estimator -> pricing -> errors)."""

from __future__ import annotations

import ast
from pathlib import Path

import imagine_billing

ROOT = Path(imagine_billing.__file__).parent

LAYERS = {"errors": 0, "_checks": 0, "_extras": 0, "_lazy": 0, "pricing": 1, "estimator": 2,
          "usage": 3, "ledger": 3, "planner": 4, "adapters": 5, "cli": 6, "__main__": 7, "": 7}
"""The layer of each top-level module or package (``""``: the package's ``__init__``); a
module imports only from its own layer or those below."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def imports(path: Path, *, module_level: bool) -> set[str]:
    """The modules of the package that ``path`` imports: at module level only (outside
    ``if TYPE_CHECKING:``), or anywhere. ``from package import module`` names the module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = _outside_functions(tree) if module_level else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names}
            known = submodules & MODULES.keys()
            found |= known if known == submodules else {node.module, *known}
    return {name for name in found if name in MODULES}


def _outside_functions(node: ast.AST) -> list[ast.AST]:
    """``node`` and what it holds, leaving out function bodies and ``if TYPE_CHECKING:``
    blocks (imports that do not run when the module is imported)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        return []
    if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
        return []
    found = [node]
    for child in ast.iter_child_nodes(node):
        found += _outside_functions(child)
    return found


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    return LAYERS[top]


def cycles_of(graph: dict[str, set[str]]) -> list[str]:
    """Every cycle met walking ``graph`` (module -> modules it imports) depth first, as
    ``a -> b -> a``."""
    cycles: set[str] = set()

    def visit(name: str, stack: list[str], done: set[str]) -> None:
        for other in sorted(graph[name]):
            if other in stack:
                cycles.add(" -> ".join([*stack[stack.index(other):], other]))
            elif other not in done:
                done.add(other)
                visit(other, [*stack, other], done)

    for name in sorted(graph):
        visit(name, [name], {name})
    return sorted(cycles)


class TestImports:
    """How the modules of imagine_billing import each other."""

    def test_no_cycle_at_module_level(self) -> None:
        """No module imports (at module level) one that imports it back, directly or not."""
        graph = {name: imports(path, module_level=True) - {name}
                 for name, path in MODULES.items()}
        assert [] == cycles_of(graph)

    def test_no_cycle_even_inside_functions(self) -> None:
        """No cycle either when imports inside functions count (a module may still import
        its own package, whose ``__init__`` imports it): each part can be read, and tested,
        with only what is below it."""
        graph = {name: {other for other in imports(path, module_level=False)
                        if other != name and not name.startswith(other + ".")}
                 for name, path in MODULES.items()}
        assert [] == cycles_of(graph)

    def test_layers_look_down(self) -> None:
        """No module imports, even inside a function, from a layer above its own."""
        upward = sorted(f"{name} -> {other}" for name, path in MODULES.items()
                        for other in imports(path, module_level=False)
                        if layer(other) > layer(name))
        assert [] == upward

    def test_every_module_has_a_layer(self) -> None:
        """Each top-level module or package of imagine_billing is in LAYERS."""
        assert {m.split(".")[1] if "." in m else "" for m in MODULES} <= LAYERS.keys()


FUNCTION_LINES = 60
MODULE_LINES = 500
"""The most lines of code (docstrings, comments and blank lines aside) of a function and of a
module of src/ (docs/architecture.md: small parts with one job each)."""


def _docstring_lines(tree: ast.AST) -> set[int]:
    """The line numbers of the docstrings (and attribute docstrings) of ``tree``."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)):
            found.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return found


def code_lines(path: Path) -> tuple[int, dict[str, int]]:
    """The lines of code of the module at ``path``, and of each of its functions' bodies (by
    qualified name): lines that are neither blank, nor comments, nor docstrings."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    skipped = _docstring_lines(tree)
    counted = [number for number, line in enumerate(text.splitlines(), 1)
               if number not in skipped and line.strip() and not line.lstrip().startswith("#")]
    functions: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    start, end = child.body[0].lineno, child.end_lineno or child.lineno
                    functions[name] = sum(1 for n in counted if start <= n <= end)
                visit(child, name + ".")

    visit(tree, "")
    return len(counted), functions


class TestSize:
    """Small parts: no function or module of src/ past its limit of lines of code."""

    def test_code_lines_counts_code_only(self, tmp_path: Path) -> None:
        """The measure itself: docstrings, comments and blank lines are not code."""
        module = tmp_path / "example.py"
        module.write_text('"""Doc."""\n\n\ndef f(x):\n    """Doc\n    more."""\n    # note\n\n'
                          "    y = x\n    return y\n", encoding="utf-8")
        assert (3, {"f": 2}) == code_lines(module)

    def test_functions(self) -> None:
        long = sorted(f"{name}.{function}: {lines}" for name, path in MODULES.items()
                      for function, lines in code_lines(path)[1].items()
                      if lines > FUNCTION_LINES)
        assert [] == long

    def test_modules(self) -> None:
        long = sorted(f"{name}: {code_lines(path)[0]}" for name, path in MODULES.items()
                      if code_lines(path)[0] > MODULE_LINES)
        assert [] == long
