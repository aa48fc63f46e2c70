"""本物のサーバーを使う分散実行のテスト: PostgreSQL を共有する 3 つの Optuna ワーカーと、MLflow 追跡サーバーに同時に書く 2 つのワーカー。

PostgreSQL は環境変数 COURSE_POSTGRES_URL（CI では .ci/run が scripts/ci_postgres.sh で起動して渡す）を使い、
なければこのモジュールが scripts/ci_postgres.sh で一時サーバーを起動し、終わったら止める。
起動できないとき、CI（環境変数 CI=true）では失敗、手元ではスキップする。
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from helpers.env import project_root

ROOT = project_root()
WORKERS = ROOT / "tests" / "workers"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# ---- サーバーの起動と停止 -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def postgres_url():
    url = os.environ.get("COURSE_POSTGRES_URL")
    if url:
        yield url
        return
    script = ROOT / "scripts" / "ci_postgres.sh"
    done = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True, timeout=300)
    exports = dict(line.removeprefix("export ").split("=", 1) for line in done.stdout.splitlines()
                   if line.startswith("export "))
    if done.returncode != 0 or "COURSE_POSTGRES_URL" not in exports:
        message = f"PostgreSQL を起動できません（scripts/ci_postgres.sh start）:\n{done.stderr[-2000:]}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield exports["COURSE_POSTGRES_URL"]
    finally:
        subprocess.run(["bash", str(script), "stop", exports["COURSE_POSTGRES_DIR"]], capture_output=True,
                       timeout=120, check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(tmp_path: Path, timeout: float = 120):
    """`mlflow server` を 127.0.0.1 の空きポートで起動し（SQL の記録先 + ローカルの成果物置き場）、URL を渡す。"""
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
               "--artifacts-destination", str(tmp_path / "artifacts")]
    server = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlflow server が終了しました:\n{(tmp_path / 'server.log').read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server が {timeout} 秒で起動しません:\n{(tmp_path / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)  # uvicorn の子プロセスごと止める
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def run_workers(commands: list[list[str]], timeout: float = 240) -> list[dict]:
    """ワーカーを同時に起動し、全員の終了を待って、各自の最後の行（JSON）を返す。"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, *c], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for c in commands]
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, f"ワーカーが失敗しました:\n{err[-3000:]}"
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return outputs


# ---- Optuna + PostgreSQL ---------------------------------------------------------------------------
def test_three_workers_share_one_study_on_postgres(postgres_url):
    n_trials, name = 9, f"pg-{os.getpid()}-{time.time_ns()}"
    # study（とテーブル）は先に 1 か所で作る。ワーカーはそれを読み込んで試行を足す
    optuna.create_study(study_name=name, storage=postgres_url, direction="maximize")
    reports = run_workers([[str(WORKERS / "study_worker.py"), "--storage", postgres_url, "--study-name", name,
                            "--n-trials", str(n_trials), "--seed", str(seed)] for seed in (1, 2, 3)])

    study = optuna.load_study(study_name=name, storage=postgres_url)
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    # 予算: 合計が n_trials に届いたら止まる。届いた時に実行中だった試行（最大でワーカー数 - 1）だけ超えてよい
    assert n_trials <= len(finished) <= n_trials + 2, [t.state for t in trials]
    assert len(finished) == len(trials), "完了していない試行が残っています"
    assert sorted(t.number for t in trials) == list(range(len(trials)))  # 番号に抜けも重複もない
    # 各ワーカーが終えた試行は、ちょうど 1 つのワーカーのもので、保存された値はワーカーが計算した値と同じ
    by_worker = [{int(k): v for k, v in r["trials"].items()} for r in reports]
    assert len({r["pid"] for r in reports}) == 3 and all(by_worker), "3 つのワーカーがそれぞれ試行を実行していない"
    claimed = [n for done in by_worker for n in done]
    assert sorted(claimed) == [t.number for t in trials]
    stored = {t.number: t.value for t in trials}
    assert all(stored[number] == value for done in by_worker for number, value in done.items())
    # 最良値: ストレージの最良値 = 全試行の最大値で、どのワーカーが最後に見た最良値もそれを超えない
    assert study.best_value == max(t.value for t in finished)
    assert max(r["best_value"] for r in reports) == study.best_value
    assert -1 < study.best_value <= 1


# ---- MLflow 追跡サーバー ----------------------------------------------------------------------------
def test_two_workers_log_to_one_mlflow_server(tmp_path):
    import mlflow

    runs_per_worker = 3
    with mlflow_server(tmp_path) as url:
        reports = run_workers([[str(WORKERS / "mlflow_worker.py"), "--uri", url, "--experiment", "shared",
                                "--worker", str(w), "--runs", str(runs_per_worker)] for w in (0, 1)])
        client = mlflow.MlflowClient(tracking_uri=url)
        runs = client.search_runs([client.get_experiment_by_name("shared").experiment_id], max_results=100)
        assert sorted(r.info.run_id for r in runs) == sorted(i for r in reports for i in r["run_ids"])
        assert sorted((r.data.params["worker"], r.data.params["index"]) for r in runs) == [
            (str(w), str(i)) for w in (0, 1) for i in range(runs_per_worker)]
        for run in runs:
            assert run.info.status == "FINISHED"
            assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == list(range(5))
            local = client.download_artifacts(run.info.run_id, "result.json", str(tmp_path / run.info.run_id))
            content = json.loads(Path(local).read_text())
            assert content == {"worker": int(run.data.params["worker"]), "index": int(run.data.params["index"])}
    # 成果物はサーバーの --artifacts-destination に届いている（クライアントは HTTP で送っただけ）
    stored = sorted((tmp_path / "artifacts").rglob("result.json"))
    assert len(stored) == 2 * runs_per_worker
