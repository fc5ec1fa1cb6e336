"""The send-time model: for a cart and candidate send instants, P(click) and P(recovery);
picks the best allowed instant, or explores (docs/models.md, "Send-time model").

Two scikit-learn logistic regressions over :data:`ml.features.SEND_TIME_FEATURES`, whose
engagement features are already pooled customer -> segment -> global, so a store with a few
hundred recipients gets its segment's and everyone's hours where its own data is thin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .features import SEND_TIME_FEATURES, FeatureSpace, rows_of
from .linear import linear_of

NAME = "cartrecovery-send-time"
METRIC = "heldout_auc_recovery"  # higher is better; the promotion rule compares it
DEFAULT_EXPLORE = 0.1


@dataclass(frozen=True)
class Choice:
    """The instant chosen among the candidates (index into them) and what is needed to
    evaluate the policy off-line: the probability this policy had of choosing it, whether it
    explored, and the predicted recovery at the chosen, the greedy and the fixed instant."""

    index: int
    propensity: float
    explored: bool
    greedy_index: int
    q_chosen: float
    q_greedy: float
    q_fixed: float


def _fit(x: np.ndarray, y: np.ndarray):
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500))
    if len(np.unique(y)) < 2:
        raise ValueError("the training data has a single outcome: nothing to learn")
    return model.fit(x, y)


@dataclass
class SendTimeModel:
    output_names: ClassVar[tuple[str, str]] = ("p_click", "p_recovery")

    space: FeatureSpace
    click: object
    recovery: object
    explore: float = DEFAULT_EXPLORE

    @classmethod
    def train(cls, log: pl.DataFrame, explore: float = DEFAULT_EXPLORE) -> SendTimeModel:
        space = FeatureSpace.fit(log)
        rows = rows_of(log)
        x = space.matrix(rows, SEND_TIME_FEATURES, history_only=True)
        return cls(
            space,
            _fit(x, rows["clicked"].astype(int)),
            _fit(x, rows["recovered"].astype(int)),
            explore,
        )

    def predict(self, rows: dict) -> tuple[np.ndarray, np.ndarray]:
        """(P(click), P(recovery)) per row (a dict of message-log columns)."""
        x = self.space.matrix(rows, SEND_TIME_FEATURES)
        return _proba(self.click, x), _proba(self.recovery, x)

    def recovery_at(self, cart: dict, candidates: np.ndarray) -> np.ndarray:
        """P(recovery) of one cart sent at each of ``candidates``: :meth:`predict` of
        :meth:`candidate_rows`, computed the way delivery can afford per message."""
        columns = self.space.cart_columns(cart, candidates)
        p = linear_of(self, "recovery", SEND_TIME_FEATURES).proba(columns)
        return np.broadcast_to(p, np.shape(candidates)).astype(float)

    def candidate_rows(self, cart: dict, candidates: np.ndarray) -> dict:
        """One cart's features repeated over its candidate instants (UTC epoch seconds)."""
        n = len(candidates)
        return {
            key: np.repeat(np.asarray([cart[key]]), n)
            for key in (
                "store_key",
                "customer_key",
                "channel",
                "device",
                "timezone",
                "variant",
                "cart_value",
                "item_count",
                "abandoned_at",
                "discount_rate",
            )
        } | {"sent_at": np.asarray(candidates, dtype=np.int64)}

    def choose(
        self, cart: dict, candidates: np.ndarray, allowed: np.ndarray, draw: float, pick: float
    ) -> Choice:
        """Pick among ``candidates`` (the first is the step's fixed instant) those
        ``allowed``: the one with the highest predicted recovery, except with probability
        ``explore`` (``draw`` < explore) a uniformly random allowed one (``pick`` in [0, 1)).
        Raises ValueError when nothing is allowed."""
        allowed = np.asarray(allowed, dtype=bool)
        options = np.flatnonzero(allowed)
        if not len(options):
            raise ValueError("no candidate instant is allowed")
        q = self.recovery_at(cart, candidates)
        greedy = int(options[np.argmax(q[options])])
        explored = draw < self.explore
        index = (
            int(options[min(int(pick * len(options)), len(options) - 1)]) if explored else greedy
        )
        uniform = self.explore / len(options)
        propensity = uniform + (1 - self.explore) * (index == greedy)
        return Choice(
            index,
            float(propensity),
            explored,
            greedy,
            float(q[index]),
            float(q[greedy]),
            float(q[0]),
        )


def _proba(model, x: np.ndarray) -> np.ndarray:
    # The fitted pipeline's arithmetic without sklearn's per-call validation: scoring one
    # message must stay well under 2 ms.
    scaler, logistic = model[0], model[-1]
    z = ((x - scaler.mean_) / scaler.scale_) @ logistic.coef_[0] + logistic.intercept_[0]
    return 1.0 / (1.0 + np.exp(-z))


def heldout_metrics(model: SendTimeModel, heldout: pl.DataFrame) -> dict[str, float]:
    """AUC and log loss of the recovery and click predictions on held-out messages."""
    rows = rows_of(heldout)
    p_click, p_recovery = model.predict(rows)
    out = {}
    for name, y, p in (
        ("recovery", rows["recovered"], p_recovery),
        ("click", rows["clicked"], p_click),
    ):
        y = y.astype(int)
        if len(np.unique(y)) == 2:
            out[f"heldout_auc_{name}"] = float(roc_auc_score(y, p))
            out[f"heldout_logloss_{name}"] = float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6)))
        else:
            out[f"heldout_auc_{name}"] = float("nan")
    return out
