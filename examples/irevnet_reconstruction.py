"""Reconstruct digits from an i-RevNet's final features (Jacobsen et al. 2018, Fig. 2 / the
official README's "inverted_val_samples").

An i-RevNet trained on the embedded digits (the output of ``keras-cnns train`` with
``--checkpoint-dir``, or, without ``--checkpoint``, a short run of this script's own) maps each
held-out image to its final features, the merged last pair of the network (3 x 32 x 32 inputs
become 512 x 8 x 8 features in the CIFAR design); :func:`keras_cnns.models.irevnet.invert` maps
those back. The figure shows the images (top), their reconstructions from the features alone
(middle, titled with each image's relative error) and the absolute difference, scaled by its
maximum (bottom); the script prints the relative reconstruction error.

Usage::

    # train first (the README's command), then reconstruct from that run
    keras-cnns train irevnet_cifar --image-size 32 --epochs 15 \\
        --model-arg "blocks=(2,2,2)" --checkpoint-dir runs/irevnet --no-export
    python examples/irevnet_reconstruction.py --checkpoint runs/irevnet

    # or train briefly here (a few epochs) and reconstruct
    python examples/irevnet_reconstruction.py --epochs 3

Writes ``docs/images/irevnet_reconstruction.png`` (``--out``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model(args):
    """``(model, seed, image_size, note)``: the checkpoint's model, or one trained here."""
    if args.checkpoint:
        from keras_cnns.training.checkpoint import load_checkpoint_model

        model, meta = load_checkpoint_model(args.checkpoint)
        fp = meta["fingerprint"]
        return model, int(meta.get("seed", 0)), int(fp["input_shape"][0]), \
            f"checkpoint {meta['path']}"
    from keras_cnns.training import train

    start = time.perf_counter()
    result = train("irevnet_cifar", "digits", model_kwargs={"blocks": (2, 2, 2)},
                              image_size=args.image_size, epochs=args.epochs, seed=0,
                              verbose=0)
    note = (f"irevnet_cifar blocks=(2, 2, 2) trained here for {args.epochs} epochs "
            f"({time.perf_counter() - start:.0f} s)")
    return result.model, 0, args.image_size, note


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="a keras-cnns train --checkpoint-dir of an i-RevNet "
                                             "trained on the digits")
    parser.add_argument("--epochs", type=int, default=3, help="epochs when training here")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--images", type=int, default=8, help="held-out digits shown")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "images",
                                                      "irevnet_reconstruction.png"))
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keras_cnns.data import load_digits
    from keras_cnns.models.irevnet import final_features, invert

    model, seed, size, note = _model(args)
    channels = int(model.input_shape[-1])
    splits = load_digits(image_size=size, channels=channels, seed=seed, batch_size=256,
                         shuffle=False)
    x = np.concatenate([b.numpy() for b, _ in splits.val])  # every held-out digit
    features = final_features(model).predict(x, batch_size=64, verbose=0)
    back = np.concatenate([invert(model, features[i:i + 64]).numpy()
                           for i in range(0, len(x), 64)])
    rel = float(np.linalg.norm(back - x) / np.linalg.norm(x))
    per_image = np.linalg.norm((back - x).reshape(len(x), -1), axis=1) / \
        np.linalg.norm(x.reshape(len(x), -1), axis=1)
    print(f"model: {note}")
    print(f"features: {features.shape[1:]} ({int(np.prod(features.shape[1:]))} values for "
          f"{int(np.prod(x.shape[1:]))} input values)")
    print(f"held-out digits: {len(x)}; relative reconstruction error {rel:.3g} (all), "
          f"max per image {per_image.max():.3g}, max |x - x_rec| {np.abs(back - x).max():.3g}")

    n = min(args.images, len(x))
    mean, std = np.asarray(splits.mean), np.asarray(splits.std)

    def show(img):  # back to [0, 1] for display, one grey channel
        return np.clip(img * std + mean, 0, 1)[..., 0]

    top = float(np.abs(back[:n] - x[:n]).max())
    fig, axes = plt.subplots(3, n, figsize=(1.3 * n, 4.3))
    for i in range(n):
        diff = np.abs(back[i] - x[i])[..., 0] / top
        for row, (img, cmap) in enumerate(((show(x[i]), "gray"), (show(back[i]), "gray"),
                                           (np.clip(diff, 0, 1), "magma"))):
            ax = axes[row, i]
            ax.imshow(img, cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[1, i].set_title(f"{per_image[i]:.1e}", fontsize=7)
    axes[0, 0].set_ylabel("input", fontsize=8)
    axes[1, 0].set_ylabel("from features", fontsize=8)
    axes[2, 0].set_ylabel(f"|diff| / {top:.1e}", fontsize=8)
    fig.suptitle(f"i-RevNet: held-out digits reconstructed from the final features "
                 f"{tuple(features.shape[1:])}\nrelative error {rel:.2g} (float32)", fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return rel


if __name__ == "__main__":
    sys.exit(0 if main() <= 1e-5 else 1)
