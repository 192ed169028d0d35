"""Classification accuracy as ILSVRC defines it (top-1 and top-K)."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["top_k_accuracy"]


def top_k_accuracy(y_true, y_pred, k: int = 5) -> float:
    """Fraction of examples whose true class is among the ``k`` highest scores.

    ILSVRC (Russakovsky et al., "ImageNet Large Scale Visual Recognition Challenge", IJCV 2015,
    arXiv:1409.0575): ``topK = (1/S) * sum_j 1[l_j in {i_1^j, ..., i_K^j}]`` where
    ``i_1^j..i_K^j`` are the classes with the K largest confidences ``p^j`` of example ``j`` and
    ``l_j`` its label. Ties at the K-th score count in the example's favour (as
    ``tf.math.in_top_k``): the example is a hit when fewer than ``k`` classes score strictly
    higher than the true class. ``k = 1`` is ordinary (top-1) accuracy; ``k >= N`` gives 1.

    Args:
        y_true: ``(S,)`` integer labels, or ``(S, N)`` one-hot / probability targets (argmax).
        y_pred: ``(S, N)`` scores (probabilities or logits: only their order matters).
        k: how many of the highest scores count, a positive integer.

    Returns:
        float in [0, 1].

    Raises:
        ValueError: bad shapes, labels outside ``[0, N)``, or an invalid ``k``.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"`k` must be a positive integer. Received: k={k!r}")
    scores = np.asarray(y_pred)
    if scores.ndim != 2 or scores.shape[0] == 0:
        raise ValueError("`y_pred` must be a non-empty (examples, classes) array of scores. "
                         f"Received: y_pred with shape {scores.shape}")
    labels = np.asarray(y_true)
    if labels.ndim == 2 and labels.shape == scores.shape:
        labels = labels.argmax(axis=1)
    labels = labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels
    if labels.shape != (scores.shape[0],):
        raise ValueError("`y_true` must hold one label per row of y_pred. "
                         f"Received: y_true with shape {np.shape(y_true)}, y_pred {scores.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise ValueError(f"`y_true` must be integer class labels. Received: y_true={labels!r}")
        labels = labels.astype(np.int64)
    n = scores.shape[1]
    if labels.min() < 0 or labels.max() >= n:
        raise ValueError(f"`y_true` labels must lie in [0, {n}). "
                         f"Received: y_true with range [{labels.min()}, {labels.max()}]")
    true_scores = scores[np.arange(len(labels)), labels]
    higher = (scores > true_scores[:, None]).sum(axis=1)
    return float(np.mean(higher < k))
