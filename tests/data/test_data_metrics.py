"""top_k_accuracy: the ILSVRC top-K definition, against hand computations."""

import numpy as np
import pytest
import tensorflow as tf

from keras_cnns.data import top_k_accuracy

SCORES = np.array([
    [0.10, 0.50, 0.20, 0.15, 0.05],  # ranking: 1, 2, 3, 0, 4
    [0.30, 0.05, 0.25, 0.20, 0.20],  # ranking: 0, 2, {3, 4}, 1
    [0.02, 0.08, 0.10, 0.20, 0.60],  # ranking: 4, 3, 2, 1, 0
    [0.40, 0.10, 0.10, 0.30, 0.10],  # ranking: 0, 3, {1, 2, 4}
])
LABELS = np.array([3, 1, 4, 2])
# true-class rank (number of strictly higher scores): 2, 4, 0, 2 (ties with the true class
# count in its favour)
# top-1: only example 2 -> 1/4; top-2: 2 -> 1/4; top-3: 0, 2, 3 -> 3/4; top-4: 0, 2, 3 -> 3/4
# top-5: all -> 1


@pytest.mark.parametrize("k,expected", [(1, 0.25), (2, 0.25), (3, 0.75), (4, 0.75), (5, 1.0),
                                        (10, 1.0)])
def test_hand_computed(k, expected):
    assert top_k_accuracy(LABELS, SCORES, k=k) == pytest.approx(expected)


def test_top1_is_plain_accuracy_and_one_hot_labels():
    rng = np.random.default_rng(0)
    scores = rng.random((200, 7))
    labels = rng.integers(0, 7, 200)
    assert top_k_accuracy(labels, scores, k=1) == pytest.approx(np.mean(scores.argmax(1) == labels))
    one_hot = np.eye(7)[labels]
    assert top_k_accuracy(one_hot, scores, k=3) == top_k_accuracy(labels, scores, k=3)


def test_matches_tf_in_top_k_including_ties():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, (300, 6)).astype(np.float32)  # many ties
    labels = rng.integers(0, 6, 300)
    for k in (1, 2, 3, 5):
        expected = tf.reduce_mean(tf.cast(tf.math.in_top_k(labels, scores, k), tf.float32))
        assert top_k_accuracy(labels, scores, k=k) == pytest.approx(float(expected))


@pytest.mark.parametrize("kwargs,match", [
    ({"k": 0}, "`k`"), ({"k": 2.0}, "`k`"), ({"k": True}, "`k`"),
    ({"y_pred": np.zeros(4)}, "`y_pred`"), ({"y_true": np.array([0, 1])}, "`y_true`"),
    ({"y_true": np.array([0, 1, 2, 5])}, "`y_true`"),
])
def test_bad_arguments(kwargs, match):
    args = {"y_true": LABELS, "y_pred": SCORES, "k": 5}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        top_k_accuracy(**args)
