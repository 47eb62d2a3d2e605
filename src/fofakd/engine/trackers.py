"""Experiment trackers beside TensorBoard and metrics.jsonl: MLflow and Weights & Biases, as optional extras.

A tracker gets what the run's own files get: the config (as parameters), every epoch's row (metrics, FOFA's
diagnostics included) and the final summary. Its run id is kept in the run directory (`tracker.json`), so a
resumed run continues the same tracker run.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from ..errors import FofakdError
from ..files import write_text

TRACKERS = ("mlflow", "wandb")
ID_FILE = "tracker.json"


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


class MlflowTracker:
    """An MLflow run in `MLFLOW_TRACKING_URI`, or by default in a file store under the run (`mlruns/`), which
    needs no server: `mlflow ui --backend-store-uri RUN/mlruns` shows it."""

    def __init__(self, folder: Path, config: dict[str, Any], run_id: str | None):
        from mlflow import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if uri is None:  # MLflow 3 keeps its file store only on request; it is the store that needs no server
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            uri = (folder / "mlruns").absolute().as_uri()
        self.client = MlflowClient(tracking_uri=uri)
        if run_id is None:
            experiment = self.client.get_experiment_by_name("fofakd")
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment("fofakd")
            run_id = self.client.create_run(experiment_id, run_name=folder.name).info.run_id
            for key, value in config.items():  # MLflow parameters are strings of at most 6,000 characters
                self.client.log_param(run_id, key, json.dumps(value)[:6000])
        self.run_id = run_id

    def log_epoch(self, row: dict[str, Any], epoch: int) -> None:
        from mlflow.entities import Metric

        stamp = int(1000 * time.time())
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, stamp, epoch) for k, v in _numbers(row).items()])

    def finish(self, summary: dict[str, Any]) -> None:
        self.log_epoch({f"final/{k}": v for k, v in summary.items()}, summary.get("epochs", 0))
        self.client.set_terminated(self.run_id)


class WandbTracker:
    """A Weights & Biases run, offline unless `WANDB_MODE` says otherwise (files under the run's `wandb/`;
    `wandb sync RUN/wandb/offline-run-*` uploads them later)."""

    def __init__(self, folder: Path, config: dict[str, Any], run_id: str | None):
        import wandb

        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "fofakd"), name=folder.name, id=run_id,
                              dir=str(folder), config=config, mode=os.environ.get("WANDB_MODE", "offline"),
                              resume="allow" if run_id else None)
        self.run_id = self.run.id

    def log_epoch(self, row: dict[str, Any], epoch: int) -> None:
        self.run.log(_numbers(row), step=epoch)

    def finish(self, summary: dict[str, Any]) -> None:
        self.run.summary.update({f"final/{k}": v for k, v in _numbers(summary).items()})
        self.run.finish()


def open_tracker(name: str | None, folder: Path, config: dict[str, Any], resume: bool):
    """The run's tracker (None when the run has none), continuing the recorded tracker run on resume."""
    if name is None:
        return None
    id_file = folder / ID_FILE
    saved = json.loads(id_file.read_text()) if resume and id_file.is_file() else {}
    cls = {"mlflow": MlflowTracker, "wandb": WandbTracker}[name]
    try:
        tracker = cls(folder, config, saved.get(name))
    except ImportError:
        raise FofakdError(f"--tracker {name} needs the {name} package; install it with pip install "
                          f"fofakd[trackers] (or pip install {name}).") from None
    write_text(id_file, json.dumps({name: tracker.run_id}) + "\n")
    return tracker
