"""Flow code never names a backend: only a backend's own package imports it (issue 8, point 3).

Scans every module under ``pipeline_utils/`` and the code cells of ``notebooks/*.ipynb`` for imports of
``pipeline_utils.backends.<name>`` (plain, ``from`` and relative imports, ``from pipeline_utils.backends import
<name>``, and ``importlib.import_module``/``__import__`` with a literal name). The registry module
``pipeline_utils.backends`` itself may be imported by anyone.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import nbformat
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pipeline_utils"
BACKENDS = "pipeline_utils.backends"


def backend_names() -> set[str]:
    """The backend packages that ship with the project (folders under ``pipeline_utils/backends``)."""
    return {p.name for p in (PACKAGE / "backends").iterdir() if (p / "__init__.py").is_file()}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def owner_backend(path: Path) -> str | None:
    """The backend whose package holds ``path``, if any."""
    parts = path.relative_to(PACKAGE).parts
    return parts[1] if len(parts) > 2 and parts[0] == "backends" else None


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def imported_modules(tree: ast.AST, package: str) -> Iterator[tuple[int, str]]:
    """(line, module) for every module a piece of code imports, relative imports made absolute."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, package)
            yield node.lineno, module
            yield from ((node.lineno, f"{module}.{alias.name}") for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
            )
        ):
            yield node.lineno, node.args[0].value


def named_backend(module: str, backends: set[str]) -> str | None:
    """The backend a module path names (``pipeline_utils.backends.local.x`` -> ``local``), else None."""
    if not module.startswith(BACKENDS + "."):
        return None
    name = module[len(BACKENDS) + 1 :].split(".")[0]
    return name if name in backends else None


def violations_in(source: str, label: str, package: str, owner: str | None, backends: set[str]) -> list[str]:
    """``label:line: imports module`` for each line of ``source`` that imports a backend other than ``owner``."""
    found: dict[int, str] = {}
    for line, module in imported_modules(ast.parse(source, label), package):
        backend = named_backend(module, backends)
        if backend is not None and backend != owner:
            found.setdefault(line, f"{label}:{line}: imports {module}")
    return [found[line] for line in sorted(found)]


def notebook_cells(path: Path) -> Iterator[tuple[int, str]]:
    """(cell number, Python source with IPython magics turned into calls) of each code cell."""
    transform = TransformerManager().transform_cell
    for number, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type == "code":
            yield number, transform(cell.source)


def test_the_scan_catches_every_form_of_import() -> None:
    backends = {"local", "cpd"}
    source = "\n".join(
        [
            "import pipeline_utils.backends.local.space",
            "from pipeline_utils.backends.cpd import wml",
            "from pipeline_utils.backends import local",
            "from ..backends.local.volumes import LocalVolumes",
            "importlib.import_module('pipeline_utils.backends.local.deploy')",
            "from pipeline_utils.backends import get_space, Configurable",
            "import pipeline_utils.backends",
        ]
    )
    found = violations_in(source, "x.py", "pipeline_utils.monitor", None, backends)
    assert [v.split(":")[1] for v in found] == ["1", "2", "3", "4", "5"]
    assert violations_in(source, "x.py", "pipeline_utils.backends.local", "local", backends) == [
        "x.py:2: imports pipeline_utils.backends.cpd"
    ]


def test_flow_code_never_imports_a_backend() -> None:
    backends = backend_names()
    assert "local" in backends
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
        label = str(path.relative_to(ROOT))
        found += violations_in(path.read_text(encoding="utf-8"), label, package, owner_backend(path), backends)
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for number, source in notebook_cells(path):
            label = f"{path.relative_to(ROOT)}[cell {number}]"
            found += violations_in(source, label, "", None, backends)
    assert not found, "flow code imports a backend (go through pipeline_utils.backends or an interface):\n" + "\n".join(
        found
    )
