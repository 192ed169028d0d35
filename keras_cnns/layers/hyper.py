"""Static hypernetwork layers: convolution kernels generated from learned layer embeddings.

Ha, Dai & Le, "HyperNetworks", ICLR 2017 (arXiv:1609.09106), Sec. 3.1 (static hypernetworks
for deep convolutional networks) and Appendix A.2 (the CIFAR-10 "Hyper Residual Networks"). A
main network's kernel ``K^j`` (``f x f``, ``N_in`` inputs, ``N_out`` outputs) is not a weight of
its own: a two-layer *linear* generator shared by all layers maps the layer's learned embedding
``z^j`` (``N_z`` values) to it:

* first layer, one projection per input channel ``i = 1..N_in`` (``W_i`` is ``d x N_z``, ``B_i``
  has ``d`` entries): ``a_i^j = W_i z^j + B_i``;
* second layer, one projection shared by every input channel (``W_out`` is
  ``f x N_out f x d``, ``B_out`` is ``f x N_out f``): ``K_i^j = <W_out, a_i^j>^1 + B_out`` (the
  contraction over the ``d`` axis), the kernel slice that input channel ``i`` feeds to every
  output;
* ``K^j = (K_1^j K_2^j ... K_{N_in}^j)``.

The generator holds ``N_in d (N_z + 1) + f N_out f (d + 1)`` parameters (``d = N_z = 64``,
``N_in = N_out = 16``, ``f = 3``: 66,560 + 9,360 = 75,920). For layers wider than one tile the
paper tiles: the generator produces ``N_in x N_out`` kernels (16 x 16 in its residual
networks) and a layer with ``C_in = r N_in`` inputs and ``C_out = c N_out`` outputs has
``r x c`` embeddings (32 -> 64 channels: 2 x 4 = 8), their kernels concatenated, tile
``(p, q)`` holding input channels ``p N_in ..`` and output channels ``q N_out ..``. The
released PyTorch re-implementation g1910/HyperNetworks (``hypernetwork_modules.py``,
``primary_net.py``: ``HyperNetwork(f_size=3, z_dim=64, out_size=16, in_size=16)``, one
``Embedding`` per convolution with ``[C_in / 16, C_out / 16]`` tiles, kernels concatenated)
has the same parameter shapes.

Two layers express this in a functional Keras model, with the sharing in the graph itself (so
``get_config`` / ``from_config``, ``.keras`` files and exports keep one generator):

* :class:`HyperKernelGenerator` holds ``W_in, b_in, W_out, b_out``. Called once on any tensor of
  the model (its value is not read; it places the generator in the graph), it returns those
  four weights as tensors, which every :class:`HyperConv2D` of the model takes as inputs.
  :meth:`HyperKernelGenerator.generate` is the paper's map ``z -> K`` on its own weights.
* :class:`HyperConv2D` holds one layer's embeddings (``[C_in / N_in, C_out / N_out, N_z]``) and
  convolves its input with ``hyper_kernel(embeddings, W_in, b_in, W_out, b_out)``, computed at
  every call: the kernel is not a variable, gradients flow to the embeddings and through the
  kernel to the generator.

::

    generator = HyperKernelGenerator(z_dim=64, in_size=16, out_size=16, kernel_size=3)
    params = generator(x)                                  # [W_in, b_in, W_out, b_out]
    y = HyperConv2D(32, strides=1, padding="same")([x, *params])
"""

from __future__ import annotations

import math

import keras
from keras import initializers, ops

from keras_cnns._checks import check_choice, check_pair, check_positive_int, fail

__all__ = ["HyperConv2D", "HyperKernelGenerator", "hyper_kernel"]

#: The generator's weights in the order :class:`HyperKernelGenerator` returns them and
#: :class:`HyperConv2D` takes them (after its input).
GENERATOR_WEIGHTS = ("w_in", "b_in", "w_out", "b_out")


def hyper_kernel(z, w_in, b_in, w_out, b_out):
    """The kernel that the static hypernetwork generates from a layer's tile embeddings.

    Ha et al. 2017, Sec. 3.1: ``a_i = W_i z + B_i`` for every input channel ``i`` of a tile,
    ``K_i = <W_out, a_i> + B_out``, the tiles concatenated along the input and output channels.

    Args:
        z: ``[R, C, N_z]``: the embeddings of the layer's ``R x C`` tiles (``R = C_in / N_in``
            input tiles, ``C = C_out / N_out`` output tiles).
        w_in: ``[N_z, N_in, d]`` (``w_in[:, i, :]`` is ``W_i`` transposed).
        b_in: ``[N_in d]``: ``B_1 .. B_N_in`` one after the other.
        w_out: ``[d, f, f, N_out]`` (``W_out``).
        b_out: ``[f f N_out]``: ``B_out`` (``f x f x N_out``) flattened.

    Returns:
        The kernel ``[f, f, R N_in, C N_out]`` (Keras' layout: height, width, inputs, outputs);
        ``kernel[:, :, p N_in + i, q N_out + o]`` comes from ``z[p, q]``, input ``i``, output
        ``o``.
    """
    rows, cols, z_dim = (int(d) for d in z.shape)
    _, n_in, d = (int(s) for s in w_in.shape)
    _, kh, kw, n_out = (int(s) for s in w_out.shape)
    tiles = rows * cols
    # first layer: every tile's embedding through the N_in projections W_i (+ B_i)
    a = ops.matmul(ops.reshape(z, (tiles, z_dim)), ops.reshape(w_in, (z_dim, n_in * d)))
    a = ops.reshape(a + ops.reshape(b_in, (1, n_in * d)), (tiles * n_in, d))
    # second layer: each a_i through the shared W_out (+ B_out): one f x f x N_out slice per i
    k = ops.matmul(a, ops.reshape(w_out, (d, kh * kw * n_out)))
    k = k + ops.reshape(b_out, (1, kh * kw * n_out))
    # [R, C, N_in, f, f, N_out] -> [f, f, R, N_in, C, N_out] -> [f, f, R N_in, C N_out]
    k = ops.transpose(ops.reshape(k, (rows, cols, n_in, kh, kw, n_out)), (3, 4, 0, 2, 1, 5))
    return ops.reshape(k, (kh, kw, rows * n_in, cols * n_out))


def _initializer(value, default):
    return initializers.get(default if value is None else value)


@keras.saving.register_keras_serializable(package="keras_cnns")
class HyperKernelGenerator(keras.layers.Layer):
    """The static hypernetwork of Ha et al. 2017 (Sec. 3.1): one two-layer linear generator of
    ``f x f x N_in x N_out`` kernels, shared by every :class:`HyperConv2D` of a model.

    Weights (``d = hidden_dim``): ``w_in [N_z, N_in, d]`` and ``b_in [N_in d]`` (the first
    layer's ``W_i`` and ``B_i`` for ``i = 1..N_in``, the biases one after the other), ``w_out
    [d, f, f, N_out]`` and ``b_out [f f N_out]`` (``W_out``, ``B_out`` flattened);
    ``N_in d (N_z + 1) + f f N_out (d + 1)`` parameters.

    Called on any tensor (not read: it anchors the generator in a functional graph), it returns
    its four weights ``[w_in, b_in, w_out, b_out]`` as tensors, the inputs after ``x`` of every
    :class:`HyperConv2D` it serves: one generator node, however many layers it feeds.

    Default initialisation (the paper gives none): ``w_in`` normal with variance ``1 / N_z``
    (``a_i`` of the embeddings' variance), ``w_out`` normal with variance ``2 / (d f^2 N_in)``,
    biases zero: with :class:`HyperConv2D`'s default embeddings (variance ``N_in / C_in``) the
    generated kernels have He et al.'s variance ``2 / (f^2 C_in)`` at every width.

    Args:
        z_dim: ``N_z``, the size of a layer embedding (the paper: 64).
        hidden_dim: ``d``, the size of each ``a_i`` (``None``: ``N_z``, the paper's choice).
        in_size: ``N_in``, input channels of a generated tile (the paper: 16).
        out_size: ``N_out``, output channels of a generated tile (the paper: 16).
        kernel_size: ``f``, an integer or a pair (the paper: 3).
        w_in_initializer, w_out_initializer: initializers (``None``: the defaults above).
        b_in_initializer, b_out_initializer: bias initializers (default zeros).
        **kwargs: standard Layer arguments.

    Raises:
        ValueError: an argument that is not a positive integer (the message names it).
    """

    def __init__(self, z_dim=64, hidden_dim=None, in_size=16, out_size=16, kernel_size=3,
                 w_in_initializer=None, b_in_initializer="zeros", w_out_initializer=None,
                 b_out_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.z_dim = check_positive_int("z_dim", z_dim)
        self.hidden_dim = check_positive_int("hidden_dim", hidden_dim, allow_none=True)
        self.in_size = check_positive_int("in_size", in_size)
        self.out_size = check_positive_int("out_size", out_size)
        self.kernel_size = check_pair("kernel_size", kernel_size)
        d = self.d
        kh, kw = self.kernel_size
        self.w_in_initializer = _initializer(
            w_in_initializer, initializers.RandomNormal(stddev=1.0 / math.sqrt(self.z_dim)))
        self.w_out_initializer = _initializer(
            w_out_initializer,
            initializers.RandomNormal(stddev=math.sqrt(2.0 / (d * kh * kw * self.in_size))))
        self.b_in_initializer = initializers.get(b_in_initializer)
        self.b_out_initializer = initializers.get(b_out_initializer)

    @property
    def d(self) -> int:
        """``d``: ``hidden_dim``, or ``N_z`` when not given."""
        return self.z_dim if self.hidden_dim is None else self.hidden_dim

    def build(self, input_shape=None):
        kh, kw = self.kernel_size
        d = self.d
        self.w_in = self.add_weight(name="w_in", shape=(self.z_dim, self.in_size, d),
                                    initializer=self.w_in_initializer)
        self.b_in = self.add_weight(name="b_in", shape=(self.in_size * d,),
                                    initializer=self.b_in_initializer)
        self.w_out = self.add_weight(name="w_out", shape=(d, kh, kw, self.out_size),
                                     initializer=self.w_out_initializer)
        self.b_out = self.add_weight(name="b_out", shape=(kh * kw * self.out_size,),
                                     initializer=self.b_out_initializer)

    def _shapes(self):
        kh, kw = self.kernel_size
        d = self.d
        return [(self.z_dim, self.in_size, d), (self.in_size * d,), (d, kh, kw, self.out_size),
                (kh * kw * self.out_size,)]

    def call(self, inputs):
        del inputs  # the anchor in the graph; the generator's output does not depend on it
        return [ops.convert_to_tensor(w) for w in (self.w_in, self.b_in, self.w_out, self.b_out)]

    def compute_output_shape(self, input_shape):
        return self._shapes()

    def compute_output_spec(self, inputs):
        return [keras.KerasTensor(shape, dtype=self.compute_dtype) for shape in self._shapes()]

    def generate(self, z):
        """The kernel ``[f, f, R N_in, C N_out]`` generated from embeddings ``z`` ``[R, C,
        N_z]`` (:func:`hyper_kernel` with this generator's weights)."""
        if not self.built:
            self.build()
        return hyper_kernel(z, self.w_in, self.b_in, self.w_out, self.b_out)

    def get_config(self):
        config = super().get_config()
        config.update(
            z_dim=self.z_dim, hidden_dim=self.hidden_dim, in_size=self.in_size,
            out_size=self.out_size, kernel_size=list(self.kernel_size),
            w_in_initializer=initializers.serialize(self.w_in_initializer),
            b_in_initializer=initializers.serialize(self.b_in_initializer),
            w_out_initializer=initializers.serialize(self.w_out_initializer),
            b_out_initializer=initializers.serialize(self.b_out_initializer),
        )
        return config


@keras.saving.register_keras_serializable(package="keras_cnns")
class HyperConv2D(keras.layers.Layer):
    """A 2-D convolution whose kernel a shared :class:`HyperKernelGenerator` generates from this
    layer's embeddings at every call (Ha et al. 2017, Sec. 3.1; tiles: Appendix A.2).

    Called on ``[x, w_in, b_in, w_out, b_out]``: the input ``[N, H, W, C_in]`` (channels last)
    followed by the generator's output. Holds one weight, ``embeddings`` ``[C_in / N_in,
    filters / N_out, N_z]`` (one ``z^j`` per ``N_in x N_out`` tile); the kernel ``[f, f, C_in,
    filters]`` (:func:`hyper_kernel`) is computed, never stored. No bias (the paper's residual
    networks follow every convolution with BatchNorm).

    Args:
        filters: output channels, a multiple of the generator's ``out_size``.
        strides: an integer or a pair.
        padding: ``"same"`` or ``"valid"``.
        embeddings_initializer: initializer of the embeddings (``None``: normal with variance
            ``N_in / C_in``, which with the generator's default initialisation gives kernels of
            He et al.'s variance ``2 / (f^2 C_in)`` for any input width).
        **kwargs: standard Layer arguments.

    Raises:
        ValueError: an invalid argument (the message names it); at build, ``filters`` or the
            input channels not a multiple of the generator's tile.
    """

    def __init__(self, filters, strides=1, padding="same", embeddings_initializer=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        self.strides = check_pair("strides", strides)
        self.padding = check_choice("padding", padding, ["same", "valid"])
        self.embeddings_initializer = (None if embeddings_initializer is None
                                       else initializers.get(embeddings_initializer))

    def _split_shapes(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 1 + len(GENERATOR_WEIGHTS):
            fail("inputs", "must be [x, w_in, b_in, w_out, b_out]: the input, then the output "
                           "of a HyperKernelGenerator", input_shape)
        x_shape, w_in, b_in, w_out, b_out = (tuple(s) for s in input_shape)
        if len(x_shape) != 4 or len(w_in) != 3 or len(b_in) != 1 or len(w_out) != 4 \
                or len(b_out) != 1:
            fail("inputs", "must be [x (4-D), w_in [N_z, N_in, d], b_in [N_in d], w_out "
                           "[d, f, f, N_out], b_out [f f N_out]]", input_shape)
        return x_shape, w_in, w_out

    def build(self, input_shape):
        x_shape, w_in, w_out = self._split_shapes(input_shape)
        z_dim, in_size, _ = (int(d) for d in w_in)
        out_size = int(w_out[3])
        channels = x_shape[-1]
        if channels is None:
            fail("inputs", "must have a known number of channels", x_shape)
        if channels % in_size:
            fail("inputs", f"must have a multiple of the generator's in_size ({in_size}) "
                           f"channels (the tile's inputs); got {channels}", x_shape)
        if self.filters % out_size:
            fail("filters", f"must be a multiple of the generator's out_size ({out_size})",
                 self.filters)
        self.in_channels = int(channels)
        rows = self.in_channels // in_size
        initializer = self.embeddings_initializer
        if initializer is None:  # variance N_in / C_in: kernels of He et al.'s variance
            initializer = initializers.RandomNormal(stddev=1.0 / math.sqrt(rows))
        self.embeddings = self.add_weight(
            name="embeddings", shape=(rows, self.filters // out_size, z_dim),
            initializer=initializer)

    def kernel(self, w_in, b_in, w_out, b_out):
        """The generated kernel ``[f, f, C_in, filters]`` from the generator's weights."""
        return hyper_kernel(self.embeddings, w_in, b_in, w_out, b_out)

    def call(self, inputs):
        x, *params = inputs
        return ops.conv(x, self.kernel(*params), strides=self.strides, padding=self.padding)

    def compute_output_shape(self, input_shape):
        x_shape, _, w_out = self._split_shapes(input_shape)
        kernel = (int(w_out[1]), int(w_out[2]))
        sides = []
        for side, k, s in zip(x_shape[1:3], kernel, self.strides):
            if side is None:
                sides.append(None)
            elif self.padding == "same":
                sides.append(-(-side // s))
            else:
                sides.append((side - k) // s + 1)
        return (x_shape[0], *sides, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, strides=list(self.strides), padding=self.padding,
                      embeddings_initializer=None if self.embeddings_initializer is None
                      else initializers.serialize(self.embeddings_initializer))
        return config
