"""logger=mlflow: a real `mlflow server` on 127.0.0.1 receives a run's params, per-epoch metrics and
artifacts (read back through MLflow's client); the local store is the default; sweep and Optuna
trial jobs are tagged with their sweep, job and trial; loggers compose (logger=[csv,mlflow])."""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import FAST

pytestmark = pytest.mark.xdist_group("mlflow")  # pytest -n: one MLflow server, one worker


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("mlflow")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}", "--artifacts-destination", str(home / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=open(home / "server.log", "w"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"mlflow server did not start: {(home / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield url
    server.terminate()
    server.wait(timeout=30)


def csv_column(run, name: str) -> list[float]:
    with open(run / "csv" / "metrics.csv", newline="") as f:
        return [float(row[name]) for row in csv.DictReader(f) if row.get(name)]


def test_a_run_logs_params_metrics_and_artifacts_to_a_tracking_server(cli, in_tmp_cwd, mlflow_server):
    from mlflow.tracking import MlflowClient

    code, _, err = cli(
        "train", "logger=[csv,mlflow]", f"logger.mlflow.tracking_uri={mlflow_server}", *FAST,
        "trainer.max_epochs=2", "optimizer.lr=0.0123", "run_name=tracked",
    )  # fmt: skip
    assert code == 0, err
    run = in_tmp_cwd / "outputs" / "train" / "tracked"
    record = json.loads((run / "run.json").read_text())
    (link,) = record["mlflow"]
    assert link["tracking_uri"] == mlflow_server
    client = MlflowClient(tracking_uri=mlflow_server)
    logged = client.get_run(link["run_id"])
    assert logged.info.status == "FINISHED" and logged.info.run_name == "tracked"
    assert client.get_experiment(logged.info.experiment_id).name == "train"
    params = logged.data.params
    assert float(params["config/optimizer/lr"]) == 0.0123 and params["config/model/_target_"].endswith("CNN")
    # the same per-epoch values as the CSV logger beside it
    history = [m.value for m in client.get_metric_history(link["run_id"], "val/acc")]
    assert history == pytest.approx(csv_column(run, "val/acc")) and len(history) == 2
    assert logged.data.metrics["test/acc"] == pytest.approx(record["metrics"]["test/acc"])
    assert logged.data.tags["bigmodel.status"] == "completed" and logged.data.tags["bigmodel.run_dir"] == str(run)
    artifacts = {a.path for a in client.list_artifacts(link["run_id"])}
    assert artifacts == {"run.json", ".hydra", "checkpoints"}
    local = client.download_artifacts(link["run_id"], "checkpoints/best.ckpt", str(in_tmp_cwd))
    assert open(local, "rb").read() == (run / "checkpoints" / "best.ckpt").read_bytes()
    uploaded = json.loads(open(client.download_artifacts(link["run_id"], "run.json", str(in_tmp_cwd))).read())
    assert uploaded["status"] == "completed" and uploaded["metrics"] == record["metrics"]
    config = client.download_artifacts(link["run_id"], ".hydra/config.yaml", str(in_tmp_cwd))
    assert open(config).read() == (run / ".hydra" / "config.yaml").read_text()


def test_sweep_trials_are_tagged_in_the_local_store_by_default(cli, in_tmp_cwd, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, _, err = cli(
        "train", "-m", "hparams_search=optuna", "logger=mlflow", *FAST, "run_name=tagged", "hydra.sweeper.n_trials=2"
    )
    assert code == 0, err
    assert not (in_tmp_cwd / "outputs").exists() and (in_tmp_cwd / "mlflow.db").is_file()
    client = MlflowClient(tracking_uri="sqlite:///mlflow.db")
    (experiment,) = [e for e in client.search_experiments() if e.name == "train"]
    runs = client.search_runs([experiment.experiment_id], order_by=["tags.`bigmodel.trial` ASC"])
    assert [r.data.tags["bigmodel.trial"] for r in runs] == ["0", "1"]
    assert {r.data.tags["bigmodel.sweep"] for r in runs} == {"tagged"}
    assert [r.data.tags["bigmodel.job"] for r in runs] == ["0", "1"]
    for r in runs:
        job = json.loads(
            (in_tmp_cwd / "multirun" / "train" / "tagged" / r.data.tags["bigmodel.job"] / "run.json").read_text()
        )
        assert float(r.data.params["config/optimizer/lr"]) == pytest.approx(job["config"]["optimizer"]["lr"])
        assert [link["tracking_uri"] for link in job["mlflow"]] == [f"sqlite:///{in_tmp_cwd}/mlflow.db"]
        assert r.info.run_name == f"tagged/{r.data.tags['bigmodel.job']}"


def test_jobs_starting_together_on_a_new_local_store_take_turns_creating_it(tmp_path):
    """Two jobs creating one SQLite store at once (a parallel sweep, a run beside its resume) raced on
    MLflow's schema migration ('duplicate column name'); the second now waits for the first."""
    import threading

    from omegaconf import OmegaConf

    from bigmodel_cli.runs.tracking import store_lock
    from bigmodel_cli.training.pieces import built

    database = tmp_path / "mlflow.db"
    uri = f"sqlite:///{database}"
    node = OmegaConf.create(
        {"_target_": "pytorch_lightning.loggers.MLFlowLogger", "experiment_name": "x", "tracking_uri": uri}
    )
    loggers = []
    with store_lock(uri):  # the first job, creating the store
        second = threading.Thread(target=lambda: loggers.append(built("logger.mlflow", node, ())))
        second.start()
        second.join(timeout=3)
        assert second.is_alive() and not database.exists(), "the second job opened the store while the first held it"
    second.join(timeout=120)
    assert loggers and database.exists()
