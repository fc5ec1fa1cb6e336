"""MLflow: where runs and registered models live, logging a trained model, and the
promotion rule (docs/models.md, "MLflow").

The tracking store is ``MLFLOW_TRACKING_URI`` when set (its own Postgres database, or the
server ``cartrecovery up --with-mlflow`` starts), else a SQLite file under
``$CARTRECOVERY_HOME/mlflow``; artifacts of a local store go beside it (never ``./mlruns``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

EXPERIMENT = "cartrecovery-models"
CHAMPION, CHALLENGER = "champion", "challenger"
# Written out so log_model does not spend seconds inferring them.
PIP_REQUIREMENTS = [
    "scikit-learn==1.9.1",
    "numpy==2.4.6",
    "polars==2.1.0",
    "pandas==3.1.1",
    "mlflow==3.17.2",
]


def default_home() -> Path:
    return Path(os.environ.get("CARTRECOVERY_HOME", ".cartrecovery")).resolve()


def tracking_uri(home: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI``, else a SQLite store under ``home``/mlflow (created)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        if uri.startswith("postgresql://"):
            # SQLAlchemy maps plain postgresql:// to psycopg 3, which MLflow's store accepts.
            return "postgresql+psycopg://" + uri[len("postgresql://") :]
        return uri
    return local_uri(home)


def local_uri(home: Path | None = None) -> str:
    """The SQLite store under ``home``/mlflow (created)."""
    folder = (home or default_home()) / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def artifact_location(home: Path | None = None) -> str | None:
    """Where a local store keeps artifacts (None for a tracking server: it decides)."""
    if tracking_uri(home).startswith(("http://", "https://", "databricks")):
        return None
    folder = (home or default_home()) / "mlflow" / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder.as_uri()


def client(home: Path | None = None):
    """An MlflowClient on the store, with the module-level tracking URI set to it too."""
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri(home)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(mlflow_client, home: Path | None = None) -> str:
    found = mlflow_client.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        return found.experiment_id
    return mlflow_client.create_experiment(EXPERIMENT, artifact_location=artifact_location(home))


def _python_model_class():
    import mlflow.pyfunc

    class CartRecoveryModel(mlflow.pyfunc.PythonModel):
        """A send-time or content model behind MLflow's pyfunc interface: ``predict`` takes
        message-log rows and returns the model's probabilities. Delivery unwraps it
        (``unwrap_python_model().model``) and calls the model directly."""

        def __init__(self, model):
            self.model = model

        def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
            rows = {c: model_input[c].to_numpy() for c in model_input.columns}
            first, second = self.model.predict(rows)
            names = getattr(self.model, "output_names", ("p_first", "p_second"))
            return pd.DataFrame({names[0]: first, names[1]: second})

    return CartRecoveryModel


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    run_id: str
    metric: float
    champion_version: str | None
    champion_metric: float | None
    promoted: bool


def log_and_register(
    mlflow_client,
    name: str,
    model,
    *,
    params: dict,
    metrics: dict[str, float],
    metric: str,
    input_example: pd.DataFrame,
    heldout_score,
    artifacts: dict[str, str] | None = None,
    home: Path | None = None,
) -> Registered:
    """Log a run (params, metrics, artifacts, the model with signature and input example),
    register it as a new version of ``name`` with alias ``challenger``, then apply the
    promotion rule: it becomes ``champion`` when there is none, or when its held-out
    ``metric`` beats the champion's on the same held-out data (``heldout_score(model)``
    computes it for the champion)."""
    import mlflow
    from mlflow.models import infer_signature

    wrapper = _python_model_class()(model)
    output = wrapper.predict(None, input_example)
    signature = infer_signature(input_example, output)
    with mlflow.start_run(experiment_id=experiment_id(mlflow_client, home)) as run:
        mlflow.log_params(params)
        mlflow.log_metrics({k: v for k, v in metrics.items() if _finite(v)})
        for filename, text in (artifacts or {}).items():
            mlflow.log_text(text, filename)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=wrapper,
            signature=signature,
            input_example=input_example,
            pip_requirements=PIP_REQUIREMENTS,
            registered_model_name=name,
        )
    version = str(info.registered_model_version)
    value = float(metrics.get(metric, float("nan")))
    mlflow_client.set_model_version_tag(name, version, metric, str(value))
    mlflow_client.set_registered_model_alias(name, CHALLENGER, version)
    champion = champion_version(mlflow_client, name)
    champion_value = None
    if champion is not None and champion != version:
        try:
            champion_value = float(heldout_score(load(name, CHAMPION)))
        except Exception:  # a champion that cannot be loaded or scored loses to a working one
            champion_value = float("nan")
    promoted = _finite(value) and (
        champion is None
        or champion_value is None
        or not _finite(champion_value)
        or value > champion_value
    )
    if promoted:
        mlflow_client.set_registered_model_alias(name, CHAMPION, version)
    mlflow_client.set_model_version_tag(name, version, "promoted", str(promoted).lower())
    return Registered(name, version, run.info.run_id, value, champion, champion_value, promoted)


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def champion_version(mlflow_client, name: str, alias: str = CHAMPION) -> str | None:
    """The version an alias points to, or None (no such model or alias)."""
    from mlflow.exceptions import MlflowException

    try:
        return str(mlflow_client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def load(name: str, alias: str = CHAMPION, version: str | None = None):
    """The model object (SendTimeModel or ContentModel) behind ``models:/name@alias``."""
    import mlflow.pyfunc

    uri = f"models:/{name}/{version}" if version else f"models:/{name}@{alias}"
    return mlflow.pyfunc.load_model(uri).unwrap_python_model().model


def example_frame(rows: dict, n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({k: np.asarray(v)[:n] for k, v in rows.items()})
