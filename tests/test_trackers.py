"""MLflow and Weights & Biases get what metrics.jsonl and summary.json get, read back from their own files."""
import json
import struct
import time

import pytest

from fofakd.cli import main

pytestmark = pytest.mark.slow  # most tests here train runs end to end

TINY = ["--train-subset", "64", "--val-subset", "32", "--test-subset", "32", "--batch-size", "32", "--lr", "0.002"]


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_mlflow_holds_every_epoch_and_the_summary_and_a_resume_continues_its_run(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    run = tmp_path / "run"
    args = ["train", "--model", "resnet10t", "--out", str(run), *TINY, "--epochs", "2", "--tracker", "mlflow"]
    assert main([*args, "--stop-after", "1"]) == 0
    assert main(["train", str(run), "--resume"]) == 0
    run_id = json.loads((run / "tracker.json").read_text())["mlflow"]
    client = MlflowClient(tracking_uri=(run / "mlruns").absolute().as_uri())
    history = client.get_metric_history(run_id, "val_top1")
    assert [(m.step, m.value) for m in history] == [(r["epoch"], r["val_top1"]) for r in _rows(run)]
    summary = json.loads((run / "summary.json").read_text())
    logged = client.get_run(run_id)
    assert logged.data.metrics["final/test_top1"] == summary["test_top1"]
    assert json.loads(logged.data.params["model"]) == "resnet10t" and logged.info.status == "FINISHED"
    assert len(client.search_runs([logged.info.experiment_id])) == 1  # the resume continued the same run


def _wandb_records(path):
    """The protobuf records of an offline W&B run file: a 7-byte header, then LevelDB-log blocks of 32 KiB whose
    chunks (checksum, length, type) join into records (wandb-core writes it; the Python package no longer reads it)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, pending, block = path.read_bytes(), 7, b"", 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block  # a block's tail too short for a chunk header is padding
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            break
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _finished_wandb_records(path, timeout: float = 60.0):
    """The run file's records once W&B's service process has written the closing exit record: `run.finish()` can
    return while the service is still writing the file (seen once under load: history not yet there)."""
    from google.protobuf.message import DecodeError

    deadline = time.monotonic() + timeout
    while True:
        try:
            records = list(_wandb_records(path))
        except DecodeError:  # the service is midway through a record
            records = []
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def _item(item):
    return item.key or "/".join(item.nested_key), json.loads(item.value_json)


def test_wandb_offline_holds_every_epoch_the_config_and_the_summary(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline is fofakd's default
    run = tmp_path / "run"
    assert main(["train", "--model", "resnet10t", "--out", str(run), *TINY, "--epochs", "2", "--tracker",
                 "wandb"]) == 0
    records = _finished_wandb_records(next((run / "wandb").glob("offline-run-*/run-*.wandb")))
    history = [dict(map(_item, r.history.item)) for r in records if r.WhichOneof("record_type") == "history"]
    assert [(h["_step"], h["val_top1"]) for h in history] == [(r["epoch"], r["val_top1"]) for r in _rows(run)]
    summary = {k: v for r in records if r.WhichOneof("record_type") == "summary"
               for k, v in map(_item, r.summary.update)}
    assert summary["final/test_top1"] == json.loads((run / "summary.json").read_text())["test_top1"]
    config = {k: v for r in records if r.WhichOneof("record_type") == "run" for k, v in map(_item, r.run.config.update)}
    assert config["model"] == "resnet10t" and config["epochs"] == 2


def test_an_unknown_tracker_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--model", "resnet10t", "--tracker", "neptune", "--out", str(tmp_path / "r")])
    assert stop.value.code == 2 and "invalid choice: 'neptune'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
