"""Classification metrics: accuracy, F1 of one class as GLUE reports it, and Matthews
correlation (GLUE's metric for CoLA)."""

from collections.abc import Sequence

import numpy as np


def accuracy(labels: Sequence[int], predictions: Sequence[int]) -> float:
    """The fraction of predictions equal to the labels."""
    labels, predictions = _as_arrays(labels, predictions)
    return float(np.mean(labels == predictions))


def f1(labels: Sequence[int], predictions: Sequence[int], positive: int = 1) -> float:
    """F1 of class `positive` (GLUE's two-class F1 uses the second label, 1).

    0.0 when the class is neither predicted nor present, as scikit-learn's
    `f1_score(zero_division=0)`.
    """
    labels, predictions = _as_arrays(labels, predictions)
    true_positives = np.sum((predictions == positive) & (labels == positive))
    predicted = np.sum(predictions == positive)
    actual = np.sum(labels == positive)
    if predicted + actual == 0:
        return 0.0
    return float(2 * true_positives / (predicted + actual))


def matthews_correlation(labels: Sequence[int], predictions: Sequence[int]) -> float:
    """The Matthews correlation coefficient, for any number of classes.

    As scikit-learn's `matthews_corrcoef` (Gorodkin's multi-class form): 0.0
    when labels or predictions hold a single class, where it is undefined.
    """
    labels, predictions = _as_arrays(labels, predictions)
    classes = np.union1d(labels, predictions)
    true = (labels[:, None] == classes).sum(axis=0).astype(np.float64)
    predicted = (predictions[:, None] == classes).sum(axis=0).astype(np.float64)
    correct, total = float(np.sum(labels == predictions)), float(labels.size)
    denominator = np.sqrt((total ** 2 - predicted @ predicted) * (total ** 2 - true @ true))
    if denominator == 0:
        return 0.0
    return float((correct * total - predicted @ true) / denominator)


def _as_arrays(labels, predictions) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).reshape(-1)
    predictions = np.asarray(predictions).reshape(-1)
    if labels.shape != predictions.shape:
        raise ValueError(
            f"labels and predictions differ in length: {labels.shape[0]} vs {predictions.shape[0]}"
        )
    if labels.size == 0:
        raise ValueError("no labels to score: the evaluation set is empty")
    return labels, predictions
