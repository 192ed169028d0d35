"""Run every notebook's code cells, in order, in one namespace (no Jupyter kernel needed).

Each notebook asserts its own figures (parameter counts, mult-adds, op vs reference, export
round trip), so a notebook that drifts from the library fails here.
"""

import json
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything a notebook writes lands in a temporary directory
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb.get("nbformat") == 4
    namespace = {"__name__": "__main__"}
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert cells, f"{path.name} has no code cells"
    for i, cell in enumerate(cells):
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        try:
            exec(compile(source, f"{path.name}[code cell {i}]", "exec"), namespace)
        except Exception as exc:  # name the cell that broke
            raise AssertionError(f"{path.name}, code cell {i} failed: {exc!r}\n{source}") from exc
