"""MLflow tracking for stage processes — with hubert_ee.tracking_relay (and the registry) the
only modules of the library that import mlflow.

- Store: `MLFLOW_TRACKING_URI` if set, else `sqlite:///<absolute cwd>/mlflow.db` (absolute: a
  relative URI is lost under `dvc exp run --temp`); artifacts beside it in `mlartifacts/`.
- Nesting: a pipeline run passes its parent run id in `HUBERT_EE_PARENT_RUN_ID`; each stage
  is then a nested run under it. Without it every stage is a top-level run.
- Never a lost result: if the store cannot be reached (at start or mid-run) the stage prints
  one warning and goes on; its DVC metrics files are written either way.
- `HUBERT_EE_TRACKING=off` turns tracking off.
- Start-up off the critical path: importing mlflow and opening its store take seconds, which
  a stage of a few seconds would pay in full (16 stages of the smoke profile). Stage trackers
  start in a background thread while the stage works; the first call that needs the run
  waits for it. Under a pipeline run that relays (`HUBERT_EE_TRACKING_SPOOL`, set by
  `hubert-ee run` and the Prefect flow) a stage does not import mlflow at all: it spools its
  events and the parent's process forwards them (hubert_ee.tracking_relay).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hubert_ee.tracking_relay import SPOOL_ENV, SpoolWriter, param_values

PARENT_ENV = "HUBERT_EE_PARENT_RUN_ID"
EXPERIMENT = "hubert-ee"


def default_tracking_uri(root: str | Path | None = None) -> str:
    return (
        os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{Path(root or Path.cwd()).resolve()}/mlflow.db"
    )


def import_mlflow():
    with warnings.catch_warnings():  # its import-time deprecation notices are not ours to fix
        warnings.simplefilter("ignore")
        import mlflow
    return mlflow


def experiment_id(client, uri: str, name: str = EXPERIMENT) -> str:
    """The experiment's id, created on first use with its artifacts beside a sqlite store."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    artifacts = None
    if uri.startswith("sqlite:///"):
        artifacts = (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=artifacts)


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "/"))
        else:
            out[key] = v
    return out


class StageTracker:
    """`with StageTracker("kmeans_iter1", params) as t: ... t.log_metrics({...})`.

    `background=True`: the run starts in a thread (see the module docstring)."""

    def __init__(
        self,
        stage: str,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        background: bool = False,
    ):
        self.stage = stage
        self.params = flatten(params or {})
        self.tags = dict(tags or {})
        self.background = background
        self._active = False
        self._run_id: str | None = None
        self._mlflow = None
        self._warned = False
        self._starting: threading.Thread | None = None
        self._spool: SpoolWriter | None = None

    def _ready(self) -> None:
        """Wait for a background start to finish (it never raises: failures disable)."""
        if self._starting is not None:
            self._starting.join()
            self._starting = None

    @property
    def active(self) -> bool:
        self._ready()
        return self._active

    @property
    def run_id(self) -> str | None:
        self._ready()
        return self._run_id

    def _disable(self, err: BaseException) -> None:
        if not self._warned:
            self._warned = True
            print(
                f"warning: MLflow tracking unavailable for stage {self.stage} ({type(err).__name__}: {err}); "
                "continuing without it — metrics are still written to the DVC metrics files",
                file=sys.stderr,
            )
        self._active = False

    def __enter__(self) -> StageTracker:
        if os.environ.get("HUBERT_EE_TRACKING", "on").lower() in ("off", "0", "false"):
            return self
        if int(os.environ.get("RANK", "0")) != 0:
            return self  # under torchrun only rank 0 tracks
        # Fail fast against a dead server instead of MLflow's minutes of retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        if os.environ.get(SPOOL_ENV) and os.environ.get(PARENT_ENV):
            self._spool = SpoolWriter(os.environ[SPOOL_ENV], self.stage)
            self._spool.write(
                "start", stage=self.stage, params=self.params, tags=self.tags,
                parent=os.environ[PARENT_ENV],
            )  # fmt: skip
            self._active = True
            return self
        uri = default_tracking_uri()  # now: the cwd may change while a thread starts the run
        if self.background:
            self._starting = threading.Thread(
                target=self._start, args=(uri,), name=f"mlflow-{self.stage}", daemon=True
            )
            self._starting.start()
        else:
            self._start(uri)
        return self

    def _start(self, uri: str) -> None:
        try:
            mlflow = self._mlflow = import_mlflow()
            mlflow.set_tracking_uri(uri)
            mlflow.set_experiment(experiment_id=experiment_id(mlflow.MlflowClient(uri), uri))
            run = mlflow.start_run(
                run_name=self.stage,
                parent_run_id=os.environ.get(PARENT_ENV) or None,
                tags={"stage": self.stage, **self.tags},
            )
            self._run_id = run.info.run_id
            self._active = True
            if self.params:
                mlflow.log_params(param_values(self.params), run_id=self._run_id)
        except Exception as err:  # noqa: BLE001 - any tracking failure must not fail the stage
            self._disable(err)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if not self.active:
            return
        flat = {
            k: float(v)
            for k, v in flatten(metrics).items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        }
        try:
            if self._spool is not None:
                self._spool.write("metrics", metrics=flat, step=step)
            else:
                self._mlflow.log_metrics(flat, step=step, run_id=self._run_id)
        except Exception as err:  # noqa: BLE001
            self._disable(err)

    def log_artifact(self, path: str | Path) -> None:
        if not self.active or not Path(path).exists():
            return
        try:
            if self._spool is not None:
                self._spool.artifact(Path(path))
            elif Path(path).is_dir():
                self._mlflow.log_artifacts(
                    str(path), artifact_path=Path(path).name, run_id=self._run_id
                )
            else:
                self._mlflow.log_artifact(str(path), run_id=self._run_id)
        except Exception as err:  # noqa: BLE001
            self._disable(err)

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.active:
            status = "FAILED" if exc_type else "FINISHED"
            try:
                if self._spool is not None:
                    self._spool.write("end", status=status)
                elif self.background:  # MLflow's active run is per thread: end it by id
                    self._mlflow.MlflowClient().set_terminated(self._run_id, status)
                else:
                    self._mlflow.end_run(status=status)
            except Exception as err:  # noqa: BLE001
                self._disable(err)


class pipeline_run:  # noqa: N801 (used as a context manager, like mlflow.start_run)
    """The parent MLflow run of one pipeline run; yields its id (None if tracking is off or down).

    Tags: git revision and dvc.lock hash of `root`, plus `tags` (e.g. the Prefect flow-run id).
    """

    def __init__(self, root: str | Path, tags: Mapping[str, str] | None = None):
        import hashlib
        import subprocess

        root = Path(root)
        lock = root / "dvc.lock"
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        self.tracker = StageTracker(
            "pipeline",
            tags={
                "git_revision": rev or "unknown",
                "dvc_lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest()
                if lock.exists()
                else "none",
                **dict(tags or {}),
            },
        )
        self.root = root

    def __enter__(self) -> str | None:
        cwd = Path.cwd()
        os.chdir(self.root)  # the default store is the project root's mlflow.db
        try:
            self.tracker.__enter__()
        finally:
            os.chdir(cwd)
        return self.tracker.run_id if self.tracker.active else None

    def __exit__(self, exc_type, exc, tb) -> None:
        self.tracker.__exit__(exc_type, exc, tb)
