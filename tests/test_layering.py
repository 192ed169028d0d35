"""The package's layering: the ``[tool.importlinter]`` contract of ``pyproject.toml``, checked with
import-linter (``lint-imports``, a dev dependency), which sees every import, function-local ones
included, and indirect chains.

    __main__ > cli > commands | environment > tuning > training > export | profiler | bridges
        > models | data > blocks > layers > ops > _checks | _startup

A module imports only from layers below its own; ``|`` siblings never import each other. Since the
contract is exhaustive (every module directly under ``keras_cnns`` is placed), a kept contract
also means no import cycle between them; :func:`test_no_cycle_between_top_level_modules` checks
that on the import graph directly, so the repository needs no outside tool for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "keras_cnns"
_LINT = ("import sys; from importlinter.cli import lint_imports_command; "
         "sys.exit(lint_imports_command())")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the package found in ``cwd`` (import-linter puts ``cwd`` first on
    ``sys.path``), with the contract of ``cwd/pyproject.toml``; no cache written."""
    try:
        import importlinter  # noqa: F401
    except ImportError:  # pragma: no cover - the dev extra pins it
        pytest.fail("import-linter is not installed: pip install -e '.[dev]'")
    env = dict(os.environ, PYTHONPATH=str(cwd), COLUMNS="200")
    return subprocess.run([sys.executable, "-c", _LINT, "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_layers_contract_is_kept():
    proc = _lint_imports(ROOT)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"lint-imports failed:\n{report}"
    assert "Contracts: 1 kept, 0 broken." in report, report


def test_contract_catches_a_function_local_upward_import(tmp_path):
    """The contract has teeth: a copy of the package with one upward import inside a function
    (layers -> profiler) breaks it, and the report names the import."""
    shutil.copytree(ROOT / PACKAGE, tmp_path / PACKAGE,
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / PACKAGE / "layers" / "utils.py", "a") as f:
        f.write("\n\ndef _upward():\n    from keras_cnns.profiler import profile\n\n"
                "    return profile\n")
    proc = _lint_imports(tmp_path)
    report = proc.stdout + proc.stderr
    assert proc.returncode != 0, report
    assert "keras_cnns.layers is not allowed to import keras_cnns.profiler" in report, report
    assert "keras_cnns.layers.utils -> keras_cnns.profiler" in report, report


def test_no_cycle_between_top_level_modules():
    """No import cycle between the subpackages / modules directly under keras_cnns, function-local
    imports included (the package-level graph, strongly connected components)."""
    import grimp

    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    rooms = sorted(graph.find_children(PACKAGE))
    edges = defaultdict(set)
    for a in rooms:
        for b in rooms:
            if a != b and graph.direct_import_exists(importer=a, imported=b, as_packages=True):
                edges[a].add(b)
    assert "keras_cnns.layers" in edges["keras_cnns.models"]  # the graph is the real one
    # Tarjan's strongly connected components
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for room in rooms:
        if room not in index:
            visit(room)
    assert not cycles, "import cycles among: " + "; ".join(", ".join(c) for c in cycles)


def test_the_repository_stands_alone():
    """No file of the repository points outside it (a tool in a sibling directory): the checks
    above are the whole of the layering check."""
    outside = "/".join(("..", "shared"))
    offenders = []
    tops = [ROOT / d for d in ("keras_cnns", "tests", "benchmarks", "notebooks", "custom_ops",
                               ".ci")]
    tops += sorted(p for p in ROOT.iterdir()
                   if p.is_file() and p.suffix in (".md", ".toml", ".cfg", ".ini", ".txt", ".py"))
    for path in tops:
        if not path.exists():
            continue
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for p in files:
            if "__pycache__" in p.parts or p.suffix in (".so", ".o", ".pyc", ".gz", ".npz"):
                continue
            try:
                text = p.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            if outside in text:
                offenders.append(str(p.relative_to(ROOT)))
    assert not offenders, f"files referring to {outside}: {offenders}"
