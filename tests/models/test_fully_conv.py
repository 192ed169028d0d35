"""fc_to_conv and multiscale_predict (keras_cnns/models/fully_conv.py).

fc_to_conv: at the training size the converted model equals the classifier (AlexNet, ZFNet,
VGG-16, OverFeat); on a larger image every cell of its score map equals the classifier at that
cell's offset: its own head on the window of the trunk's map that the crop at that offset
gives (VGG-16 on 384x384: the 6x6 map of the CS231n notes' example, all 36 cells; OverFeat fast at its
stride of 32), and for a trunk without padding the classifier on the crop itself. Models it cannot convert are
refused with the layer named. multiscale_predict: against a NumPy computation of OverFeat's
combination (Sermanet et al. 2014, Sec. 3.3: spatial max per class, at each scale and flip,
averaged), with the resizing done by ``tf.image.resize`` and the model applied directly.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_cnns
from keras_cnns.models._builder import declared_levels
from keras_cnns.models.heads import output_specs


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


# ------------------------------------------------------------------------------------------------
# fc_to_conv at the training size


@pytest.fixture(scope="module")
def overfeat_pair():
    # logits: the comparisons below see the scores before a softmax would flatten them
    model = keras_cnns.create_model("overfeat_fast", classes=5, classifier_activation=None)
    return model, keras_cnns.fc_to_conv(model)


@pytest.mark.parametrize("name, side", [("alexnet", 224), ("zfnet", 224), ("overfeat_fast", 231)])
def test_equal_outputs_at_the_training_size(name, side, request):
    if name == "overfeat_fast":
        model, converted = request.getfixturevalue("overfeat_pair")
    else:
        model = keras_cnns.create_model(name, classes=5)
        converted = keras_cnns.fc_to_conv(model)
    assert converted.input_shape == (None, None, None, 3)
    assert converted.output_shape == (None, None, None, 5)
    assert [s.kind for s in output_specs(converted)] == ["score_map"]
    assert "flatten" not in [layer.name for layer in converted.layers]
    x = _x((2, side, side, 3))
    want = np.asarray(model(x, training=False))
    got = np.asarray(converted(x, training=False))
    assert got.shape == (2, 1, 1, 5)
    np.testing.assert_allclose(got[:, 0, 0], want, rtol=0, atol=1e-5 * max(1, np.abs(want).max()))
    # the declared levels carry over (same layer names, copied layers)
    assert [lv["layer"] for lv in declared_levels(converted)] == \
        [lv["layer"] for lv in declared_levels(model)]


@pytest.fixture(scope="module")
def vgg16_pair():
    model = keras_cnns.create_model("vgg16", classes=10, classifier_activation=None)
    return model, keras_cnns.fc_to_conv(model)


def test_vgg16_equal_at_224(vgg16_pair):
    model, converted = vgg16_pair
    x = _x((1, 224, 224, 3), seed=1)
    want = np.asarray(model(x, training=False))
    got = np.asarray(converted(x, training=False))
    np.testing.assert_allclose(got[:, 0, 0], want, rtol=0, atol=1e-5 * max(1, np.abs(want).max()))
    # fc1 is a 7x7 convolution over the 7x7x512 pool5 map, fc2 and predictions 1x1
    assert converted.get_layer("fc1").kernel.shape == (7, 7, 512, 4096)
    assert converted.get_layer("fc2").kernel.shape == (1, 1, 4096, 4096)
    assert converted.get_layer("predictions").kernel.shape == (1, 1, 4096, 10)


def test_vgg_bn_trunk_copies_every_weight():
    # BatchNormalization's moving statistics are weights too: randomised, they must carry over
    model = keras_cnns.create_model("vgg11_bn", input_shape=(64, 64, 3), classes=4)
    rng = np.random.default_rng(9)
    model.set_weights([w + rng.uniform(0.1, 0.5, size=w.shape).astype("float32")
                       for w in model.get_weights()])
    converted = keras_cnns.fc_to_conv(model)
    x = _x((2, 64, 64, 3), seed=10)
    want = np.asarray(model(x, training=False))
    np.testing.assert_allclose(np.asarray(converted(x, training=False))[:, 0, 0], want, rtol=0,
                               atol=1e-5)
    assert converted.get_layer("fc1").kernel.shape == (2, 2, 512, 4096)


def _crops(image, cells, stride, side):
    """Every window of ``side`` at the offsets ``(i * stride, j * stride)``, in row-major order."""
    return np.stack([image[i * stride:i * stride + side, j * stride:j * stride + side]
                     for i in range(cells) for j in range(cells)])


def _head_on_windows(model, trunk, image, window, cells):
    """The classifier's own head (its layers from ``flatten`` on, run eagerly) on every
    ``window`` x ``window`` window of the trunk's map of ``image``, in row-major order. ``trunk``
    is a headless build of the same family at the image's size with the model's weights copied
    in by layer name, so nothing of the converted model is used."""
    for layer in trunk.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    fmap = np.asarray(trunk(image[None], training=False))[0]
    y = _crops(fmap, cells, 1, window)
    names = [layer.name for layer in model.layers]
    for layer in model.layers[names.index("flatten"):]:
        y = layer(y)
    return np.asarray(y)


def test_vgg16_384_every_cell_is_the_classifier_at_its_offset(vgg16_pair):
    # The CS231n notes (https://cs231n.github.io/convolutional-networks/#convert): VGG-16
    # trained at 224 slides over 384x384 in one pass and gives a 6x6 map ((384 - 224) / 32 + 1
    # = 6; stride 32 = the five 2x2 pools): cell (i, j) is the classifier on the 7x7 window at
    # (i, j) of the 12x12 pool5 map, the window of the crop at (32 i, 32 j). (The notes say "the same as the 36 crops": exactly so only for a trunk
    # without padding - see test_any_functional_flatten_dense_classifier_and_its_cells; VGG's
    # "same" 3x3 convolutions pad each crop's border with zeros where the whole image has
    # pixels, so the crops differ at their borders: up to 27.6% of the score scale, measured.)
    model, converted = vgg16_pair
    image = _x((384, 384, 3), seed=2)
    score_map = np.asarray(converted(image[None], training=False))[0]
    assert score_map.shape == (6, 6, 10)
    trunk = keras_cnns.create_model("vgg16", include_top=False, input_shape=(384, 384, 3))
    want = _head_on_windows(model, trunk, image, 7, 6)
    scale = max(1.0, np.abs(want).max())
    np.testing.assert_allclose(score_map.reshape(36, 10), want, rtol=0, atol=1e-5 * scale)


def test_overfeat_fast_cells_at_its_stride_of_32(overfeat_pair):
    model, converted = overfeat_pair
    image = _x((295, 295, 3), seed=3)
    score_map = np.asarray(converted(image[None], training=False))[0]
    assert score_map.shape == (3, 3, 5)       # (295 - 231) / 32 + 1
    # pool5 is 8x8 at 295 ((295 - 71) / 32 + 1); the classifier's 6x6 windows at (i, j) are the
    # windows of the crops at (32 i, 32 j)
    trunk = keras_cnns.OverFeat("fast", include_top=False, input_shape=(295, 295, 3))
    want = _head_on_windows(model, trunk, image, 6, 3)
    scale = max(1.0, np.abs(want).max())
    np.testing.assert_allclose(score_map.reshape(9, 5), want, rtol=0, atol=1e-5 * scale)


# ------------------------------------------------------------------------------------------------
# fc_to_conv on other models, and refusals


def _flatten_head(between=None, trunk_extra=None):
    """A small functional classifier: conv -> pool -> [trunk_extra] -> Flatten -> [between] ->
    Dense -> Dropout -> Dense(softmax)."""
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    if trunk_extra is not None:
        x = trunk_extra(x)
    x = keras.layers.Flatten(name="flatten")(x)
    if between is not None:
        x = between(x)
    x = keras.layers.Dense(8, name="fc")(x)
    x = keras.layers.LeakyReLU(name="fc_act")(x)
    x = keras.layers.Dropout(0.5, name="fc_drop")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="small")


def test_any_functional_flatten_dense_classifier_and_its_cells():
    model = _flatten_head()
    converted = keras_cnns.fc_to_conv(model, name="small_dense")
    assert converted.name == "small_dense"
    assert converted.get_layer("fc").kernel.shape == (5, 5, 4, 8)
    image = _x((16, 16, 3), seed=4)  # the 5x5 map has stride 2: (16 - 12) / 2 + 1 = 3 cells
    score_map = np.asarray(converted(image[None]))[0]
    np.testing.assert_allclose(score_map.reshape(9, 3), np.asarray(model(_crops(image, 3, 2, 12))),
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose(score_map.sum(-1), 1.0, rtol=1e-6)  # softmax per cell


def test_sequential_model_and_serialization(tmp_path):
    model = keras.Sequential([keras.Input((10, 10, 2)), keras.layers.Conv2D(3, 3),
                              keras.layers.Flatten(), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(2)])
    converted = keras_cnns.fc_to_conv(model, input_shape=(12, 10, 2))
    assert converted.output_shape == (None, 3, 1, 2)
    x = _x((1, 10, 10, 2), seed=5)
    np.testing.assert_allclose(np.asarray(keras_cnns.fc_to_conv(model)(x))[:, 0, 0],
                               np.asarray(model(x)), rtol=0, atol=1e-6)
    path = tmp_path / "converted.keras"
    converted.save(path)
    again = keras.models.load_model(path)
    y = _x((2, 12, 10, 2), seed=6)
    np.testing.assert_allclose(np.asarray(again(y)), np.asarray(converted(y)), rtol=0, atol=1e-6)


@pytest.mark.parametrize("make, layer", [
    (lambda: _flatten_head(between=keras.layers.LayerNormalization(name="fc_norm")), "fc_norm"),
    (lambda: keras_cnns.create_model("resnet20", classes=3), "avg_pool"),
    (lambda: keras_cnns.create_model("alexnet", input_shape=(128, 128, 3), classes=3), "avgpool"),
])
def test_a_model_it_cannot_convert_names_the_layer(make, layer):
    with pytest.raises(ValueError, match=f"layer '{layer}'"):
        keras_cnns.fc_to_conv(make())


def test_refusals_without_a_layer_to_name():
    model = _flatten_head()
    with pytest.raises(ValueError, match="no Flatten layer"):  # converted already
        keras_cnns.fc_to_conv(keras_cnns.fc_to_conv(model, input_shape=(12, 12, 3)))
    with pytest.raises(ValueError, match=r"`model` must have a static input size"):
        keras_cnns.fc_to_conv(keras_cnns.fc_to_conv(model))
    with pytest.raises(ValueError, match=r"`input_shape`.*Received: input_shape="):
        keras_cnns.fc_to_conv(model, input_shape=(20, 20, 1))
    with pytest.raises(ValueError, match=r"`model`.*Received: model="):
        keras_cnns.fc_to_conv("vgg16")


# ------------------------------------------------------------------------------------------------
# multiscale_predict


def _toy_fully_conv(classes=4):
    """A small fully convolutional model: a 7x7 window at stride 2, softmax per cell."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(5, 3, strides=2, activation="relu")(inputs)
    outputs = keras.layers.Conv2D(classes, 3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def _reference(model, images, sizes, flip, pooling):
    """The combination in NumPy: tf.image.resize to each size, the model applied directly, the
    spatial max (or mean) per class of each map, the mean over scales and flips."""
    vectors = []
    for size in sizes:
        resized = images if images.shape[1:3] == size else \
            tf.image.resize(images, size, method="bilinear").numpy()
        for batch in ([resized, resized[:, :, ::-1]] if flip else [resized]):
            maps = np.asarray(model(np.ascontiguousarray(batch)))
            vectors.append(maps.max(axis=(1, 2)) if pooling == "max" else maps.mean(axis=(1, 2)))
    return np.mean(vectors, axis=0)


@pytest.mark.parametrize("flip, pooling", [(False, "max"), (True, "max"), (True, "avg")])
def test_multiscale_equals_the_numpy_combination(flip, pooling):
    model = _toy_fully_conv()
    images = _x((3, 20, 24, 3), seed=7)
    scales = [20, (20, 24), (31, 17), 40]
    sizes = [(20, 20), (20, 24), (31, 17), (40, 40)]
    got = keras_cnns.multiscale_predict(model, images, scales, flip=flip, pooling=pooling,
                                        batch_size=2)
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got, _reference(model, images, sizes, flip, pooling),
                               rtol=1e-5, atol=1e-6)


def test_multiscale_overfeat_at_its_native_size_is_the_classifier(overfeat_pair):
    classifier, dense = overfeat_pair
    images = _x((2, 231, 231, 3), seed=8)
    np.testing.assert_allclose(keras_cnns.multiscale_predict(dense, images, [231]),
                               np.asarray(classifier(images)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kwargs, arg, message", [
    (dict(scales=[]), "scales", "non-empty"),
    (dict(scales=[6]), "scales", r"minimum input \(7 pixels"),
    (dict(scales=[12, 0]), "scales", "positive integer"),
    (dict(scales="12"), "scales", "sequence"),
    (dict(images=np.zeros((12, 12, 3), "float32")), "images", "4-D"),
    (dict(images=np.zeros((1, 12, 12, 1), "float32")), "images", "3 channels"),
    (dict(pooling="median"), "pooling", "one of"),
    (dict(flip="yes"), "flip", "True or False"),
    (dict(batch_size=0), "batch_size", "positive"),
])
def test_multiscale_bad_arguments(kwargs, arg, message):
    args = dict(images=np.zeros((1, 12, 12, 3), "float32"), scales=[12])
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"`{arg}`.*{message}.*Received: {arg}="):
        keras_cnns.multiscale_predict(_toy_fully_conv(), **args)


def test_multiscale_refuses_a_classifier_and_fixed_sizes():
    classifier = _flatten_head()
    with pytest.raises(ValueError, match=r"`model`.*fc_to_conv"):
        keras_cnns.multiscale_predict(classifier, np.zeros((1, 12, 12, 3), "float32"), [12])
    fixed = keras_cnns.fc_to_conv(classifier, input_shape=(14, 14, 3))
    got = keras_cnns.multiscale_predict(fixed, _x((1, 14, 14, 3)), [14])
    assert got.shape == (1, 3)
    with pytest.raises(ValueError, match=r"`scales`.*fixed input size"):
        keras_cnns.multiscale_predict(fixed, _x((1, 14, 14, 3)), [14, 16])
