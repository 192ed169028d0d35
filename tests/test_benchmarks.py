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
    # Default: one child process per oneDNN setting, then the summary against the faster side.
    bench = _load("bench_grouped_conv")
    assert bench.main(["--batch", "2", "--size", "8", "--channels", "48", "--reps", "2"]) == 0
    out = capsys.readouterr().out
    for case in ("depthwise 3x3 fwd", "depthwise 3x3 fwd+bwd", "shuffle(3)+dw 3x3 fwd+bwd",
                 "grouped 1x1 g=3 fwd", "grouped 1x1 g=8 fwd+bwd", "dw fwd bandwidth vs copy"):
        rows = [line for line in out.splitlines() if line.startswith(case + " ")]
        # both settings' tables and the summary, and the op's own time off / on (not bandwidth)
        assert len(rows) == (3 if case.startswith("dw fwd bandwidth") else 4), out
    assert "x  >= 1.0x" in out and "%  >= 60%" in out
    # Each table says which stock kernels it measured, and they are the ones asked for.
    assert "=== TF_ENABLE_ONEDNN_OPTS=0 (oneDNN off) ===" in out
    assert "=== TF_ENABLE_ONEDNN_OPTS=1 (oneDNN on) ===" in out
    assert "CPU kernels: oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)" in out
    assert "CPU kernels: oneDNN on (TF_ENABLE_ONEDNN_OPTS=1)" in out
    assert "ISA:" in out and "=== summary" in out
    assert "=== the op's own time in the oneDNN-off and oneDNN-on processes" in out
    # Without oneDNN, TF has no gradient of a grouped conv2d: the per-group stock side is used.
    off_table = out.split("(oneDNN off) ===")[1].split("===")[0]
    assert "(per-group conv2d)" in off_table.split("grouped 1x1 g=3 fwd+bwd")[1].splitlines()[0]


def test_op_processes_benchmark_child_times_every_case(monkeypatch, capsys):
    # the child's part in this process: it answers one timed call per "time <case>" line
    import io
    import json

    bench = _load("bench_op_processes")
    lines = "".join(f"time {case}\n" for case in bench.CASES) + "quit\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    assert bench.main(["--child", "--batch", "1"]) == 0
    replies = [line[3:] for line in capsys.readouterr().out.splitlines()
               if line.startswith("KC ")]
    assert replies[0].startswith("ready ")
    assert json.loads(replies[0][len("ready "):])["allocator"] == "pooled"
    assert len(replies) == 1 + len(bench.CASES)
    assert all(float(r.split()[0]) > 0 and int(r.split()[1]) >= 0 for r in replies[1:])
    assert bench.main(["--rounds", "0"]) == 2


def test_op_processes_benchmark_runs_the_children_in_lockstep(monkeypatch, capsys):
    # The parent with stand-in children: one call in each child in turn, the table's ratios
    # computed per round against the oneDNN-on child.
    bench = _load("bench_op_processes")
    order = []
    speed = {"off, malloc": 3.0, "off (keras_cnns)": 1.25, "on": 1.0}

    class FakeChild:
        def __init__(self, name, extra, batch):
            self.name, self.info = name, {"allocator": "pooled"}

        def time(self, case):
            order.append(self.name)
            return 10.0 * speed[self.name], 0

        def close(self):
            pass

    monkeypatch.setattr(bench, "_Child", FakeChild)
    assert bench.main(["--rounds", "2", "--reps", "3"]) == 0
    names = list(bench.CONFIGS)
    assert order == names * (2 * 3 * len(bench.CASES))
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("depthwise 3x3 fwd "))
    assert "3.00x" in row and "1.25x" in row and row.endswith("MISSED")


@pytest.mark.parametrize("argv", [["--batch", "0"], ["--channels", "40"]])
def test_grouped_conv_benchmark_rejects_bad_sizes(argv, capsys):
    assert _load("bench_grouped_conv").main(argv) == 2
    assert "--" + argv[0].lstrip("-") in capsys.readouterr().out


def test_mobilenet_step_benchmark_separates_the_two_paths(capsys):
    # One setting in this process (the dispatch to one child per oneDNN setting is the shared
    # _timing code, run end to end by the grouped-conv benchmark test above).
    bench = _load("bench_mobilenet_step")
    assert bench.main(["--size", "32", "--batch", "2", "--alpha", "0.25", "--reps", "1",
                       "--onednn", "current"]) == 0
    out = capsys.readouterr().out
    assert out.count("traced through the custom op: 13 in ours, 0 in stock") == 1, out
    assert "=== TF_ENABLE_ONEDNN_OPTS" not in out and "stock TF" in out
    assert "ratio stock / ours" in out


def test_mobilenet_step_benchmark_summary_takes_the_faster_stock_side(capsys):
    bench = _load("bench_mobilenet_step")
    bench._print_summary({"off": {"ours_ms": 10.0, "stock_ms": 12.0, "ratio": 1.2},
                          "on": {"ours_ms": 10.0, "stock_ms": 9.0, "ratio": 0.9}})
    out = capsys.readouterr().out
    assert "against the faster stock side: 0.900x" in out
    assert "oneDNN off: ours 10.0 ms, stock 12.0 ms, ratio 1.200x" in out


@pytest.mark.parametrize("argv", [["--batch", "0"], ["--reps", "0"]])
def test_mobilenet_step_benchmark_rejects_bad_sizes(argv, capsys):
    assert _load("bench_mobilenet_step").main(argv) == 2
    assert "must be >= 1" in capsys.readouterr().out


def test_stochastic_depth_benchmark_runs_at_toy_size(capsys):
    bench = _load("bench_stochastic_depth")
    assert bench.main(["--depth", "8", "--batch", "2", "--reps", "1", "--breakdown",
                       "--onednn", "current"]) == 0
    out = capsys.readouterr().out
    assert "CIFAR ResNet-8 (3 residual blocks)" in out
    assert "expected fraction of blocks run per step: 0.667" in out   # mean of 1 - l/3 * 0.5
    assert "median of per-step ratios" in out and "total time" in out and "target <= 0.80" in out
    # --breakdown: one row per stage (ResNet-8: one block each), with the stage's mean p_l.
    for stage, mean_p in (("conv2", "0.833"), ("conv3", "0.667"), ("conv4", "0.500")):
        rows = [line.split() for line in out.splitlines() if line.startswith(stage + " ")]
        assert len(rows) == 1 and rows[0][-1] == mean_p, out
    assert "stochastic, conv3 dropped" in out and "ratio the linear rule can reach" in out


def test_stochastic_depth_benchmark_forces_survival_per_stage():
    # The breakdown's forced nets: survival 0 in the chosen stage (never kept), 1 elsewhere.
    import keras_cnns
    from keras_cnns.blocks.stochastic_depth import StochasticDepth

    bench = _load("bench_stochastic_depth")
    model = keras_cnns.CifarResNet(depth=14, stochastic_depth=0.5)

    def stage_of(m):
        return [(l, l.name.split("_block")[0]) for l in m.layers if isinstance(l, StochasticDepth)]

    bench._force(model, stage_of, "conv3")
    got = {l.name: l.survival_prob for l, _ in stage_of(model)}
    assert got == {f"conv{s}_block{b}_add": (0.0 if s == 3 else 1.0)
                   for s in (2, 3, 4) for b in (1, 2)}


@pytest.mark.parametrize("argv", [["--batch", "0"], ["--survival", "0"], ["--depth", "21"],
                                  ["--depth", "2"]])
def test_stochastic_depth_benchmark_rejects_bad_arguments(argv, capsys):
    assert _load("bench_stochastic_depth").main(argv) == 2
    assert argv[0].lstrip("-") in capsys.readouterr().out


def test_resnext_grouped_benchmark_runs_at_toy_size(capsys):
    bench = _load("bench_resnext_grouped")
    assert bench.main(["--batch", "1", "--stages", "2", "--reps", "1", "--max-side", "4",
                       "--onednn", "current"]) == 0
    out = capsys.readouterr().out
    assert "oneDNN" in out and "128@4" in out and "256@4" in out and "sum" in out


@pytest.mark.parametrize("argv, arg", [(["--batch", "0"], "--batch"), (["--groups", "3"], "--groups"),
                                       (["--stages", "5"], "--stages"),
                                       (["--max-side", "0"], "--max-side")])
def test_resnext_grouped_benchmark_rejects_bad_arguments(argv, arg, capsys):
    assert _load("bench_resnext_grouped").main(argv) == 2
    assert arg in capsys.readouterr().out


def test_cspresnext_benchmark_separates_the_two_paths(capsys):
    bench = _load("bench_cspresnext")
    assert bench.main(["--toy", "--size", "32", "--batch", "2", "--reps", "1", "--classes", "10",
                       "--onednn", "current"]) == 0
    out = capsys.readouterr().out
    # the toy net's 4 blocks and 3 strided conv_down layers: all 7 grouped layers on the op
    assert "traced through the custom op: 7 in ours, 0 in stock" in out, out
    assert "7 grouped 3x3 convolutions (32 groups)" in out
    assert "ratio stock / ours" in out and "target >= 1.0" in out and "stock TF" in out


@pytest.mark.parametrize("argv, arg", [(["--batch", "0"], "--batch"), (["--size", "16"], "--size")])
def test_cspresnext_benchmark_rejects_bad_arguments(argv, arg, capsys):
    assert _load("bench_cspresnext").main(argv) == 2
    assert arg in capsys.readouterr().out


def test_mobile_throughput_benchmark_runs_at_toy_size(capsys):
    bench = _load("bench_mobile_throughput")
    assert bench.main(["--sizes", "32", "--batch", "2", "--reps", "1", "--models", "mobilenet",
                       "efficientnet_b0", "--onednn", "current"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.split()[:2] in
            (["mobilenet", "32"], ["efficientnet_b0", "32"])]
    assert len(rows) == 2 and all(r[4].endswith("x") for r in rows), out
    assert "stock TF" in out and "ours img/s" in out


@pytest.mark.parametrize("argv, arg", [(["--batch", "0"], "--batch"), (["--sizes", "16"], "--sizes")])
def test_mobile_throughput_benchmark_rejects_bad_arguments(argv, arg, capsys):
    assert _load("bench_mobile_throughput").main(argv) == 2
    assert arg in capsys.readouterr().out


def test_depthwise_shapes_benchmark_runs_at_toy_size(capsys):
    bench = _load("bench_depthwise_shapes")
    assert bench.main(["--sizes", "32", "--batch", "1", "--reps", "1", "--onednn", "current"]) == 0
    out = capsys.readouterr().out
    assert "distinct shapes in mobilenet, mobilenetv2, mobilenetv3_large, efficientnet_b0" in out
    assert "weighted total: custom" in out and "the rule's picks" in out



def test_shufflenet_benchmark_runs_both_paths_and_the_breakdown(capsys):
    bench = _load("bench_shufflenet")
    assert bench.main(["--groups", "8", "--sizes", "32", "--batch", "2", "--reps", "1",
                       "--scale", "0.5", "--breakdown", "--onednn", "current"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("g8 ")]
    assert len(rows) == 1 and rows[0][1] == "32" and rows[0][4].endswith("x"), out
    # the breakdown: ShuffleNet v1's fused kinds, each shape with its count of uses
    table = out.split("breakdown g8@32")[1]
    kinds = {line.split()[0] for line in table.splitlines()[2:] if line.startswith(("shuffle", "gconv"))}
    assert kinds == {"shuffle+dw", "gconv1x1"}, table
    uses = sum(int(line.split()[-4]) for line in table.splitlines()[2:]
               if line.startswith("shuffle+dw"))
    assert uses == 16                           # one fused shuffle + depthwise per unit
    assert "training step at >= 1.25x:" in out


def test_shufflenet_benchmark_rejects_bad_sizes(capsys):
    assert _load("bench_shufflenet").main(["--sizes", "16"]) == 2
    assert "--sizes must be >= 32" in capsys.readouterr().out


def test_input_pipeline_benchmark_reports_both_pipelines_against_training(capsys):
    bench = _load("bench_input_pipeline")
    assert bench.main(["--batch", "4", "--batches", "2", "--steps", "1", "--images", "8",
                       "--jpeg-size", "48", "64", "--train-size", "32", "--crop-size",
                       "32"]) == 0
    out = capsys.readouterr().out
    assert "training step, MobileNet 0.5 at 32x32:" in out
    assert out.count("images/s =") == 2 and "CIFAR-style" in out and "ImageNet-style" in out
    assert bench.main(["--batch", "0"]) == 2


def test_export_sweep_checks_a_model_and_reports_it(capsys):
    bench = _load("export_all")
    assert bench.main(["--pattern", "lenet5"]) == 0
    out = capsys.readouterr().out
    assert "| lenet5 | 61,706 | 32x32 |" in out
    assert "1 of 1 models meet every target" in out
    # the float64 evaluation ran: Keras', SavedModel's and TFLite's float32 errors against it, both small
    # for LeNet-5 (and nonzero: float32 rounding is there to measure)
    line = next(l for l in out.splitlines() if l.startswith("| lenet5 |"))
    keras_err, saved_err, tflite_err = (float(v) for v in line.split("|")[8].split("/"))
    assert 0 < keras_err < 1e-5 and 0 < tflite_err < 1e-5
    # the served SavedModel runs the same float32 graph as Keras: as close to float64
    assert 0 < saved_err < 1e-5
    assert bench.main(["--pattern", "no_such_model*"]) == 2


def test_fractalnet_column_benchmark_runs_at_toy_size(capsys):
    bench = _load("bench_fractalnet")
    bench.main(["--model", "fractalnet10_w16_cifar100", "--batch", "1", "--reps", "2"])
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["0", "1"], out  # both columns of the C=2 network
    for r in rows:  # the full network costs more multiply-adds than any one column
        assert r[3].endswith("x") and float(r[4].rstrip("x")) > 1.0, out


def test_plain_conv_benchmark_runs_at_toy_size(capsys):
    bench = _load("bench_plain_conv")
    assert bench.main(["--onednn", "current", "--models", "resnet20", "--side", "16",
                       "--batch", "2", "--reps", "1", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "distinct plain convolutions in resnet20" in out and "weighted total" in out
    picks = [line.split()[-1] for line in out.splitlines() if " -> " in line and "C_out" not in line]
    # one row per shape, with the pick (op*: the forward on TensorFlow, the gradients on the op)
    assert len(picks) >= 5 and set(picks) <= {"op", "op*", "stock"}
    row = [line for line in out.splitlines() if line.startswith("resnet20 ")]
    assert len(row) == 1 and "/" in row[0]  # convolutions on the op / all of them
    assert bench.main(["--onednn", "current", "--models", "resnet20", "--side", "16",
                       "--batch", "2", "--reps", "1", "--part", "shapes", "--forward-only"]) == 0
    out = capsys.readouterr().out
    assert "forward only" in out and "weighted total" in out
    assert bench.main(["--onednn", "current", "--models", "resnet20", "--side", "16",
                       "--reps", "1", "--part", "inference", "--infer-batches", "1", "3"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("resnet20 ")]
    assert [r[1] for r in rows] == ["1", "3"], out  # one row per batch size
    assert all(r[-1].endswith("x") and float(r[-1][:-1]) > 0 for r in rows), out
    assert bench.main(["--models", "resnet9000"]) == 2
    assert "unknown model" in capsys.readouterr().out
