"""落ちても失わない・悪い入力ははっきり断る、のテスト（issue 7）。

- Optuna: 試行の途中で SIGKILL されたワーカーの study を、別のワーカーが再開して予算を使い切る。
- ノートブックの parameters（papermill が渡す値）の誤りは、start() が重い処理の前に日本語の ConfigError にする。
TabDDPM の SIGKILL からの再開は tests/test_diffusion.py、MLflow の FAILED は tests/test_benchmark.py にある。
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import optuna
import pytest
from child_process import kill_when_file_appears  # tests/child_process.py

from helpers.config import ConfigError
from helpers.env import DeviceError, project_root
from helpers.notebook import start
from helpers.search import SearchError, make_storage

ROOT = project_root()
WORKER = ROOT / "tests" / "workers" / "study_worker.py"
HEARTBEAT = 1  # 秒。grace_period は既定でその 2 倍


def _worker(storage: str, name: str, n_trials: int, *extra: str) -> subprocess.Popen:
    command = [sys.executable, str(WORKER), "--storage", storage, "--study-name", name, "--n-trials", str(n_trials),
               "--heartbeat", str(HEARTBEAT), *extra]
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_worker_loses_no_finished_trial_and_a_restart_completes_the_budget(tmp_path):
    storage, name, n_trials, stall = f"sqlite:///{tmp_path}/optuna.db", "crash", 5, 2
    marker = tmp_path / "in_trial"
    proc = _worker(storage, name, n_trials, "--stall-at", str(stall), "--marker", str(marker))
    kill_when_file_appears(proc, marker, timeout=120, what=f"試行 {stall} に入る")  # 試行 0, 1 が終わり、試行 2 の途中
    killed_at = time.monotonic()

    before = {t.number: t for t in optuna.load_study(study_name=name, storage=storage).get_trials()}
    assert [t.state.name for t in before.values()] == ["COMPLETE", "COMPLETE", "RUNNING"]
    assert before[stall].params and before[stall].intermediate_values  # パラメータを決め、fold 1 を終えた途中

    # heartbeat が grace_period（2 秒）より古くなってから再開する: 再開したワーカーが試行 2 を FAIL にしてやり直す
    time.sleep(max(0.0, 2 * HEARTBEAT + 0.5 - (time.monotonic() - killed_at)))
    restarted = _worker(storage, name, n_trials)
    out, err = restarted.communicate(timeout=180)
    assert restarted.returncode == 0, err[-3000:]

    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    by_number = {t.number: t for t in trials}
    for number, old in before.items():  # 終わっていた試行は値もパラメータもそのまま
        if old.state == optuna.trial.TrialState.COMPLETE:
            assert by_number[number].state == old.state
            assert (by_number[number].value, by_number[number].params) == (old.value, old.params)
    assert by_number[stall].state == optuna.trial.TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == stall]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.COMPLETE
    assert retries[0].params == before[stall].params  # 同じパラメータでやり直した
    finished = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(finished) == n_trials  # 予算を使い切った（FAIL は数えない）
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL) for t in trials)


def test_heartbeat_needs_an_rdb_storage(tmp_path):
    with pytest.raises(SearchError, match="heartbeat_interval は RDB"):
        make_storage(f"journal:{tmp_path}/optuna.log", heartbeat_interval=1)
    with pytest.raises(SearchError, match="heartbeat_interval=0"):
        make_storage(f"sqlite:///{tmp_path}/optuna.db", heartbeat_interval=0)


# ---- papermill の parameters の誤り（ノートブックの環境セル start() が断る） ------------------------------
@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"seed": "abc"}, ["trainer.seed"]),                                       # 型違い
        ({"seed": -1}, ["trainer.seed", "[0, ∞)"]),
        ({"profile": "fast"}, ["profile", "fast"]),
        ({"device": "gpu"}, ["trainer.device", "auto, cpu, cuda"]),
        ({"overrides": ["data=nope"]}, ["data/nope", "bikeshare", "synthetic"]),  # 未知のデータセット
        ({"overrides": ["data.name=nope"]}, ["data.name", "bikeshare, synthetic"]),
        ({"overrides": ["hparams_search=optuna", "search.n_trials=0"]}, ["search.n_trials", "[1, ∞)"]),
        ({"overrides": ["methods.cross_attention.n_epochs=-1"]}, ["methods.cross_attention.n_epochs", "[1, ∞)"]),
        ({"overrides": ["methods.tabddpm.steps=0"]}, ["methods.tabddpm.steps", "[1, ∞)"]),
        ({"overrides": ["data.label_fraction=1.5"]}, ["data.label_fraction", "(0, 1]"]),
    ],
    ids=["seed-type", "seed-negative", "profile", "device", "data-group", "data-name", "n_trials-0", "n_epochs-neg",
         "steps-0", "label_fraction"],
)
def test_bad_notebook_parameters_are_named_before_any_work(kwargs, fragments):
    with pytest.raises(ConfigError) as err:
        start(show=False, **kwargs)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_device_cuda_without_gpu_is_a_japanese_error(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="GPU"):
        start(device="cuda", show=False)


def test_empty_target_training_pool_after_the_split_is_named():
    from helpers.data import DataError, make_split, make_synthetic

    data = make_synthetic(n_source=100, n_target=60, seed=0)
    with pytest.raises(DataError, match="学習用が残りません。min_test_rows か target_test_fraction を小さく"):
        make_split(data, min_test_rows=60)


# ---- MLflow: 2 つのプロセスが同時に同じ実験を作る ---------------------------------------------------------
def test_setup_tracking_survives_an_experiment_created_at_the_same_time(tmp_path, monkeypatch):
    """もう 1 つのプロセスが先に実験を作った瞬間を再現する（名前で探すと「ない」のに、作ると「もうある」）。"""
    from types import SimpleNamespace

    import mlflow
    from mlflow.tracking._tracking_service.client import TrackingServiceClient

    from helpers.tracking import setup_tracking, tracked_run

    cfg = SimpleNamespace(tracking=SimpleNamespace(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
                                                   experiment_name="race"))
    previous = mlflow.get_tracking_uri()
    try:
        experiment_id = setup_tracking(cfg)  # 「もう 1 つのプロセス」が作った実験
        mlflow.set_experiment("Default")
        real, misses = TrackingServiceClient.get_experiment_by_name, iter([None, None])
        monkeypatch.setattr(TrackingServiceClient, "get_experiment_by_name",
                            lambda self, name: next(misses, real(self, name)))
        assert setup_tracking(cfg) == experiment_id
        with tracked_run("after-race") as run:
            pass
        assert run.info.experiment_id == experiment_id  # 既定の実験 0 に入らない
    finally:
        mlflow.set_tracking_uri(previous)
