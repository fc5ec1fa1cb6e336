"""A fitted ``StandardScaler`` + ``LogisticRegression`` pipeline folded into one weight per
feature, for scoring one cart within delivery's per-message budget (docs/models.md,
"Scoring in delivery").

``(x - mean) / scale @ coef + b`` is ``x @ (coef / scale) + (b - mean @ (coef / scale))``:
the same model, without sklearn's per-call validation or building a feature matrix. Features
that are the same for every candidate instant of a cart are Python floats and cost one
multiplication each; only the few that vary with the instant are arrays.
"""

from __future__ import annotations

import math

import numpy as np


class Linear:
    def __init__(self, pipeline, names) -> None:
        scaler, logistic = pipeline[0], pipeline[-1]
        weights = logistic.coef_[0] / scaler.scale_
        self.weights = dict(zip(names, weights.tolist(), strict=True))
        self.intercept = float(logistic.intercept_[0] - np.dot(weights, scaler.mean_))

    def logit(self, columns: dict):
        """The model's log-odds for ``columns`` (name -> float or array)."""
        z = self.intercept
        vectors = []
        for name, weight in self.weights.items():
            value = columns[name]
            if type(value) is float:
                z += weight * value
            else:
                vectors.append(weight * value)
        for vector in vectors:
            z = z + vector
        return z

    def proba(self, columns: dict):
        z = self.logit(columns)
        if type(z) is float:
            return 1.0 / (1.0 + math.exp(-z))
        return 1.0 / (1.0 + np.exp(-z))


def linear_of(model: object, attribute: str, names) -> Linear:
    """The :class:`Linear` of ``model.<attribute>`` (a fitted pipeline), made once and kept
    on the model object."""
    cache = model.__dict__.setdefault("_linear", {})
    linear = cache.get(attribute)
    if linear is None:
        linear = cache[attribute] = Linear(getattr(model, attribute), names)
    return linear
