"""Every class registered with Keras' serialization under the ``keras_cnns`` package has its own
name: two classes registered as ``keras_cnns>X`` would silently replace each other, and every
saved model using the first would load the second (i-RevNet's split layer once shadowed
ShuffleNet v2's)."""

import ast
from collections import Counter
from pathlib import Path

import keras_cnns

PACKAGE = Path(keras_cnns.__file__).parent


def _registered_names():
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.ClassDef):
                continue
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and getattr(deco.func, "attr", "") == \
                        "register_keras_serializable":
                    names.append((node.name, path.relative_to(PACKAGE).as_posix()))
    return names


def test_registered_class_names_are_unique():
    names = _registered_names()
    assert len(names) > 20  # the scan finds the decorators
    counts = Counter(n for n, _ in names)
    duplicates = {n: [p for m, p in names if m == n] for n, c in counts.items() if c > 1}
    assert not duplicates, duplicates
