"""Every registered model through every deployment path, checked against Keras.

Run from the repository root::

    python benchmarks/export_all.py --json export_all.json          # all registered models
    python benchmarks/export_all.py --json export_all.json --resume # go on where it stopped
    python benchmarks/export_all.py --pattern "squeezenet*" --json export_all.json

For each model (random weights, 10 classes, its smallest practical input: 32x32, or the
architecture's minimum when larger, or its native size when smaller) it exports a TF Serving
SavedModel and float32 / int8 TFLite files, then compares (:func:`keras_cnns.export._verify.
verify_exports`): the SavedModel's ``serving_default`` in a fresh process that cannot import
keras_cnns (target: max abs difference of the logits <= 1e-4 x max(1, max |logit|)), float32
TFLite in the interpreter with its default delegate (<= 1e-3 x the same). For either, where Keras'
own float32 result is farther than that target from a float64 evaluation of the same weights, the
export passes when it is no farther from the float64 result than twice Keras: random weights can
amplify float32 rounding (EfficientNet-B7 at 32x32: Keras 3.8e-3 off float64), and two correct
float32 programs (TF's graph optimiser fuses convolution, BatchNorm and activation; TFLite folds
BatchNorm into the kernels) then differ by about twice what each differs from the exact result.
Whether int8 allocates and runs
with the default XNNPACK delegate, and the same files in LiteRT (``ai-edge-litert``) when it is
installed. Every model's weights are seeded (``--seed``), so a row can be reproduced alone with
``--pattern``. The full
sweep takes hours on 2 cores (EfficientNet-B7 alone ~4 min; deep CIFAR ResNets longer): the rows
are written after every chunk of models and ``--resume`` goes on from them. The suite runs the same checks over one model per family
(``tests/export/test_export_every_family.py``); this script is the full sweep. Exit code 1 when
any model misses a target.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the converter's per-model log lines


def input_size(info) -> int:
    native = info.default_input_shape[0]
    return native if native <= 32 else max(info.min_input_size, 32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pattern", default="*", help="fnmatch pattern of model names")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 conversion")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds every model's random weights and the probe images "
                             "(default: %(default)s)")
    parser.add_argument("--no-float64", action="store_true",
                        help="skip the float64 evaluation of each model")
    parser.add_argument("--order", choices=("name", "size"), default="name",
                        help="name, or size: fewest parameters first (default: %(default)s)")
    parser.add_argument("--chunk", type=int, default=4,
                        help="models per SavedModel-check process (default: %(default)s)")
    parser.add_argument("--json", default=None,
                        help="write the rows here (rewritten after every chunk)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows already in --json and export only the other models "
                             "(the full sweep takes hours on 2 cores: run it in parts)")
    args = parser.parse_args(argv)

    import keras

    from keras_cnns import create_model, list_models, model_info
    from keras_cnns.environment import cpu_description, format_environment, onednn_enabled
    from keras_cnns.export._verify import verify_exports

    names = list_models(args.pattern)
    if args.order == "size":
        names.sort(key=lambda n: (model_info(n).reference_params or model_info(n).paper_params
                                  or float("inf"), n))
    if not names:
        print(f"no registered model matches {args.pattern!r}", file=sys.stderr)
        return 2
    print(format_environment())
    if args.resume and not args.json:
        parser.error("--resume needs --json")
    kept = []
    if args.resume and os.path.isfile(args.json):
        with open(args.json) as f:
            kept = [r for r in json.load(f) if r["name"] in names]
        done_names = {r["name"] for r in kept}
        names = [n for n in names if n not in done_names]
        print(f"--resume: {len(kept)} models already in {args.json}")
    print(f"{len(names)} models to export; int8: {not args.no_int8}", flush=True)

    def save(rows):
        if args.json:  # written whole, then renamed: a cut-short sweep keeps what it finished
            tmp = args.json + ".tmp"
            with open(tmp, "w") as f:
                json.dump(rows, f, indent=1)
            os.replace(tmp, args.json)
    def close_ok(r, key, tol, float64_key):
        # within tol of Keras, or (where Keras itself is that far from the float64 result:
        # weights that amplify float32 rounding) no farther from float64 than twice Keras
        if r.get(key, 1) <= tol:
            return True
        err, keras_err = r.get(float64_key), r.get("keras_float64_rel_err")
        return (err is not None and keras_err is not None and keras_err > tol
                and err <= 2 * keras_err)

    def tflite_ok(r, key):
        return close_ok(r, key, 1e-3, "tflite_float64_rel_err")

    def litert_int8_steps(r):
        # LiteRT's int8 outputs against tf.lite.Interpreter's, in output quantization steps
        if "litert_int8_max_abs_diff" not in r or not r.get("int8_output_step"):
            return None
        return r["litert_int8_max_abs_diff"] / r["int8_output_step"]

    def litert_int8_ok(r):
        # the bound of tests/export/test_export_every_family.py: within one output step
        steps = litert_int8_steps(r)
        return steps is None or steps <= 1.001

    def ok(r):
        return ("error" not in r and "saved_model_error" not in r
                and close_ok(r, "saved_model_rel_diff", 1e-4, "saved_model_float64_rel_err")
                and tflite_ok(r, "tflite_rel_diff")
                and (args.no_int8 or r.get("int8_runs"))
                and "litert_error" not in r and ("litert_rel_diff" not in r
                                                 or tflite_ok(r, "litert_rel_diff"))
                and r.get("litert_int8_runs", True) and litert_int8_ok(r)
                and not r.get("keras_cnns_loaded_in_child") and not r.get("custom_op_loaded_in_child"))

    cpu = cpu_description()
    # each row says where it was measured: int8 kernels (XNNPACK's, which differ between
    # tf.lite and LiteRT builds) and oneDNN's float32 ones depend on the CPU
    machine = {"cpu": cpu["model"], "cpu_vendor": cpu["vendor"], "cpu_isa": cpu["isa"],
               "onednn": onednn_enabled()}
    rows, start = list(kept), time.perf_counter()
    for i in range(0, len(names), args.chunk):
        chunk = names[i:i + args.chunk]
        models = {}
        for name in chunk:
            info = model_info(name)
            s = input_size(info)
            keras.utils.set_random_seed(args.seed)  # each model's weights reproducible alone
            models[name] = create_model(name, input_shape=(s, s, info.default_input_shape[2]),
                                        classes=10, classifier_activation=None)  # logits
        with tempfile.TemporaryDirectory(prefix="export_all_") as work:
            done = verify_exports(models, work, int8=not args.no_int8, seed=args.seed,
                                  float64_reference=not args.no_float64, progress=True)
        for r in done:
            r["machine"] = machine
        rows += done
        save(rows)
        for r in done:  # the chunk's SavedModel results too, so a cut-short sweep says them
            print(f"  {r['name']:<36} SavedModel {r.get('saved_model_rel_diff', float('nan')):.2g}"
                  f" (probabilities {r.get('saved_model_prob_abs_diff', float('nan')):.2g})"
                  f"  TFLite {r.get('tflite_rel_diff', float('nan')):.2g}  int8 "
                  f"{'runs' if r.get('int8_runs') else 'FAILED'}  "
                  f"{'ok' if ok(r) else 'FAILED ' + str({k: r[k] for k in r if 'error' in k})}",
                  flush=True)
        del models
        keras.backend.clear_session()
        print(f"[{min(i + args.chunk, len(names))}/{len(names)}] "
              f"{time.perf_counter() - start:.0f} s", flush=True)

    print()
    print("| model | params | input | max abs logit | SavedModel logit diff (rel.) | "
          "SavedModel probability diff | TFLite float32 logit diff (rel.) | float64 error: "
          "Keras / SavedModel / TFLite (rel.) | int8 runs (XNNPACK) | LiteRT float32 diff (rel.), "
          "int8 runs, int8 diff from tf.lite (output steps) | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    nan = float("nan")
    for r in rows:
        steps = litert_int8_steps(r)
        print(f"| {r['name']} | {r['params']:,} | {r['input_shape'][0]}x{r['input_shape'][1]} | "
              f"{r.get('output_scale', nan):.3g} | "
              f"{r.get('saved_model_max_abs_diff', nan):.2g} ({r.get('saved_model_rel_diff', nan):.2g}) | "
              f"{r.get('saved_model_prob_abs_diff', nan):.2g} | "
              f"{r.get('tflite_max_abs_diff', nan):.2g} ({r.get('tflite_rel_diff', nan):.2g}) | "
              f"{r.get('keras_float64_rel_err', nan):.2g} / "
              f"{r.get('saved_model_float64_rel_err', nan):.2g} / "
              f"{r.get('tflite_float64_rel_err', nan):.2g} | "
              f"{'yes' if r.get('int8_runs') else 'NO'} | "
              + (f"{r['litert_max_abs_diff']:.2g} ({r['litert_rel_diff']:.2g}), "
                 f"{'yes' if r.get('litert_int8_runs') else 'NO'}, "
                 f"{nan if steps is None else steps:.3g}"
                 if "litert_rel_diff" in r
                 else r.get("litert_error", "not run")[:60])
              + f" | {r['seconds']:.1f} |")
    bad = [r for r in rows if not ok(r)]
    for r in bad:
        print(f"FAILED {r['name']}: " + "; ".join(
            f"{k}={r[k]}" for k in ("error", "saved_model_error", "int8_error", "litert_error",
                                    "saved_model_rel_diff", "tflite_rel_diff",
                                    "keras_float64_rel_err", "saved_model_float64_rel_err",
                                    "tflite_float64_rel_err")
            if k in r) + ("" if litert_int8_ok(r) else
                          f"; LiteRT int8 {litert_int8_steps(r):.3g} output steps from tf.lite"))
    worst = max((r.get("saved_model_rel_diff", 0) for r in rows), default=0)
    worst_t = max((r.get("tflite_rel_diff", 0) for r in rows), default=0)
    worst_p = max((r.get("saved_model_prob_abs_diff", 0) for r in rows), default=0)
    worst_tp = max((r.get("tflite_prob_abs_diff", 0) for r in rows), default=0)
    print(f"\n{len(rows) - len(bad)} of {len(rows)} models meet every target; largest "
          f"differences: SavedModel {worst:.2g} (probabilities {worst_p:.2g} abs), "
          f"TFLite float32 {worst_t:.2g} (probabilities {worst_tp:.2g} abs); "
          f"{time.perf_counter() - start:.0f} s in all")
    save(rows)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
