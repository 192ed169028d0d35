"""export.saved_model: TF Serving layout and signature, stock ops only, atomic versions, no
keras_cnns needed to serve it."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_cnns.export._savedmodel as sm
import keras_cnns.ops.grouped_conv as grouped_conv_ops
from keras_cnns.export import (
    CustomOpInGraphError,
    export_saved_model,
    find_custom_ops,
    list_versions,
    saved_model_op_names,
)
from keras_cnns.export._child import child_env
from keras_cnns.export._savedmodel import _rename_noreplace
from keras_cnns.layers import GroupedDepthwiseConv2D

FAKE_OP = "KerasCnns>GroupedDepthwiseConv2d"


def tiny_model(name="tiny"):
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = GroupedDepthwiseConv2D(kernel_size=3, name="dw")(x)  # depthwise
    x = GroupedDepthwiseConv2D(filters=8, kernel_size=1, groups=2, shuffle_groups=2,
                               name="gconv")(x)  # grouped 1x1 with fused shuffle
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=name)


def _listing(path):
    return sorted(os.listdir(path))


def _inject_op(export_dir, op=FAKE_OP):
    """Add a node of type ``op`` to a library function of the SavedModel (as a custom op would)."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = os.path.join(export_dir, "saved_model.pb")
    proto = saved_model_pb2.SavedModel()
    with open(pb, "rb") as f:
        proto.ParseFromString(f.read())
    node = proto.meta_graphs[0].graph_def.library.function[0].node_def.add()
    node.name, node.op = "injected", op
    with open(pb, "wb") as f:
        f.write(proto.SerializeToString())


def test_layout_and_loads_in_a_process_without_keras_cnns(tmp_path):
    model = tiny_model()
    x = np.random.default_rng(0).random((4, 12, 12, 3)).astype("float32")
    expected = model.predict(x, verbose=0)
    path = export_saved_model(model, tmp_path / "repo")
    assert path == os.path.join(str(tmp_path / "repo"), "tiny", "1")
    assert {"saved_model.pb", "variables", "assets"} <= set(os.listdir(path))
    assert _listing(tmp_path / "repo" / "tiny") == ["1"]  # no temporary left behind
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "keras_cnns" or name.startswith("keras_cnns."):
                    raise ImportError("keras_cnns must not be needed to serve the export")
        sys.meta_path.insert(0, Block())
        import numpy as np
        import tensorflow as tf
        loaded = tf.saved_model.load({path!r})
        x = np.load({str(tmp_path / 'x.npy')!r})
        y_serve = loaded.serve(tf.constant(x)).numpy()
        sig = loaded.signatures["serving_default"]
        assert list(sig.structured_input_signature[1]) == ["images"]
        out = sig(images=tf.constant(x))
        assert sorted(out) == ["probabilities", "top_k_classes", "top_k_scores"], sorted(out)
        y_sig = out["probabilities"].numpy()
        np.save({str(tmp_path / 'y_serve.npy')!r}, y_serve)
        np.save({str(tmp_path / 'y_sig.npy')!r}, y_sig)
        assert not any(m == "keras_cnns" or m.startswith("keras_cnns.") for m in sys.modules)
        print("OK")
    """)
    env = child_env()  # no PYTHONPATH: the child cannot find this checkout
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "y_serve.npy"), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "y_sig.npy"), expected, rtol=1e-5, atol=1e-6)


def test_graph_has_only_stock_ops_and_is_traced_in_stock_mode(tmp_path, monkeypatch):
    model = tiny_model()
    seen = []
    real_write = sm._write_servable

    def spy(*args, **kwargs):
        seen.append(grouped_conv_ops._stock_only())
        return real_write(*args, **kwargs)

    monkeypatch.setattr(sm, "_write_servable", spy)
    path = export_saved_model(model, tmp_path)
    assert seen == [True] and grouped_conv_ops._stock_only() is False
    ops = saved_model_op_names(path)
    assert {"Conv2D", "DepthwiseConv2dNative", "Transpose"} <= set(ops)  # the two grouped layers
    assert find_custom_ops(ops) == [] and not any(op.startswith("KerasCnns>") for op in ops)


def test_checker_catches_a_custom_op(tmp_path):
    assert find_custom_ops(["Conv2D", FAKE_OP, "Addons>Foo"]) == ["Addons>Foo", FAKE_OP]
    assert find_custom_ops(["Conv2D", FAKE_OP, "Addons>Foo"], namespace="KerasCnns>") == [FAKE_OP]
    assert find_custom_ops(["Conv2D", "Relu"]) == []
    path = export_saved_model(tiny_model(), tmp_path)
    _inject_op(path)
    assert FAKE_OP in saved_model_op_names(path)
    assert find_custom_ops(saved_model_op_names(path)) == [FAKE_OP]


def test_export_with_a_custom_op_is_refused_and_nothing_published(tmp_path, monkeypatch):
    model = tiny_model()
    export_saved_model(model, tmp_path)
    real_write = sm._write_servable

    def export_with_custom_op(model, path, spec):
        real_write(model, path, spec)
        _inject_op(path)

    monkeypatch.setattr(sm, "_write_servable", export_with_custom_op)
    with pytest.raises(CustomOpInGraphError, match="KerasCnns>"):
        export_saved_model(model, tmp_path)
    assert _listing(tmp_path / "tiny") == ["1"]


def test_versions_increment_and_are_never_overwritten(tmp_path):
    model = tiny_model()
    first = export_saved_model(model, tmp_path, model_name="m")
    second = export_saved_model(model, tmp_path, model_name="m")
    assert (os.path.basename(first), os.path.basename(second)) == ("1", "2")
    pb = os.path.join(first, "saved_model.pb")
    before = (Path(pb).read_bytes(), os.stat(pb).st_mtime_ns, _listing(first))
    with pytest.raises(FileExistsError, match="version 1"):
        export_saved_model(model, tmp_path, model_name="m", version=1)
    assert (Path(pb).read_bytes(), os.stat(pb).st_mtime_ns, _listing(first)) == before
    assert _listing(tmp_path / "m") == ["1", "2"]
    assert os.path.basename(export_saved_model(model, tmp_path, model_name="m", version=7)) == "7"
    os.makedirs(tmp_path / "m" / "notes")  # non-integer directories are not versions
    assert os.path.basename(export_saved_model(model, tmp_path, model_name="m")) == "8"
    assert list_versions(tmp_path / "m") == [1, 2, 7, 8]
    assert list_versions(tmp_path / "absent") == []


def test_failure_mid_export_leaves_nothing(tmp_path, monkeypatch):
    model = tiny_model()

    def broken_export(model, path, spec):
        os.makedirs(os.path.join(path, "variables"))
        with open(os.path.join(path, "saved_model.pb"), "wb") as f:
            f.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sm, "_write_servable", broken_export)
    with pytest.raises(RuntimeError, match="disk full"):
        export_saved_model(model, tmp_path / "repo")
    assert not os.path.exists(tmp_path / "repo" / "tiny")  # not even the empty model directory
    monkeypatch.undo()
    export_saved_model(model, tmp_path / "repo")
    monkeypatch.setattr(sm, "_write_servable", broken_export)
    with pytest.raises(RuntimeError, match="disk full"):
        export_saved_model(model, tmp_path / "repo")
    assert _listing(tmp_path / "repo" / "tiny") == ["1"]


def test_concurrent_export_taking_the_version(tmp_path, monkeypatch):
    """Another exporter publishes the same version while ours is being written."""
    model = tiny_model()
    real_export = sm._write_servable

    def racing_export(model, path, spec):
        rival = tmp_path / "tiny" / "1"
        os.makedirs(rival)
        (rival / "saved_model.pb").write_bytes(b"rival")
        return real_export(model, path, spec)

    monkeypatch.setattr(sm, "_write_servable", racing_export)
    path = export_saved_model(model, tmp_path)  # auto version: moves on to the next number
    assert os.path.basename(path) == "2"
    assert (tmp_path / "tiny" / "1" / "saved_model.pb").read_bytes() == b"rival"

    def racing_export_3(model, path, spec):
        os.makedirs(tmp_path / "tiny" / "3")  # even an empty rival directory is kept
        return real_export(model, path, spec)

    monkeypatch.setattr(sm, "_write_servable", racing_export_3)
    with pytest.raises(FileExistsError):
        export_saved_model(model, tmp_path, version=3)
    assert _listing(tmp_path / "tiny") == ["1", "2", "3"]
    assert _listing(tmp_path / "tiny" / "3") == []


def test_rename_noreplace_refuses_an_existing_empty_directory(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("x")
    (tmp_path / "dst").mkdir()  # plain os.rename would replace an empty directory
    with pytest.raises(FileExistsError):
        _rename_noreplace(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert (tmp_path / "src" / "f").exists() and _listing(tmp_path / "dst") == []
    _rename_noreplace(str(tmp_path / "src"), str(tmp_path / "new"))
    assert (tmp_path / "new" / "f").read_text() == "x"


def test_metadata_written_to_assets_extra(tmp_path):
    meta = {"mean": [0.3], "std": [0.32], "class_names": ["0", "1"]}
    path = export_saved_model(tiny_model(), tmp_path, metadata=meta)
    with open(os.path.join(path, "assets.extra", "keras_cnns.json")) as f:
        written = json.load(f)
    assert {k: written[k] for k in meta} == meta
    assert written["serving"]["input"] == "images" and written["serving"]["top_k"] == 5


@pytest.mark.parametrize("kwargs,arg", [
    ({"version": 0}, "version"), ({"version": -2}, "version"), ({"version": True}, "version"),
    ({"version": "3"}, "version"), ({"model_name": "a/b"}, "model_name"),
    ({"model_name": ".."}, "model_name"), ({"model_name": ""}, "model_name"),
    ({"base_dir": ""}, "base_dir"), ({"metadata": {"x": object()}}, "metadata"),
    ({"model": "not a model"}, "model"),
    ({"input_dtype": "int8"}, "input_dtype"), ({"input_dtype": "uint8"}, "normalization"),
    ({"normalization": ([0.5], [0.2])}, "normalization"),
    ({"input_dtype": "uint8", "normalization": ([0.5] * 2, [0.2] * 2)}, "normalization"),
    ({"input_dtype": "uint8", "normalization": (0.5, 0.0)}, "normalization"),
    ({"top_k": 0}, "top_k"), ({"top_k": 2.5}, "top_k"), ({"scores": "softmax"}, "scores"),
])
def test_bad_arguments(tmp_path, kwargs, arg):
    args = {"model": tiny_model(), "base_dir": tmp_path}
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"`{arg}`.*Received: {arg}="):
        sm.saved_model(**args)
    assert os.listdir(tmp_path) == []


def test_features_model_needs_auto_scores_and_multi_input_models_are_refused(tmp_path):
    inputs = keras.Input((8, 8, 3))
    feats = keras.layers.Conv2D(4, 3)(inputs)
    with pytest.raises(ValueError, match="`scores`"):
        sm.saved_model(keras.Model(inputs, feats), tmp_path, scores="logits")
    other = keras.Input((8, 8, 3))
    two = keras.Model([inputs, other], keras.layers.Add()([inputs, other]))
    with pytest.raises(ValueError, match="`model`.*one input"):
        sm.saved_model(two, tmp_path)
    assert os.listdir(tmp_path) == []


def test_a_model_from_outside_with_several_outputs_serves_its_first(tmp_path):
    # Without the library's output specs, the first output is the served one; others are left
    # out (keras_cnns.models.heads.output_specs).
    import tensorflow as tf

    inputs = keras.Input((8, 8, 3))
    feats = keras.layers.Conv2D(4, 3)(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(feats)
    probs = keras.layers.Dense(3, activation="softmax", name="predictions")(pooled)
    model = keras.Model(inputs, [probs, feats])
    path = sm.saved_model(model, tmp_path, print_commands=False)
    loaded = tf.saved_model.load(path)
    assert sorted(loaded.signatures) == ["serve", "serving_default"]
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    out = loaded.signatures["serving_default"](images=tf.constant(x))
    np.testing.assert_allclose(out["probabilities"].numpy(), np.asarray(model(x)[0]), atol=1e-6)
