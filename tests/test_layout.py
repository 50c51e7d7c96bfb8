"""The package layout the code promises: layers import only to their left, no import cycles
(function-level imports included), no module over 400 lines, the public API in one place."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "simshap"

#: left to right: a module may import its own layer and the layers before it, never after
LAYERS = [
    ["errors", "files", "fingerprint", "players", "results"],
    ["data"],
    ["models"],
    ["games"],
    ["estimators"],
    ["interactions"],
    ["amortized"],
    ["evaluation"],
    ["runs", "serving"],
    ["studies"],
    ["cli", "__init__"],
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
#: the one exception to "left only" inside a layer: runs and serving do not import each other
APART = {("runs", "serving"), ("serving", "runs")}


def _unit(module: str) -> str:
    """The layer unit of a dotted module: ``simshap.games.rows`` -> ``games``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        out[name] = path
    return out


def _imports(path: Path, module: str) -> list[tuple[str, int]]:
    """Every simshap module imported anywhere in the file (function level included)."""
    tree = ast.parse(path.read_text())
    found = []
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("simshap")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            if base.startswith("simshap"):
                found.append((base, node.lineno))
    return found


def test_each_layer_imports_only_to_its_left():
    bad = []
    for module, path in _modules().items():
        src = _unit(module)
        if src not in RANK:
            bad.append(f"{module}: not in any layer")
            continue
        for target, line in _imports(path, module):
            dst = _unit(target)
            if dst not in RANK:
                bad.append(f"{module}:{line} imports {target}, which is in no layer")
            elif RANK[dst] > RANK[src] or (src, dst) in APART:
                bad.append(f"{module}:{line} imports {target} ({src} -> {dst})")
    assert not bad, "\n".join(bad)


def test_no_import_cycles_counting_function_level_imports():
    modules = _modules()
    graph = {
        m: {t for t, _ in _imports(p, m) if t in modules and t != m} for m, p in modules.items()
    }
    # a package's __init__ importing its own submodules is how packages re-export
    for m in graph:
        graph[m] = {
            t for t in graph[m] if not (m.count(".") < t.count(".") and t.startswith(m + "."))
        }
    seen, stack, cycles = {}, [], []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if seen.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for node in graph:
        if node not in seen:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.name))
def test_no_module_over_400_lines(path):
    assert len(path.read_text().splitlines()) <= 400


def test_the_public_api_is_flat():
    import simshap

    for name in (
        "fit",
        "load",
        "save",
        "ShapleyValues",
        "InteractionValues",
        "Players",
        "exact_shapley",
        "kernel_shap",
        "permutation_shapley",
        "sim_semivalue",
        "appro_semivalue",
        "SimSHAP",
        "FastSHAP",
        "UserError",
    ):
        assert getattr(simshap, name) is not None, name
    from simshap import exact_shapley, fit, kernel_shap, load  # noqa: F401


@pytest.mark.parametrize(("name", "limit"), [("README.md", 160), ("benchmarks/RESULTS.md", 400)])
def test_readme_and_results_stay_short(name, limit):
    """The README is read in ten minutes; RESULTS holds current figures (history stays in git).

    A benchmark whose section pushes RESULTS over the limit should write its detail next to its
    JSON in ``benchmarks/results/`` (as the causal study does) and keep the section short.
    """
    lines = (Path(__file__).resolve().parents[1] / name).read_text().splitlines()
    assert len(lines) <= limit, f"{name} has {len(lines)} lines (at most {limit})"


def test_tests_mirror_the_packages():
    """``tests/<package>/`` holds the tests of ``simshap/<package>/``; the top level holds only
    what spans the project (layout, README, notebooks, benchmark helpers)."""
    tests = Path(__file__).resolve().parent
    folders = {p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert folders <= packages, f"test folders without a package: {sorted(folders - packages)}"
    top = {p.name for p in tests.glob("test_*.py")}
    spanning = {"test_layout.py", "test_readme.py", "test_notebooks.py"}
    spanning.add("test_benchmark_helpers.py")
    assert top <= spanning, f"move these into tests/<package>/: {sorted(top - spanning)}"
