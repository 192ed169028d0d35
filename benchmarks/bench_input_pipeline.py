"""Input pipeline throughput against training throughput, measured side by side in one run.

The pipelines are :func:`keras_cnns.data.build_pipeline`, the code behind
``keras_cnns.data.load``:

* CIFAR-style: uint8 32x32 images -> pad 4, random crop, flip, normalise, batch;
* ImageNet-style: JPEG bytes (default 400x350, ImageNet's typical size) -> Inception
  random-resized crop decoded with ``decode_and_crop_jpeg``, resize to 224, flip, normalise,
  batch.

The consumer is a training step (forward, backward, update; ``jit_compile=False`` as the training
loop uses on CPU) of MobileNet 0.5 at 128x128 (``rho = 128/224``). The pipeline must deliver at
least 3x the images per second the training step consumes, so the step never waits for data.

    python benchmarks/bench_input_pipeline.py [--batch 64] [--batches 30] [--steps 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _pipeline_rate(ds, batches, batch_size):
    it = iter(ds)
    for _ in range(3):  # warm-up: autotuning, the first map traces
        next(it)
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - t)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="batch size of both sides")
    parser.add_argument("--batches", type=int, default=30, help="pipeline batches timed")
    parser.add_argument("--steps", type=int, default=8, help="training steps timed")
    parser.add_argument("--images", type=int, default=512, help="distinct source images")
    parser.add_argument("--jpeg-size", type=int, nargs=2, default=(350, 400),
                        metavar=("H", "W"), help="source JPEG size (ImageNet-style)")
    parser.add_argument("--texture", type=float, default=30.0,
                        help="std of the fine texture added to the JPEG sources (sets their size)")
    parser.add_argument("--train-size", type=int, default=128, help="MobileNet input side")
    parser.add_argument("--crop-size", type=int, default=224, help="ImageNet-style crop side")
    args = parser.parse_args(argv)
    for flag in ("batch", "batches", "steps", "images", "train_size", "crop_size"):
        if getattr(args, flag) < 1:
            print(f"--{flag.replace('_', '-')} must be >= 1. Received: {getattr(args, flag)}")
            return 2

    import numpy as np
    import tensorflow as tf

    import keras
    import keras_cnns
    from keras_cnns.data import DATASETS, build_pipeline

    rng = np.random.default_rng(0)
    n = args.images
    # smooth random images (JPEG-compressible like photos, unlike white noise)
    low = rng.integers(0, 255, (n, 8, 8, 3)).astype(np.float32)
    cifar = tf.cast(tf.image.resize(low, [32, 32]), tf.uint8)
    labels = rng.integers(0, 10, n).astype(np.int32)
    h, w = args.jpeg_size
    # photo-like JPEGs: smooth shapes plus fine texture (~86 KB at 400x350; ImageNet ~110 KB)
    k = min(64, n)
    big = tf.image.resize(low[:k], [h, w]) + rng.normal(0, args.texture, (k, h, w, 3))
    big = tf.cast(tf.clip_by_value(big, 0, 255), tf.uint8)
    jpegs = [tf.io.encode_jpeg(im, quality=90) for im in big]
    jpegs = tf.stack([jpegs[i % len(jpegs)] for i in range(n)])
    kb = np.mean([len(j.numpy()) for j in jpegs[:k]]) / 1024

    cifar_ds = build_pipeline(
        tf.data.Dataset.from_tensor_slices((cifar, labels)).repeat(), DATASETS["cifar10"], 32,
        batch_size=args.batch, augment=True, native_channels=3, shuffle=True,
        shuffle_buffer=n)
    imagenet_ds = build_pipeline(
        tf.data.Dataset.from_tensor_slices((jpegs, labels)).repeat(), DATASETS["imagenet2012"],
        args.crop_size, batch_size=args.batch, augment=True, native_channels=3, shuffle=True,
        shuffle_buffer=n)
    cifar_rate = _pipeline_rate(cifar_ds, args.batches, args.batch)
    imagenet_rate = _pipeline_rate(imagenet_ds, args.batches, args.batch)

    keras.utils.set_random_seed(0)
    model = keras_cnns.MobileNet(alpha=0.5, rho=args.train_size / 224, classes=1000)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy", jit_compile=False)
    x = tf.random.normal([args.batch, args.train_size, args.train_size, 3])
    y = tf.constant(rng.integers(0, 1000, args.batch).astype(np.int32))
    for _ in range(2):
        model.train_on_batch(x, y)
    t = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch(x, y)
    train_rate = args.steps * args.batch / (time.perf_counter() - t)

    print(f"CPU: {os.cpu_count()} cores; batch {args.batch}")
    print(f"training step, MobileNet 0.5 at {args.train_size}x{args.train_size}: "
          f"{train_rate:9.1f} images/s")
    for name, rate in ((f"CIFAR-style pipeline (32x32 pad-crop-flip)", cifar_rate),
                       (f"ImageNet-style pipeline ({h}x{w} JPEG ~{kb:.0f} KB -> random-resized "
                        f"crop {args.crop_size})", imagenet_rate)):
        ratio = rate / train_rate
        print(f"{name}: {rate:9.1f} images/s = {ratio:6.1f}x training  "
              f"({'>= 3x: ok' if ratio >= 3 else 'BELOW the 3x target'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
