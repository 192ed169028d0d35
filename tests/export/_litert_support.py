"""Where the LiteRT tests must run: ai-edge-litert 2.3 has wheels for these platforms (the
`litert` extra in pyproject, part of `dev`), so there a missing package is a failure, not a skip."""

import platform
import sys

import pytest

from keras_cnns.export import litert_available

LITERT_WHEEL = (sys.platform, platform.machine()) in {
    ("linux", "x86_64"), ("darwin", "arm64"), ("win32", "AMD64")}


def require_litert():
    """Fail where ai-edge-litert installs but is missing; skip where it has no wheel."""
    if not litert_available():
        assert not LITERT_WHEEL, "ai-edge-litert installs here: pip install -e '.[dev]'"
        pytest.skip("ai-edge-litert has no wheel for this platform")
