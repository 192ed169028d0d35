"""Checks and times the framework-free CUDA kernels of grouped depthwise convolution (no TF).

Loads the C-ABI wrapper (kcnn_gpu_check.cu, built by run_on_device.sh) with ctypes and runs it on
torch CUDA tensors (NHWC float32, through ``data_ptr()``):

* correctness, for a range of configurations (strides, SAME/VALID, dilation, groups from 1 to C,
  channel multiplier, channel shuffle): forward against ``torch.nn.functional.conv2d(...,
  groups=...)`` on the shuffled input (TF's asymmetric SAME padding applied explicitly), and the
  input / filter gradients against torch autograd, all with TF32 disabled;
* speed, on N=32, 28x28x240 (MobileNet / ShuffleNet shapes): depthwise 3x3, shuffle + depthwise
  3x3, grouped 1x1 with groups 3 and 8, forward and forward+backward, against cuDNN
  (``torch.backends.cudnn.benchmark = True``, channels_last, fp32 without TF32).

Usage: ``python check_cuda_kernels.py --lib ./kcnn_gpu_check.so [--quick] [--out results.txt]``.
Exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import sys

import torch
import torch.nn.functional as F

GEOM = ctypes.c_int64 * 14


class Kernels:
    """ctypes front end of kcnn_gpu_check.so."""

    def __init__(self, path: str):
        self.lib = ctypes.CDLL(path)
        ptr, vp = ctypes.c_void_p, ctypes.c_void_p
        for name in ("kcnn_forward_f32", "kcnn_backprop_input_f32", "kcnn_backprop_filter_f32"):
            fn = getattr(self.lib, name)
            fn.argtypes = [ctypes.POINTER(ctypes.c_int64), ptr, ptr, ptr, vp]
            fn.restype = ctypes.c_int
        self.lib.kcnn_output_size.argtypes = [ctypes.POINTER(ctypes.c_int64),
                                              ctypes.POINTER(ctypes.c_int64),
                                              ctypes.POINTER(ctypes.c_int64)]
        self.lib.kcnn_last_error.restype = ctypes.c_char_p
        self.lib.kcnn_synchronize.argtypes = [vp]

    def _check(self, rc):
        if rc != 0:
            raise RuntimeError(self.lib.kcnn_last_error().decode())

    @staticmethod
    def geom(cfg, x_shape, cout):
        n, h, w, c = x_shape
        return GEOM(n, h, w, c, cfg["k"], cfg["k"], cout, cfg["s"], cfg["s"], cfg["d"], cfg["d"],
                    1 if cfg["pad"] == "SAME" else 0, cfg["groups"], cfg["shuffle"])

    def output_size(self, geom):
        oh, ow = ctypes.c_int64(), ctypes.c_int64()
        self._check(self.lib.kcnn_output_size(geom, ctypes.byref(oh), ctypes.byref(ow)))
        return oh.value, ow.value

    def _stream(self):
        return ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)

    def forward(self, geom, x, f, y):
        self._check(self.lib.kcnn_forward_f32(geom, x.data_ptr(), f.data_ptr(), y.data_ptr(),
                                              self._stream()))

    def backprop_input(self, geom, dy, f, dx):
        self._check(self.lib.kcnn_backprop_input_f32(geom, dy.data_ptr(), f.data_ptr(),
                                                     dx.data_ptr(), self._stream()))

    def backprop_filter(self, geom, x, dy, df):
        self._check(self.lib.kcnn_backprop_filter_f32(geom, x.data_ptr(), dy.data_ptr(),
                                                      df.data_ptr(), self._stream()))

    def sync(self):
        self._check(self.lib.kcnn_synchronize(self._stream()))


def tf_padding(size, k, s, d, same):
    """(out, pad_before, pad_after) with TensorFlow's rules."""
    eff = (k - 1) * d + 1
    if not same:
        return (max(0, (size - eff) // s + 1) if size >= eff else 0), 0, 0
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return out, total // 2, total - total // 2


def shuffle_nchw(x, g):
    if g == 1:
        return x
    n, c, h, w = x.shape
    return x.reshape(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)


def torch_reference(x_nhwc, f_ours, cfg):
    """torch conv2d on the shuffled input; x NHWC, filter in our [KH, KW, C/g, C_out] layout."""
    same = cfg["pad"] == "SAME"
    x = shuffle_nchw(x_nhwc.permute(0, 3, 1, 2), cfg["shuffle"])
    w = f_ours.permute(3, 2, 0, 1)  # [C_out, C/g, KH, KW]
    _, pt, pb = tf_padding(x.shape[2], cfg["k"], cfg["s"], cfg["d"], same)
    _, pl, pr = tf_padding(x.shape[3], cfg["k"], cfg["s"], cfg["d"], same)
    x = F.pad(x, (pl, pr, pt, pb))
    y = F.conv2d(x, w, stride=cfg["s"], dilation=cfg["d"], groups=cfg["groups"])
    return y.permute(0, 2, 3, 1)


CONFIGS = [
    # depthwise (groups == C), with shuffle, multiplier, strides, dilation, padding
    dict(n=2, hw=(9, 7), c=16, k=3, s=1, d=1, pad="SAME", groups=16, mult=1, shuffle=1),
    dict(n=2, hw=(9, 7), c=16, k=3, s=2, d=1, pad="SAME", groups=16, mult=1, shuffle=4),
    dict(n=2, hw=(10, 10), c=12, k=5, s=1, d=2, pad="SAME", groups=12, mult=2, shuffle=3),
    dict(n=1, hw=(11, 8), c=24, k=3, s=2, d=2, pad="VALID", groups=24, mult=1, shuffle=2),
    dict(n=3, hw=(7, 7), c=8, k=3, s=1, d=1, pad="VALID", groups=8, mult=3, shuffle=1),
    dict(n=2, hw=(11, 9), c=20, k=5, s=1, d=2, pad="VALID", groups=20, mult=1, shuffle=2),
    dict(n=2, hw=(6, 13), c=8, k=7, s=1, d=1, pad="SAME", groups=8, mult=1, shuffle=4),
    # grouped, incl. 1x1 (ShuffleNet), 3x3 (ResNeXt) and plain (groups == 1)
    dict(n=2, hw=(8, 8), c=24, k=1, s=1, d=1, pad="SAME", groups=3, mult=1, shuffle=3),
    dict(n=2, hw=(8, 8), c=32, k=1, s=1, d=1, pad="SAME", groups=8, mult=1, shuffle=1),
    dict(n=2, hw=(9, 9), c=16, k=3, s=2, d=1, pad="SAME", groups=4, mult=2, shuffle=2),
    dict(n=1, hw=(12, 10), c=12, k=3, s=1, d=2, pad="VALID", groups=2, mult=1, shuffle=3),
    dict(n=2, hw=(6, 6), c=6, k=3, s=1, d=1, pad="SAME", groups=1, mult=2, shuffle=1),
    dict(n=2, hw=(7, 9), c=10, k=5, s=2, d=1, pad="SAME", groups=5, mult=1, shuffle=5),
    # MobileNet/ShuffleNet layer shapes at full size
    dict(n=4, hw=(28, 28), c=240, k=3, s=1, d=1, pad="SAME", groups=240, mult=1, shuffle=3),
    dict(n=4, hw=(28, 28), c=240, k=1, s=1, d=1, pad="SAME", groups=3, mult=1, shuffle=1),
]


def check_config(kern, cfg, gen):
    n, (h, w), c = cfg["n"], cfg["hw"], cfg["c"]
    cout = c * cfg["mult"] if cfg["groups"] == c else c * cfg["mult"]
    cpg = c // cfg["groups"]
    x = torch.randn(n, h, w, c, device="cuda", generator=gen)
    f = torch.randn(cfg["k"], cfg["k"], cpg, cout, device="cuda", generator=gen) / math.sqrt(
        cfg["k"] * cfg["k"] * cpg)
    geom = Kernels.geom(cfg, x.shape, cout)
    oh, ow = kern.output_size(geom)
    xr, fr = x.clone().requires_grad_(True), f.clone().requires_grad_(True)
    y_ref = torch_reference(xr, fr, cfg)
    assert tuple(y_ref.shape) == (n, oh, ow, cout), (y_ref.shape, (n, oh, ow, cout))
    dy = torch.randn(y_ref.shape, device="cuda", generator=gen)
    dx_ref, df_ref = torch.autograd.grad(y_ref, (xr, fr), dy)
    y = torch.empty(n, oh, ow, cout, device="cuda")
    dx = torch.full_like(x, float("nan"))
    df = torch.full_like(f, float("nan"))
    kern.forward(geom, x, f, y)
    kern.backprop_input(geom, dy.contiguous(), f, dx)
    kern.backprop_filter(geom, x, dy.contiguous(), df)
    kern.sync()

    def err(a, b):
        scale = max(1.0, b.abs().max().item())
        return (a - b).abs().max().item() / scale

    return err(y, y_ref), err(dx, dx_ref), err(df, df_ref)


def cuda_time(fn, reps):
    """Median milliseconds of fn() over reps runs, with CUDA events."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def bench_case(kern, name, c, k, groups, shuffle, reps, n=32, hw=28):
    cfg = dict(k=k, s=1, d=1, pad="SAME", groups=groups, shuffle=shuffle)
    cout, cpg = c, c // groups
    x = torch.randn(n, hw, hw, c, device="cuda")
    f = torch.randn(k, k, cpg, cout, device="cuda")
    dy = torch.randn(n, hw, hw, cout, device="cuda")
    geom = Kernels.geom(cfg, x.shape, cout)
    y, dx, df = torch.empty_like(dy), torch.empty_like(x), torch.empty_like(f)

    def ours_fwd():
        kern.forward(geom, x, f, y)

    def ours_fwd_bwd():
        kern.forward(geom, x, f, y)
        kern.backprop_input(geom, dy, f, dx)
        kern.backprop_filter(geom, x, dy, df)

    # cuDNN: NCHW-shaped tensors in channels_last memory (= NHWC), weights [C_out, C/g, KH, KW].
    xc = x.permute(0, 3, 1, 2).detach().requires_grad_(True)  # channels_last view of NHWC
    wc = f.permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    dyc = dy.permute(0, 3, 1, 2)
    pad = k // 2

    def torch_conv(inp):
        if shuffle > 1:
            nb, cc, hh, ww = inp.shape
            inp = inp.reshape(nb, shuffle, cc // shuffle, hh, ww).transpose(1, 2).reshape(
                nb, cc, hh, ww).contiguous(memory_format=torch.channels_last)
        return F.conv2d(inp, wc, padding=pad, groups=groups)

    def cudnn_fwd():
        with torch.no_grad():
            torch_conv(xc)

    def cudnn_fwd_bwd():
        out = torch_conv(xc)
        torch.autograd.grad(out, (xc, wc), dyc)

    kern.sync()
    t = [cuda_time(ours_fwd, reps), cuda_time(cudnn_fwd, reps), cuda_time(ours_fwd_bwd, reps),
         cuda_time(cudnn_fwd_bwd, reps)]
    return name, t


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lib", default="./kcnn_gpu_check.so")
    parser.add_argument("--quick", action="store_true", help="fewer timing repetitions")
    parser.add_argument("--out", default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("No CUDA device visible to torch.")
        return 1
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    kern = Kernels(args.lib)
    gen = torch.Generator(device="cuda").manual_seed(0)
    lines = [f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
             f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}", ""]
    lines.append(f"{'config':<74}{'fwd err':>10}{'dx err':>10}{'df err':>10}  ok")
    tol = 2e-4
    failures = 0
    for cfg in CONFIGS:
        e = check_config(kern, cfg, gen)
        ok = all(v < tol for v in e)
        failures += not ok
        desc = (f"N={cfg['n']} HxW={cfg['hw'][0]}x{cfg['hw'][1]} C={cfg['c']} k={cfg['k']} "
                f"s={cfg['s']} d={cfg['d']} {cfg['pad']} groups={cfg['groups']} "
                f"mult={cfg['mult']} shuffle={cfg['shuffle']}")
        lines.append(f"{desc:<74}{e[0]:>10.1e}{e[1]:>10.1e}{e[2]:>10.1e}  {'ok' if ok else 'FAIL'}")
    lines.append(f"(max abs error / max(1, max |reference|); tolerance {tol})")
    lines.append("")
    reps = 10 if args.quick else 50
    cases = [("depthwise 3x3", 240, 3, 240, 1), ("shuffle(3)+depthwise 3x3", 240, 3, 240, 3),
             ("grouped 1x1 g=3", 240, 1, 3, 1), ("grouped 1x1 g=8", 240, 1, 8, 1)]
    lines.append("timing: N=32, 28x28x240 -> 240, fp32 (no TF32), median of "
                 f"{reps}; ratio = t_cudnn / t_ours (> 1: ours faster)")
    lines.append(f"{'case':<28}{'ours fwd':>10}{'cudnn fwd':>11}{'ratio':>7}"
                 f"{'ours f+b':>10}{'cudnn f+b':>11}{'ratio':>7}")
    for name, c, k, groups, shuffle in cases:
        _, (of, cf, ofb, cfb) = bench_case(kern, name, c, k, groups, shuffle, reps)
        lines.append(f"{name:<28}{of:>9.3f}m{cf:>10.3f}m{cf / of:>7.2f}"
                     f"{ofb:>9.3f}m{cfb:>10.3f}m{cfb / ofb:>7.2f}")
    lines.append("")
    lines.append("PASS" if failures == 0 else f"FAIL: {failures} configuration(s) out of tolerance")
    report = "\n".join(lines)
    print(report)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(report + "\n")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
