"""The benchmark scripts run end to end at toy sizes (their timings are not asserted here:
speed is reported by running them at full size, see README)."""

import importlib.util
import pathlib

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_grouped_conv_benchmark_prints_every_case(capsys):
    bench = _load("bench_grouped_conv")
    assert bench.main(["--batch", "2", "--size", "8", "--channels", "48", "--reps", "2"]) == 0
    out = capsys.readouterr().out
    for case in ("depthwise 3x3 fwd", "depthwise 3x3 fwd+bwd", "shuffle(3)+dw 3x3 fwd+bwd",
                 "grouped 1x1 g=3 fwd", "grouped 1x1 g=8 fwd+bwd", "dw fwd bandwidth vs copy"):
        assert case in out, out
    assert "x  >= 1.0x" in out and "%  >= 60%" in out


def test_mobilenet_step_benchmark_separates_the_two_paths(capsys):
    bench = _load("bench_mobilenet_step")
    assert bench.main(["--size", "32", "--batch", "2", "--alpha", "0.25", "--reps", "1"]) == 0
    out = capsys.readouterr().out
    assert "traced through the custom op: 13 in ours, 0 in stock" in out, out
    assert "ratio stock / ours" in out


@pytest.mark.parametrize("argv", [["--batch", "0"], ["--reps", "0"]])
def test_mobilenet_step_benchmark_rejects_bad_sizes(argv, capsys):
    assert _load("bench_mobilenet_step").main(argv) == 2
    assert "must be >= 1" in capsys.readouterr().out
