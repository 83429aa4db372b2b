"""A run's MLflow record beyond what Lightning's MLFlowLogger logs (params and metrics): tags that place
it (its run directory, and for a sweep job its sweep, job number and Optuna trial), a link in run.json,
and at the end of the job the files that describe it as artifacts."""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path

from bigmodel_cli.runs.index import RUN_FILE


def mlflow_loggers(trainer) -> list:
    from pytorch_lightning.loggers import MLFlowLogger

    return [logger for logger in trainer.loggers if isinstance(logger, MLFlowLogger)]


@contextmanager
def store_lock(tracking_uri: str | None):
    """MLflow creates and migrates a local SQLite store on its first use, and creates the experiment
    on the first run in it; two jobs starting at once on one file (a parallel sweep, a run beside
    its own resume) race on both and one dies with `duplicate column name` or a unique constraint.
    A lock file beside the database makes them take turns; other stores (a server) need none."""
    if not (tracking_uri or "").startswith("sqlite:///"):
        yield
        return
    database = Path(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0])
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def job_tags(cfg) -> dict[str, str]:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    run_dir = Path(cfg.paths.output_dir)
    tags = {"bigmodel.run_dir": str(run_dir.resolve()), "mlflow.runName": run_dir.name}
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        sweep_dir = Path(HydraConfig.get().sweep.dir)
        tags |= {"bigmodel.sweep": sweep_dir.name, "bigmodel.sweep_dir": str(sweep_dir.resolve())}
        tags |= {"bigmodel.job": str(HydraConfig.get().job.num), "mlflow.runName": f"{sweep_dir.name}/{run_dir.name}"}
    trial = (cfg.get("hparams_search") or {}).get("trial")
    if trial is not None:
        tags["bigmodel.trial"] = str(trial)
    return tags


def start(trainer, cfg) -> list[dict[str, str]]:
    """Tag the job's MLflow runs before Lightning creates them; returns where each run is, for
    run.json (empty on ranks other than zero, which log nothing)."""
    loggers = mlflow_loggers(trainer)
    links = []
    for logger in loggers:
        logger.tags = {**(logger.tags or {}), **job_tags(cfg)}
        if trainer.is_global_zero:
            with store_lock(logger._tracking_uri):  # creates the experiment and the run
                client = logger.experiment
            links.append(
                {"tracking_uri": client.tracking_uri, "experiment_id": logger.experiment_id, "run_id": logger.run_id}
            )
    return links


def upload(run_dir: Path, record: dict) -> None:
    """At the end of the job (run.json final): run.json, the composed config and the best checkpoint
    as artifacts of each MLflow run the job logged to, and its status as a tag."""
    from mlflow.tracking import MlflowClient

    files = [(run_dir / RUN_FILE, None), (run_dir / ".hydra" / "config.yaml", ".hydra")]
    if record.get("best_checkpoint"):
        files.append((Path(record["best_checkpoint"]), "checkpoints"))
    for link in record.get("mlflow") or []:
        client = MlflowClient(tracking_uri=link["tracking_uri"])
        client.set_tag(link["run_id"], "bigmodel.status", record.get("status", "?"))
        for path, folder in files:
            if path.is_file():
                client.log_artifact(link["run_id"], str(path), artifact_path=folder)
