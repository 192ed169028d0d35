"""The papers' data augmentation, as stateless TensorFlow ops (one seed per image, reproducible).

Every random op takes an explicit ``seed`` (an ``int`` tensor of shape ``[2]``) and uses TF's
stateless RNG, so the same ``(run seed, epoch, example index)`` gives the same crop and flip on any
machine, in any process, whatever the ``tf.data`` parallelism: a resumed run sees exactly the
images an uninterrupted one would.

* :func:`pad_crop_flip` -- CIFAR (He et al., "Deep Residual Learning for Image Recognition",
  CVPR 2016, sec. 4.2; after Lee et al., "Deeply-Supervised Nets", 2015): "4 pixels are padded
  on each side, and a 32x32 crop is randomly sampled from the padded image or its horizontal
  flip". SVHN and MNIST keep the crop without the flip (digits are not mirror-symmetric).
* :func:`random_resized_crop` -- ImageNet (Szegedy et al., "Going Deeper with Convolutions",
  CVPR 2015, sec. 6: patches of 8%-100% of the image area, aspect ratio in [3/4, 4/3]; the
  "Inception" crop of TF's official ResNet and torchvision's ``RandomResizedCrop``), resized to
  the model's input, then a random horizontal flip. On JPEG bytes it decodes only the crop
  (``tf.image.decode_and_crop_jpeg``).
* :func:`center_crop` -- ImageNet evaluation: resize the shorter side to ``size / 0.875``
  (256 for 224) and take the central ``size x size`` crop.
* :func:`mixup` -- Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018:
  ``x = lam x_i + (1 - lam) x_j``, ``y = lam y_i + (1 - lam) y_j``, ``lam ~ Beta(alpha, alpha)``,
  one ``lam`` per batch, ``j`` the batch reversed (as timm's ``Mixup``).
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["pad_crop_flip", "random_resized_crop", "center_crop", "mixup", "CROP_FRACTION"]

CROP_FRACTION = 0.875  # 224 / 256: the evaluation centre crop of the ImageNet papers


def _split(seed, n):
    return tf.unstack(tf.random.experimental.stateless_split(seed, n))


def pad_crop_flip(image, seed, pad: int = 4, flip: bool = True):
    """Zero-pad ``pad`` pixels on each side, crop back to the input size at a random place and
    (``flip``) mirror half the images. ``image``: ``[H, W, C]`` float."""
    s_crop, s_flip = _split(seed, 2)
    shape = tf.shape(image)
    out = image
    if pad:
        out = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
        out = tf.image.stateless_random_crop(out, shape, seed=s_crop)
    if flip:
        out = tf.image.stateless_random_flip_left_right(out, seed=s_flip)
    return out


def _crop_window(image_shape, seed, scale, ratio):
    """``(offset_y, offset_x, height, width)`` of an Inception crop of an image of that shape."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_shape, bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
        seed=seed, min_object_covered=0.1, aspect_ratio_range=ratio, area_range=scale,
        max_attempts=10, use_image_if_no_bounding_boxes=True)
    return begin[0], begin[1], size[0], size[1]


def random_resized_crop(image, size: int, seed, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                        flip: bool = True, channels: int = 3):
    """An Inception crop resized to ``size x size`` (bilinear), then a random flip.

    ``image``: a decoded ``[H, W, C]`` image (any dtype) or a scalar string of JPEG bytes (then only
    the crop is decoded). Returns float32 in [0, 1].
    """
    s_box, s_flip = _split(seed, 2)
    if image.dtype == tf.string:
        shape = tf.image.extract_jpeg_shape(image)
        y, x, h, w = _crop_window(shape, s_box, scale, ratio)
        crop = tf.image.decode_and_crop_jpeg(image, tf.stack([y, x, h, w]), channels=channels)
    else:
        y, x, h, w = _crop_window(tf.shape(image), s_box, scale, ratio)
        crop = tf.slice(image, tf.stack([y, x, 0]), tf.stack([h, w, -1]))
    crop = tf.image.convert_image_dtype(crop, tf.float32)
    out = tf.image.resize(crop, [size, size], method="bilinear")
    out = tf.clip_by_value(out, 0.0, 1.0)
    if flip:
        out = tf.image.stateless_random_flip_left_right(out, seed=s_flip)
    return out


def center_crop(image, size: int, crop_fraction: float = CROP_FRACTION, channels: int = 3):
    """Resize the shorter side to ``size / crop_fraction``, take the central ``size x size``.

    ``image``: decoded ``[H, W, C]`` (any dtype) or JPEG bytes. Returns float32 in [0, 1].
    """
    if image.dtype == tf.string:
        image = tf.io.decode_image(image, channels=channels, expand_animations=False)
    x = tf.image.convert_image_dtype(image, tf.float32)
    shape = tf.cast(tf.shape(x)[:2], tf.float32)
    short = tf.reduce_min(shape)
    target = tf.math.ceil(size / crop_fraction)
    new = tf.cast(tf.round(shape * target / short), tf.int32)
    new = tf.maximum(new, size)
    x = tf.image.resize(x, new, method="bilinear")
    top = (new[0] - size) // 2
    left = (new[1] - size) // 2
    x = tf.slice(x, tf.stack([top, left, 0]), tf.stack([size, size, -1]))
    return tf.clip_by_value(x, 0.0, 1.0)


def mixup(images, labels, seed, alpha: float, num_classes: int):
    """Mix a batch with its reverse: ``(images [B, H, W, C], int labels [B])`` ->
    ``(mixed images, soft labels [B, num_classes])``; ``lam ~ Beta(alpha, alpha)``."""
    s_a, s_b = _split(seed, 2)
    a = tf.random.stateless_gamma([], seed=s_a, alpha=alpha)
    b = tf.random.stateless_gamma([], seed=s_b, alpha=alpha)
    lam = a / (a + b)
    one_hot = tf.one_hot(tf.cast(labels, tf.int32), num_classes)
    lam_x = tf.cast(lam, images.dtype)
    mixed = lam_x * images + (1.0 - lam_x) * tf.reverse(images, axis=[0])
    soft = lam * one_hot + (1.0 - lam) * tf.reverse(one_hot, axis=[0])
    return mixed, soft
