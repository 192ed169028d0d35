"""benchmarks/bench_densenet.py runs end to end at toy sizes (its figures are reported from full
runs, see README): memory-efficient vs plain in child processes, ours vs keras.applications."""

import importlib.util
import pathlib

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_densenet.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_densenet", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_memory_benchmark_runs_both_models_in_children(capsys):
    argv = ["memory", "--cases", "cifar", "--depth", "16", "--growth-rate", "4", "--batch", "2",
            "--size", "8", "--steps", "2"]
    assert _load().main(argv) == 0
    out = capsys.readouterr().out
    assert "DenseNet-BC (L=16, k=4), batch 2, 8x8" in out
    for label in ("plain  ", "memory_efficient  "):
        line = next(l for l in out.splitlines() if l.strip().startswith(label.strip() + " "))
        assert "GiB" in line and " s" in line, line
    assert "memory-efficient / plain: memory" in out and "=== summary: cifar: memory" in out


def test_step_benchmark_compares_with_keras_applications(capsys):
    argv = ["step", "--size", "32", "--batch", "1", "--reps", "1", "--blocks", "1", "1", "1",
            "1", "--onednn", "current"]
    assert _load().main(argv) == 0
    out = capsys.readouterr().out
    assert "keras.applications / ours" in out and "target >= 1.0x" in out


def test_bad_sizes_are_refused(capsys):
    bench = _load()
    assert bench.main(["memory", "--batch", "0"]) == 2
    assert "--batch" in capsys.readouterr().out
    assert bench.main(["step", "--size", "16", "--onednn", "current"]) == 2
    assert "--size" in capsys.readouterr().out
