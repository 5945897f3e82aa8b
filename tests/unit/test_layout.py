import ast
import importlib
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_operator_source_root_is_not_a_package() -> None:
    assert not (ROOT / "operator" / "__init__.py").exists()


def test_import_operator_is_the_standard_library() -> None:
    mod = importlib.import_module("operator")
    assert hasattr(mod, "itemgetter")
    assert "site-packages" not in (mod.__file__ or "") or "azsnap" not in (mod.__file__ or "")
    assert pathlib.Path(mod.__file__ or "").parent != ROOT / "operator"


def test_every_module_has_a_docstring() -> None:
    for path in (ROOT / "operator" / "azsnap").rglob("*.py"):
        text = path.read_text().lstrip()
        assert text.startswith('"""'), f"{path.relative_to(ROOT)} has no module docstring"


# ---- import loops ---------------------------------------------------------------------------------------------
#
# Every `import` counts, at module level, inside functions and under `if TYPE_CHECKING:`: an import deferred into a
# function still runs, and one kept for the type checker still ties the two modules together (neither can be read,
# moved or checked without the other). Where a lower module needs to name its caller, it names only what it uses
# as a `typing.Protocol` of its own.


def _module_name(path: pathlib.Path, source_root: pathlib.Path) -> str:
    parts = list(path.relative_to(source_root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.AST, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """The package's own modules one import statement names (a name that is not a module means its package)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in modules}
    if not isinstance(node, ast.ImportFrom):
        return set()
    base = node.module or ""
    if node.level:
        anchor = name.split(".")
        anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
        base = ".".join([*anchor, base] if base else anchor)
    found = set()
    for alias in node.names:
        if f"{base}.{alias.name}" in modules:
            found.add(f"{base}.{alias.name}")
        elif base in modules:
            found.add(base)
    return found


def import_graph(source_root: pathlib.Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (in functions and TYPE_CHECKING blocks too)."""
    paths = {_module_name(p, source_root): p for p in (source_root / package).rglob("*.py")}
    modules = set(paths)
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        pending: list[ast.AST] = [ast.parse(path.read_text())]
        while pending:
            node = pending.pop()
            edges |= _imported(node, name, is_package, modules)
            pending.extend(ast.iter_child_nodes(node))
        graph[name] = edges - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import each other round (strongly connected components larger than one)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_loop_in_the_package() -> None:
    graph = import_graph(ROOT / "operator", "azsnap")
    assert "azsnap.offline.demo_view" in graph["azsnap.offline.demo"]  # the graph sees the package's own imports
    assert cycles(graph) == []


def test_the_loop_finder_sees_loops_through_functions_and_relative_imports(tmp_path: pathlib.Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("def later():\n    from . import c\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    (pkg / "d.py").write_text("from pkg.c import later\n")  # imports into the loop, is not part of it
    assert cycles(import_graph(tmp_path, "pkg")) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_the_loop_finder_sees_loops_through_type_checking_imports(tmp_path: pathlib.Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text(
        "import typing\nif typing.TYPE_CHECKING:\n    from pkg.high import High\nelse:\n    pass\n"
    )
    (pkg / "high.py").write_text("from pkg.low import helper\n")
    (pkg / "other.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import high\n")
    assert cycles(import_graph(tmp_path, "pkg")) == [["pkg.high", "pkg.low"]]


def test_dependencies_point_down_the_stack() -> None:
    graph = import_graph(ROOT / "operator", "azsnap")

    def under(module: str, *packages: str) -> bool:
        return any(module == p or module.startswith(f"{p}.") for p in packages)

    product = [m for m in graph if not under(m, "azsnap.offline", "azsnap.emulator", "azsnap.cli")]
    assert "azsnap.reconciler.core" in product
    for module in product:
        wrong = {i for i in graph[module] if under(i, "azsnap.offline", "azsnap.emulator", "azsnap.cli")}
        assert not wrong, f"{module} (product code) imports {sorted(wrong)}"
    for module in (m for m in graph if under(m, "azsnap.domain")):
        above = {i for i in graph[module] if not under(i, "azsnap.domain")}
        assert not above, f"{module} (pure core) imports {sorted(above)}"
    for module in (m for m in graph if under(m, "azsnap.cloud", "azsnap.reconciler")):
        assert not {i for i in graph[module] if under(i, "azsnap.handlers")}, f"{module} imports the kopf face"


def _readme_layout() -> set[str]:
    """The entries of README's `operator/azsnap/` block (`name/` for a folder, `name.py` for a module)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("```\noperator/azsnap/\n", 1)[1].split("```", 1)[0]
    return {line.split()[0] for line in block.splitlines() if line.startswith("  ") and not line.startswith("   ")}


def test_readme_layout_matches_the_tree() -> None:
    package = ROOT / "operator" / "azsnap"
    tree = {f"{p.name}/" for p in package.iterdir() if p.is_dir() and p.name != "__pycache__"}
    tree |= {p.name for p in package.glob("*.py") if p.name != "__init__.py"}
    listed = _readme_layout()
    assert listed == tree, (
        f"README's operator/azsnap/ block and the tree differ: add a line for {sorted(tree - listed)}, "
        f"drop the line for {sorted(listed - tree)} (and say where it lives in docs/design.md)"
    )


#: The house's "about 400 lines" with a margin of one twentieth: past this a module is split along a seam a
#: reader can name (docs/design.md).
MODULE_LINES_LIMIT = 420


def test_no_module_is_past_about_400_lines() -> None:
    sizes = {p: len(p.read_text().splitlines()) for p in (ROOT / "operator" / "azsnap").rglob("*.py")}
    assert len(sizes) > 50
    over = {str(p.relative_to(ROOT)): n for p, n in sizes.items() if n > MODULE_LINES_LIMIT}
    assert not over, f"split these along a seam a reader can name: {over}"
