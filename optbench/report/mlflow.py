"""Log runs to MLflow: one parent run per report (the report as artifacts), one nested run
per configuration (params, metrics, provenance tags). Logging the same store twice adds
nothing: each configuration run is tagged with its store identity and skipped if present.

The default is a local file store under OUT/mlruns. MLflow 3 keeps the file store in
maintenance mode and refuses it unless MLFLOW_ALLOW_FILE_STORE=true, which optbench sets
for that default only; any other tracking URI is used as given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from optbench.errors import OptbenchError
from optbench.report.columns import MLFLOW_METRICS, MLFLOW_PARAMS
from optbench.report.text import run_label

EXPERIMENT = "optbench"
METRICS = MLFLOW_METRICS  # MLflow metric names are the row keys
PARAMS = MLFLOW_PARAMS


def default_uri(out: Path) -> str:
    return (out / "mlruns").resolve().as_uri()


def log_runs(rows: list[dict[str, Any]], report_dir: Path | None, uri: str,
             experiment: str = EXPERIMENT) -> dict[str, int]:
    """Log the ok rows; returns counts of runs logged and skipped (already there)."""
    try:
        import mlflow
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise OptbenchError("--mlflow needs MLflow: pip install mlflow-skinny") from exc
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment)
    client = MlflowClient()
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    counts = {"logged": 0, "skipped": 0}
    with mlflow.start_run(run_name=f"report {report_dir.name if report_dir else ''}".strip()):
        if report_dir is not None:
            mlflow.log_artifacts(str(report_dir), artifact_path="report")
        for row in rows:
            if row["status"] != "ok":
                continue
            uid = f"{row['env_id']}:{row['store_run_id']}:{row['started_at']}"
            found = client.search_runs([experiment_id],
                                       filter_string=f"tags.`optbench.uid` = '{uid}'")
            if found:
                counts["skipped"] += 1
                continue
            with mlflow.start_run(run_name=run_label(row, short=True), nested=True):
                mlflow.set_tags({"optbench.uid": uid, "optbench.env_id": row["env_id"],
                                 "optbench.git_sha": str(row.get("git_sha")),
                                 "optbench.energy_method": str(row.get("energy_method"))})
                mlflow.log_params({k: str(row.get(k))[:500] for k in PARAMS})
                mlflow.log_metrics({k: float(row[k]) for k in METRICS
                                    if isinstance(row.get(k), (int, float))})
                mlflow.log_metrics({f"quality.{k}": float(v) for k, v in row["metrics"].items()
                                    if isinstance(v, (int, float))})
            counts["logged"] += 1
    return counts
