"""Classic models' inference as numba kernels over flat arrays, and the arrays themselves.

Each kernel writes class probabilities for a batch of float32 rows, computed the way the
library computes them, so that argmax agrees exactly except at floating-point ties:
- linear: X @ W.T + b, then softmax (multinomial) or the logistic (binary), in float64;
- forest: each tree walked from its root (`x[f] <= threshold` goes left, float32 feature
  against float64 threshold, as scikit-learn compares), leaf class fractions averaged;
- boosted trees (LightGBM): LightGBM's numerical decision (NaN -> 0 unless NaN is the
  missing type; a missing value, NaN or |x| <= 1e-35 by the node's missing type, goes the
  default way; else `x <= threshold`), leaf values summed per class, then softmax;
- kNN: squared Euclidean distance to every stored row in float64, the k nearest by a
  stable sort (ties to the earlier row), votes over k. scikit-learn's brute force may
  order exactly equal distances otherwise: that is the documented tie.

Imported only by backends/numba_backend.py (it imports numba).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from optbench.errors import Unavailable

ZERO = 1e-35  # LightGBM's kZeroThreshold
MISSING = {"None": 0, "Zero": 1, "NaN": 2}


@njit(cache=True)
def _softmax_rows(out):
    for i in range(out.shape[0]):
        top = out[i, 0]
        for c in range(1, out.shape[1]):
            top = max(top, out[i, c])
        total = 0.0
        for c in range(out.shape[1]):
            out[i, c] = np.exp(out[i, c] - top)
            total += out[i, c]
        for c in range(out.shape[1]):
            out[i, c] /= total


@njit(cache=True)
def _logistic_pairs(raw, out):
    for i in range(raw.shape[0]):
        p = 1.0 / (1.0 + np.exp(-raw[i]))
        out[i, 0] = 1.0 - p
        out[i, 1] = p


@njit(cache=True)
def linear_proba(x, w, b, out):
    n, d = x.shape
    k = w.shape[0]
    raw = np.empty((n, k))
    for i in range(n):
        for c in range(k):
            s = b[c]
            for j in range(d):
                s += np.float64(x[i, j]) * w[c, j]
            raw[i, c] = s
    if k == 1:
        _logistic_pairs(raw[:, 0], out)
    else:
        out[:, :] = raw
        _softmax_rows(out)


@njit(cache=True)
def forest_proba(x, roots, left, right, feature, threshold, value, out):
    n, k = out.shape
    trees = roots.shape[0]
    for i in range(n):
        for c in range(k):
            out[i, c] = 0.0
        for t in range(trees):
            node = roots[t]
            while left[node] != -1:
                if x[i, feature[node]] <= threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
            for c in range(k):
                out[i, c] += value[node, c]
        for c in range(k):
            out[i, c] /= trees


@njit(cache=True)
def boosted_proba(x, roots, tree_class, left, right, feature, threshold, default_left,
                  missing, leaf_value, out):
    n, k = out.shape
    raw = np.zeros((n, k if k > 2 else 1))
    for i in range(n):
        for t in range(roots.shape[0]):
            node = roots[t]
            while left[node] != -1:
                v = np.float64(x[i, feature[node]])
                kind = missing[node]
                if np.isnan(v) and kind != 2:
                    v = 0.0
                if (kind == 1 and v >= -ZERO and v <= ZERO) or (kind == 2 and np.isnan(v)):
                    go_left = default_left[node]
                else:
                    go_left = v <= threshold[node]
                node = left[node] if go_left else right[node]
            raw[i, tree_class[t]] += leaf_value[node]
    if k > 2:
        out[:, :] = raw
        _softmax_rows(out)
    else:
        _logistic_pairs(raw[:, 0], out)


@njit(cache=True)
def knn_proba(x, stored, labels, neighbours, out):
    n, k = out.shape
    m, d = stored.shape
    dist = np.empty(m)
    for i in range(n):
        for j in range(m):
            s = 0.0
            for f in range(d):
                diff = np.float64(x[i, f]) - np.float64(stored[j, f])
                s += diff * diff
            dist[j] = s
        nearest = np.argsort(dist, kind="mergesort")[:neighbours]
        for c in range(k):
            out[i, c] = 0.0
        for j in nearest:
            out[i, labels[j]] += 1.0
        for c in range(k):
            out[i, c] /= neighbours


# -- the fitted estimators as arrays ---------------------------------------------------------

@dataclass
class Compiled:
    """A kernel and the arrays it reads, after the batch and before `out`."""

    kind: str
    kernel: Any
    arrays: tuple[np.ndarray, ...]
    classes: int

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays if isinstance(a, np.ndarray)))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = np.empty((len(x), self.classes))
        self.kernel(x, *self.arrays, out)
        return out


def compile_model(model: Any) -> Compiled:
    """The numba form of a fitted scikit-learn or LightGBM classifier; Unavailable for
    one no kernel here covers (the run is then skipped with the reason)."""
    name = type(model).__name__
    if name == "LogisticRegression":
        return Compiled("linear", linear_proba,
                        (np.ascontiguousarray(model.coef_, dtype=np.float64),
                         np.ascontiguousarray(model.intercept_, dtype=np.float64)),
                        len(model.classes_))
    if name == "RandomForestClassifier":
        return forest_arrays(model)
    if name == "LGBMClassifier":
        return boosted_arrays(model)
    if name == "KNeighborsClassifier":
        if model.weights != "uniform" or model.effective_metric_ != "euclidean":
            raise Unavailable(f"numba's kNN kernel is uniform-weight Euclidean; this one is "
                              f"{model.weights}, {model.effective_metric_}")
        return Compiled("knn", knn_proba,
                        (np.ascontiguousarray(model._fit_X, dtype=np.float32),
                         np.ascontiguousarray(model._y, dtype=np.int64),
                         np.int64(model.n_neighbors)), len(model.classes_))
    raise Unavailable(f"no numba kernel for {name} (linear models, random forests, LightGBM "
                      "and kNN classifiers have one)")


def forest_arrays(model: Any) -> Compiled:
    """Every tree's nodes end to end; child indices made global; leaf fractions."""
    roots, left, right, feature, threshold, value = [], [], [], [], [], []
    offset = 0
    for estimator in model.estimators_:
        tree = estimator.tree_
        if tree.n_outputs != 1:
            raise Unavailable("numba's forest kernel takes single-output classifiers")
        roots.append(offset)
        is_leaf = tree.children_left == -1
        left.append(np.where(is_leaf, -1, tree.children_left + offset))
        right.append(np.where(is_leaf, -1, tree.children_right + offset))
        feature.append(np.where(is_leaf, 0, tree.feature))
        threshold.append(tree.threshold)
        counts = tree.value[:, 0, :]
        value.append(counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-300))
        offset += tree.node_count
    return Compiled("forest", forest_proba, (
        np.asarray(roots, dtype=np.int64), np.concatenate(left).astype(np.int64),
        np.concatenate(right).astype(np.int64), np.concatenate(feature).astype(np.int64),
        np.concatenate(threshold).astype(np.float64),
        np.ascontiguousarray(np.concatenate(value), dtype=np.float64)), model.n_classes_)


def boosted_arrays(model: Any) -> Compiled:
    """LightGBM's trees (from its own JSON dump) as node arrays, with each tree's class."""
    dump = model.booster_.dump_model()
    per_iteration = int(dump.get("num_tree_per_iteration", 1))
    classes = len(model.classes_)
    nodes: dict[str, list[Any]] = {k: [] for k in (
        "left", "right", "feature", "threshold", "default_left", "missing", "leaf")}
    roots, tree_class = [], []

    def add(node: dict[str, Any]) -> int:
        index = len(nodes["left"])
        for key in nodes:
            nodes[key].append(0)
        if "leaf_value" in node or "split_index" not in node:
            nodes["left"][index] = nodes["right"][index] = -1
            nodes["leaf"][index] = float(node.get("leaf_value", 0.0))
            return index
        if node.get("decision_type", "<=") != "<=":
            raise Unavailable("numba's boosted-tree kernel takes numerical splits only "
                              f"(found {node.get('decision_type')!r})")
        nodes["feature"][index] = int(node["split_feature"])
        nodes["threshold"][index] = float(node["threshold"])
        nodes["default_left"][index] = bool(node.get("default_left", True))
        nodes["missing"][index] = MISSING[str(node.get("missing_type", "None"))]
        nodes["left"][index] = add(node["left_child"])
        nodes["right"][index] = add(node["right_child"])
        return index

    for number, tree in enumerate(dump["tree_info"]):
        roots.append(add(tree["tree_structure"]))
        tree_class.append(number % per_iteration)
    return Compiled("boosted", boosted_proba, (
        np.asarray(roots, dtype=np.int64), np.asarray(tree_class, dtype=np.int64),
        np.asarray(nodes["left"], dtype=np.int64), np.asarray(nodes["right"], dtype=np.int64),
        np.asarray(nodes["feature"], dtype=np.int64),
        np.asarray(nodes["threshold"], dtype=np.float64),
        np.asarray(nodes["default_left"], dtype=np.bool_),
        np.asarray(nodes["missing"], dtype=np.int64),
        np.asarray(nodes["leaf"], dtype=np.float64)), classes)
