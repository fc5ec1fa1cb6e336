"""The content model: recovery probability of each variant of a step, with and without the
discount code, and the code's uplift (docs/models.md, "Content model").

One logistic regression of recovery on the cart's features, the code (0/1), and the code
times a few features it may act through (:data:`ml.features.UPLIFT_FEATURES`: the log of
the cart value, and its product with the device): an "S-learner" with treatment
interactions. The outcome's dependence on
everything else is learned once from all messages, with and without a code, so the uplift
is estimated from the interaction terms alone; two separate models ("T-learner", the first
version) each spent half the data relearning the shared part and their difference was
noisier (docs/models.md). The history must randomise the code, as the step's control share
and the simulator's log do.

The customer's own history with codes then moves P(recover | code): it is multiplied by
``exp(customer_code_evidence)`` (:func:`ml.features.code_evidence`: their conversion after a
click with a code against without, shrunk toward everyone's). A prior with a fixed weight,
not a learned coefficient: a customer has a handful of messages, and the coefficient that
a regression learns from so few was noise (docs/models.md). The code is offered only when
the expected margin with it beats the margin without::

    P(recover | code) * value * (margin - discount)  >  P(recover | no code) * value * margin
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .evaluation import qini_coefficient
from .features import CONTENT_FEATURES, UPLIFT_FEATURES, FeatureSpace, rows_of
from .linear import linear_of

NAME = "cartrecovery-content"
METRIC = "heldout_qini"  # higher is better; the promotion rule compares it
DEFAULT_MARGIN = 0.4
# The model's inputs: the features, the code, the code times each uplift feature.
DESIGN = (*CONTENT_FEATURES, "code", *(f"code_x_{f}" for f in UPLIFT_FEATURES))
# The inputs of models trained before the code acted through the log of the cart value
# (the code times the device, the capped value and their product): a registered model
# unpickled from then keeps scoring with its own weights.
DESIGN_LINEAR_VALUE = (
    *CONTENT_FEATURES,
    "code",
    *(f"code_x_{f}" for f in ("device_mobile", "value_hundreds", "mobile_x_value_hundreds")),
)


@functools.cache
def _interactions(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(input, feature) of each code interaction among ``names`` (once per design: scoring
    one message calls :func:`_design` twice)."""
    return tuple((n, n.removeprefix("code_x_")) for n in names if n.startswith("code_x_"))


def _design(columns: dict, code, names: tuple[str, ...] = DESIGN) -> dict:
    """``columns`` with the code (1.0/0.0, or an array) and the interactions ``names`` use."""
    return columns | {"code": code} | {n: code * columns[f] for n, f in _interactions(names)}


def _matrix(columns: dict, code: np.ndarray, names: tuple[str, ...] = DESIGN) -> np.ndarray:
    design = _design(columns, code, names)
    return np.column_stack([design[name] for name in names])


@dataclass
class ContentModel:
    output_names: ClassVar[tuple[str, str]] = ("p_recovery_code", "p_recovery_no_code")

    space: FeatureSpace
    outcome: object  # P(recovery | features, code)
    design: tuple[str, ...] = DESIGN  # the outcome model's inputs, in order

    @property
    def names(self) -> tuple[str, ...]:
        """The outcome model's inputs: a model pickled before ``design`` existed has none of
        its own (the class default is today's) and used :data:`DESIGN_LINEAR_VALUE`."""
        return self.__dict__.get("design", DESIGN_LINEAR_VALUE)

    @classmethod
    def train(cls, log: pl.DataFrame, seed: int = 0) -> ContentModel:
        space = FeatureSpace.fit(log)
        rows = rows_of(log)
        columns = space.columns(rows, history_only=True)
        y = rows["recovered"].astype(int)
        coded = rows["discount_rate"] > 0
        if coded.all() or not coded.any():
            raise ValueError("the history has no randomised discount: uplift cannot be learned")
        if len(np.unique(y)) < 2:
            raise ValueError("the training data has a single outcome: nothing to learn")
        # Logistic rather than boosted trees: recoveries are rare, and a flexible model's
        # uplift is mostly noise at these sizes (docs/models.md).
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
        return cls(space, model.fit(_matrix(columns, coded.astype(float)), y), DESIGN)

    def predict(self, rows: dict) -> tuple[np.ndarray, np.ndarray]:
        """(P(recovery | code), P(recovery | no code)) per row."""
        columns = self.space.columns(rows)
        n = len(rows["sent_at"])
        p_code = _proba(self.outcome, _matrix(columns, np.ones(n), self.names))
        return (
            np.minimum(p_code * np.exp(columns["customer_code_evidence"]), 1.0),
            _proba(self.outcome, _matrix(columns, np.zeros(n), self.names)),
        )

    def predict_one(self, cart: dict, sent_at: int) -> tuple[float, float]:
        """(P(recovery | code), P(recovery | no code)) of one cart sent at ``sent_at``: the
        :meth:`predict` of its row, computed the way delivery can afford per message."""
        columns = self.space.cart_columns(cart, np.asarray([sent_at], dtype=np.int64))
        columns = {k: v if type(v) is float else float(v[0]) for k, v in columns.items()}
        names = self.names
        linear = linear_of(self, "outcome", names)
        p_code = linear.proba(_design(columns, 1.0, names))
        p_code = min(p_code * math.exp(columns["customer_code_evidence"]), 1.0)
        return p_code, linear.proba(_design(columns, 0.0, names))

    def uplift(self, rows: dict) -> np.ndarray:
        p1, p0 = self.predict(rows)
        return p1 - p0

    def variant_probabilities(self, rows: dict, variants: list[str]) -> dict[str, np.ndarray]:
        """P(recovery | no code) of each variant for the same rows."""
        return {
            v: self.predict(rows | {"variant": np.repeat(v, len(rows["sent_at"]))})[1]
            for v in variants
        }

    def offer(self, rows: dict, discount_rate: np.ndarray, margin: float) -> np.ndarray:
        """Whether to offer the code: when the predicted uplift pays for its cost."""
        p1, p0 = self.predict(rows)
        return p1 * (margin - np.asarray(discount_rate)) > p0 * margin


def _proba(model, x: np.ndarray) -> np.ndarray:
    scaler, logistic = model[0], model[-1]
    z = ((x - scaler.mean_) / scaler.scale_) @ logistic.coef_[0] + logistic.intercept_[0]
    return 1.0 / (1.0 + np.exp(-z))


def heldout_metrics(model: ContentModel, heldout: pl.DataFrame) -> dict[str, float]:
    """Qini coefficient and AUUC of the predicted uplift on held-out messages."""
    rows = rows_of(heldout)
    uplift = model.uplift(rows)
    qini, auuc = qini_coefficient(uplift, rows["discount_rate"] > 0, rows["recovered"])
    return {"heldout_qini": qini, "heldout_auuc": auuc}
