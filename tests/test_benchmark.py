"""ベンチマーク（helpers.benchmark）と MLflow の記録（helpers.tracking）のテスト。

小さな合成データと HistGradientBoosting の手法だけで、表の形・分割の同一性・再開・CLI・MLflow の run を確かめる。
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from helpers import benchmark
from helpers.benchmark import (
    KEY,
    BenchmarkError,
    check_config,
    run_and_track,
    run_benchmark,
)
from helpers.config import ConfigError, compose_config
from helpers.env import project_root
from helpers.metrics import r2

METHODS = ["source_only", "target_only", "fehda"]
TINY = [
    "data=synthetic", "data.synthetic.n_source=300", "data.synthetic.n_target=200", "data.min_test_rows=40",
    *(f"methods.{m}.max_iter=10" for m in ("source_only", "target_only", "pooled", "fehda")),
    "benchmark.n_boot=200", "tracking.enabled=false", "trainer.progress=false",
]


def tiny_config(*overrides: str):
    return compose_config([*TINY, f"benchmark.methods=[{','.join(METHODS)}]", "benchmark.seeds=[0,1]",
                           "benchmark.label_fractions=[0.1,0.3]", *overrides])


@pytest.fixture(scope="module", autouse=True)
def small_and_single_threaded():
    """テストを速くする: 厳密な多変量 Wasserstein 距離（遅い）は少ない行で測り、OpenMP は 1 スレッドにする
    （2 コアを他のプロセスと分け合うと、HistGradientBoosting の OpenMP スレッドが待ち合わせで何倍も遅くなる）。"""
    from threadpoolctl import threadpool_limits

    with pytest.MonkeyPatch.context() as mp, threadpool_limits(limits=1, user_api="openmp"):
        mp.setattr(benchmark, "ND_MAX_ROWS", 50)
        yield


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    calls = []
    results = run_benchmark(tiny_config(), out, on_result=lambda row, model: calls.append((row, model)))
    return out, results, calls


def test_one_row_per_method_seed_fraction(finished):
    out, results, calls = finished
    assert len(results) == len(METHODS) * 2 * 2 == len(calls)
    assert not results.duplicated(KEY).any()
    assert set(results["method"]) == set(METHODS)
    required = {"dataset", "method", "display_name", "seed", "label_fraction", "r2", "rmse", "fit_seconds",
                "predict_seconds", "n_source", "n_target_train", "n_target_test", "device", "profile"}
    assert required <= set(results.columns)
    on_disk = pd.read_csv(out / "results.csv")
    pd.testing.assert_frame_equal(on_disk.sort_values(KEY, ignore_index=True),
                                  results.sort_values(KEY, ignore_index=True), check_dtype=False)
    # 学習するので source_only より target のラベルを使う手法のほうがよい（合成データには概念シフトがある）
    mean = results.groupby("method")["r2"].mean()
    assert mean["fehda"] > mean["source_only"]


def test_every_method_gets_the_same_split(finished):
    out, results, _ = finished
    predictions = pd.read_csv(out / "predictions.csv")
    for (seed, fraction), frame in predictions.groupby(["seed", "label_fraction"]):
        ids = {m: tuple(sorted(g["row_id"])) for m, g in frame.groupby("method")}
        assert set(ids) == set(METHODS)
        assert len(set(ids.values())) == 1, f"seed={seed}, lf={fraction} でテスト行が手法ごとに違う"
        truth = frame.pivot_table(index="row_id", columns="method", values="y_true")
        assert (truth.nunique(axis=1) == 1).all()
    # results.csv の R² は predictions.csv から計算し直した値と一致する
    for row in results.itertuples():
        rows = predictions[(predictions.seed == row.seed) & (predictions.label_fraction == row.label_fraction)
                           & (predictions.method == row.method)]
        assert r2(rows.y_true, rows.y_pred) == pytest.approx(row.r2, abs=1e-9)
    # ラベル付き行数は割合とともに増え、テスト行数は割合によらない
    sizes = results.drop_duplicates(["seed", "label_fraction"]).set_index(["seed", "label_fraction"])
    assert (sizes.xs(0.3, level=1)["n_target_train"] > sizes.xs(0.1, level=1)["n_target_train"]).all()
    assert sizes["n_target_test"].nunique() == 1


def test_shift_measured_once_per_seed(finished):
    out, _, _ = finished
    shift = pd.read_csv(out / "shift.csv")
    assert sorted(shift["seed"].unique()) == [0, 1]
    assert set(shift["comparison"]) == {"target_test", "target_pool", "source_halves"}
    assert set(shift["measure"]) == {"wasserstein_1d", "sliced_wasserstein", "wasserstein_nd"}
    assert not shift.duplicated(["seed", "comparison", "measure", "feature"]).any()
    one_d = shift[(shift.measure == "wasserstein_1d") & (shift.comparison == "target_test")]
    # 合成データは x0 だけを平均 1 ずらしている
    assert one_d.groupby("feature")["value"].mean().idxmax() == "x0"


def test_resume_skips_finished_rows_and_reruns_missing(finished, tmp_path):
    out, results, _ = finished
    for name in ("results.csv", "predictions.csv", "shift.csv"):
        (tmp_path / name).write_bytes((out / name).read_bytes())
    calls = []
    again = run_benchmark(tiny_config(), tmp_path, on_result=lambda row, model: calls.append(row))
    assert calls == []
    pd.testing.assert_frame_equal(again, results, check_dtype=False)

    # 最後の行が書かれる前に落ちた状態: その 1 件だけをやり直し、予測は重複しない
    on_disk = pd.read_csv(tmp_path / "results.csv")
    on_disk.iloc[:-1].to_csv(tmp_path / "results.csv", index=False)
    lost = on_disk.iloc[-1]
    resumed = run_benchmark(tiny_config(), tmp_path, on_result=lambda row, model: calls.append(row))
    assert [(c["seed"], c["label_fraction"], c["method"]) for c in calls] == [
        (lost.seed, lost.label_fraction, lost.method)]
    assert len(resumed) == len(results)
    assert resumed.set_index(KEY)["r2"].to_dict() == pytest.approx(results.set_index(KEY)["r2"].to_dict())
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert not predictions.duplicated([*KEY, "row_id"]).any()
    assert len(predictions) == len(pd.read_csv(out / "predictions.csv"))


def test_resume_refuses_results_from_another_config(finished, tmp_path):
    out, _, _ = finished
    (tmp_path / "results.csv").write_bytes((out / "results.csv").read_bytes())
    with pytest.raises(BenchmarkError, match="別の設定"):
        run_benchmark(tiny_config("methods.fehda.max_iter=21"), tmp_path)


# ---- CLI（Hydra アプリ） ---------------------------------------------------------------------------
def _cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("benchmark")  # pyproject の [project.scripts]
    command = [str(script)] if script.exists() else [sys.executable, "-m", "helpers.benchmark"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=project_root(), env={**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"})


def test_cli_runs_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    done = _cli(*TINY, "benchmark.methods=[fehda,target_only]", "benchmark.seeds=[0]", f"hydra.run.dir={run_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("results.csv", "predictions.csv", "shift.csv", "report.md", "report.html",
                 "figures/r2_by_method.png", ".hydra/config.yaml"):
        assert (run_dir / name).is_file(), name
    results = pd.read_csv(run_dir / "results.csv")
    assert sorted(results["method"]) == ["fehda", "target_only"]
    assert "Domain Adaptation Benchmark Report" in (run_dir / "report.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(("override", "expected"), [
    ("benchmark.n_boot=0", "benchmark.n_boot"),              # 範囲外（helpers.config.validate）
    ("benchmark.nonexistent_key=1", "nonexistent_key"),      # 未知のキー（Hydra / OmegaConf）
])
def test_cli_rejects_bad_overrides(tmp_path, override, expected):
    done = _cli(*TINY, override, f"hydra.run.dir={tmp_path}", timeout=60)
    assert done.returncode != 0
    assert expected in done.stderr
    assert not (tmp_path / "results.csv").exists()


def test_check_config_names_bad_methods_and_bad_search_spaces():
    from helpers.search import SearchError

    with pytest.raises(ConfigError, match="magic"):
        check_config(tiny_config("benchmark.methods=[fehda,magic]"))
    # 探索空間のパラメータ名は手法の設定と照らし合わせる（綴りの誤りを探索の前に見つける）
    with pytest.raises(SearchError, match="search.spaces.fehda.learning_rat"):
        check_config(tiny_config("hparams_search=optuna",
                                 "+search.spaces.fehda.learning_rat={type:float,low:0.01,high:0.1}"))
    with pytest.raises(ConfigError, match="search.spaces.source_only"):
        check_config(tiny_config("hparams_search=optuna", "search.methods=[source_only]"))
    check_config(tiny_config("hparams_search=optuna"))  # 正しい設定は通る
    check_config(tiny_config())


# ---- MLflow -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """tmp の sqlite に記録し（テーブル作成に数秒かかるので、このファイルで 1 つを共有）、終わったら元の記録先に戻す。"""
    import mlflow

    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlruns' / 'mlflow.db'}"
    yield uri
    mlflow.set_tracking_uri(previous)


def test_tracking_parent_and_children(tmp_path, mlflow_store):
    import mlflow

    overrides = ["tracking.enabled=true", f"tracking.tracking_uri={mlflow_store}", "tracking.experiment_name=test",
                 "benchmark.seeds=[0]", "benchmark.label_fractions=[0.3]", "benchmark.methods=[target_only,fehda]"]
    cfg = compose_config([*TINY, *overrides])
    run_and_track(cfg, tmp_path / "first")
    run_and_track(cfg, tmp_path / "second")  # 既存の実験でも失敗しない

    runs = mlflow.search_runs(experiment_names=["test"], output_format="list")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 2
    ids = {p.data.tags["benchmark_id"] for p in parents}
    assert len(ids) == 2, "2 回の実行が benchmark_id で区別できない"
    for parent in parents:
        assert parent.info.status == "FINISHED"
        assert parent.data.params["data.name"] == "synthetic"
        assert parent.data.params["benchmark.methods"] == "['target_only', 'fehda']"
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert sorted(c.data.tags["method"] for c in children) == ["fehda", "target_only"]
        assert all(c.data.tags["benchmark_id"] == parent.data.tags["benchmark_id"] for c in children)
        assert all(-1 < c.data.metrics["r2"] <= 1 and c.data.metrics["fit_seconds"] >= 0 for c in children)
        artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id)}
        assert {"config.yaml", "results.csv", "report.html"} <= artifacts
    # artifacts は sqlite と同じフォルダに置かれ、作業フォルダの ./mlruns には書かない
    artifact_root = Path(mlflow_store.removeprefix("sqlite:///")).parent / "artifacts" / "test"
    assert artifact_root.is_dir() and any(artifact_root.iterdir())


def test_failed_run_is_marked_failed(mlflow_store):
    import mlflow

    from helpers.tracking import setup_tracking, tracked_run

    setup_tracking(SimpleNamespace(tracking=SimpleNamespace(tracking_uri=mlflow_store, experiment_name="fail")))
    with pytest.raises(ZeroDivisionError), tracked_run("broken", tags={"benchmark_id": "x"}) as run:
        1 / 0
    assert mlflow.active_run() is None
    assert mlflow.get_run(run.info.run_id).info.status == "FAILED"


def test_training_curves_are_read_defensively(mlflow_store):
    import mlflow

    from helpers.tracking import (
        log_training_curves,
        setup_tracking,
        tracked_run,
        training_curves,
    )

    attention = SimpleNamespace(history=[{"epoch": 1, "train_loss": 0.9, "val_loss": 1.0},
                                         {"epoch": 2, "train_loss": 0.5, "val_loss": float("nan")}, "junk"])
    diffusion = SimpleNamespace(diffusion=SimpleNamespace(history_=[(100, 0.8), (200, 0.6), (1, 2, 3)]))
    assert training_curves(attention) == {"train_loss": [(1, 0.9), (2, 0.5)], "val_loss": [(1, 1.0)]}
    assert training_curves(diffusion) == {"diffusion_loss": [(100, 0.8), (200, 0.6)]}
    assert training_curves(object()) == {}

    setup_tracking(SimpleNamespace(tracking=SimpleNamespace(tracking_uri=mlflow_store, experiment_name="curves")))
    with tracked_run("curves") as run:
        assert log_training_curves(diffusion) == 2
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "diffusion_loss")
    assert [(m.step, m.value) for m in history] == [(100, 0.8), (200, 0.6)]


def test_flatten_config_is_dotted_and_truncated():
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    from helpers.tracking import flatten_config

    flat = flatten_config(tiny_config())
    assert flat["methods.fehda.max_iter"] == "10"
    assert flat["benchmark.seeds"] == "[0, 1]"
    assert flat["search"] == "None"
    assert all(isinstance(v, str) for v in flat.values())
    long = flatten_config({"a": {"b": "x" * (MAX_PARAM_VAL_LENGTH + 10)}})
    assert len(long["a.b"]) == MAX_PARAM_VAL_LENGTH


def test_fits_run_under_trainer_cpu_threads(monkeypatch):
    """trainer.cpu_threads の値で学習のスレッド数を制限する（quick プロファイルは 1）。"""
    from contextlib import contextmanager

    from threadpoolctl import threadpool_info

    seen = []
    original = benchmark.limit_threads

    @contextmanager
    def recording(n):
        with original(n):
            seen.append((n, {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "openmp"}))
            yield

    monkeypatch.setattr(benchmark, "limit_threads", recording)
    run_benchmark(tiny_config("trainer.cpu_threads=1", "benchmark.seeds=[0]", "benchmark.label_fractions=[0.3]"))
    assert seen and all(n == 1 and threads <= {1} for n, threads in seen)
    assert compose_config(["profile=quick"]).trainer.cpu_threads == 1
    assert compose_config(["profile=full"]).trainer.cpu_threads is None
