"""Optuna の探索（helpers.search と helpers.benchmark.tune）のテスト。

小さな合成データと少ない木の HistGradientBoosting で、fold が target テスト行を使わないこと、条件付きの空間、
再開、探索の結果がベンチマークの設定に入ること、MLflow の入れ子の run を確かめる。
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import optuna
import pandas as pd
import pytest

from helpers import benchmark
from helpers.config import compose_config
from helpers.data import make_split, make_synthetic
from helpers.env import project_root
from helpers.search import (
    SearchError,
    check_space,
    cv_objective,
    fold_splits,
    run_study,
    suggest,
)

HGB = {"max_iter": 10, "learning_rate": 0.1, "max_leaf_nodes": 15, "min_samples_leaf": 5,
       "l2_regularization": 0.0}
SPACE = {"learning_rate": {"type": "float", "low": 0.05, "high": 0.3, "log": True},
         "max_leaf_nodes": {"type": "int", "low": 4, "high": 31}}
TINY = [
    "data=synthetic", "data.synthetic.n_source=300", "data.synthetic.n_target=200", "data.min_test_rows=40",
    "data.label_fraction=0.3", *(f"methods.{m}.max_iter=10" for m in ("source_only", "target_only", "pooled", "fehda")),
    "benchmark.n_boot=100", "tracking.enabled=false", "trainer.progress=false",
]


@pytest.fixture(scope="module")
def split():
    data = make_synthetic(n_source=300, n_target=200, seed=0)
    return make_split(data, label_fraction=0.3, min_test_rows=40, seed=0)


def test_folds_cover_labelled_rows_and_never_touch_target_test(split):
    folds = fold_splits(split, 3, seed=0)
    held = np.concatenate([f.target_test_ids for f in folds])
    assert sorted(held) == sorted(split.target_train_ids)  # 各ラベル付き行はちょうど 1 回だけ検証に使う
    for fold in folds:
        assert not set(fold.target_test_ids) & set(fold.target_train_ids)
        assert not set(fold.target_test_ids) & set(split.target_test_ids)
        assert not set(fold.target_train_ids) & set(split.target_test_ids)
    with pytest.raises(SearchError, match="search.n_folds=1"):
        fold_splits(split, 1)


def test_objective_does_not_read_target_test_labels(split):
    # target テストのラベルを NaN にしても、目的関数の値は変わらない（読んでいない）
    blind = dataclasses.replace(split, y_target_test=np.full_like(split.y_target_test, np.nan))
    values = [cv_objective(s, "target_only", HGB, SPACE, n_folds=2)(optuna.trial.FixedTrial(
        {"learning_rate": 0.1, "max_leaf_nodes": 8})) for s in (split, blind)]
    assert np.isfinite(values[0]) and values[0] == values[1]


def test_conditional_space_suggests_only_when_condition_holds():
    space = {"regularize": {"type": "bool"},
             "l2_regularization": {"type": "float", "low": 0.01, "high": 1.0, "log": True,
                                   "when": {"regularize": True}}}
    assert suggest(optuna.trial.FixedTrial({"regularize": False}), space) == {"regularize": False}
    assert suggest(optuna.trial.FixedTrial({"regularize": True, "l2_regularization": 0.1}), space) == {
        "regularize": True, "l2_regularization": 0.1}


@pytest.mark.parametrize(("space", "fragment"), [
    ({"learning_rat": {"type": "float", "low": 0.1, "high": 0.2}}, "learning_rat: この手法にない"),
    ({"learning_rate": {"type": "uniform", "low": 0.1, "high": 0.2}}, "type='uniform'"),
    ({"learning_rate": {"type": "float", "low": 0.2, "high": 0.1}}, "low < high"),
    ({"learning_rate": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, "log=true"),
    ({"max_iter": {"type": "categorical", "choices": []}}, "choices"),
    ({"learning_rate": {"type": "float", "low": 0.1, "high": 0.2, "when": {"max_iter": 10}}}, "より前"),
])
def test_bad_spaces_are_named(space, fragment):
    with pytest.raises(SearchError, match=fragment.replace("(", r"\(")):
        check_space(space, set(HGB), where="search.spaces.target_only")


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_study_resumes_up_to_n_trials(split, tmp_path, storage):
    url = f"sqlite:///{tmp_path}/db/optuna.db" if storage == "sqlite" else f"journal:{tmp_path}/j/optuna.log"
    kwargs = dict(study_name="resume", storage=url, n_folds=2, pruner="none")
    first = run_study(split, "target_only", HGB, SPACE, n_trials=2, **kwargs)
    assert len(first.trials) == 2
    again = run_study(split, "target_only", HGB, SPACE, n_trials=3, **kwargs)  # 残りの 1 試行だけ
    assert [t.number for t in again.trials] == [0, 1, 2]
    assert again.trials[0].params == first.trials[0].params
    assert len(run_study(split, "target_only", HGB, SPACE, n_trials=3, **kwargs).trials) == 3  # 済み: 何もしない


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", "gp"])
def test_samplers_are_seeded(split, sampler):
    runs = [run_study(split, "target_only", HGB, SPACE, n_trials=3, study_name=f"s{i}", sampler=sampler,
                      pruner="none", n_folds=2) for i in range(2)]
    assert [t.params for t in runs[0].trials] == [t.params for t in runs[1].trials]


def test_tune_applies_best_params_and_writes_tables(tmp_path):
    cfg = compose_config([*TINY, "hparams_search=optuna", "search.methods=[target_only,fehda]", "search.n_trials=3",
                          "search.n_folds=2", f"search.storage=sqlite:///{tmp_path}/optuna.db"])
    tuned, summary = benchmark.tune(cfg, tmp_path)
    assert list(summary["method"]) == ["target_only", "fehda"]
    for row in summary.itertuples():
        for key, value in json.loads(row.best_params).items():
            assert tuned.methods[row.method][key] == value
    assert cfg.methods.fehda.learning_rate == 0.1  # 元の設定は変えない
    trials = pd.read_csv(tmp_path / "search_trials.csv")
    assert len(trials) == 6 and set(trials["method"]) == {"target_only", "fehda"}
    # 同じ条件なら同じ study 名（再開できる）、空間を変えれば別の study
    assert benchmark.study_name_for(cfg, "fehda") == summary["study_name"].iloc[1]
    other = compose_config([*TINY, "hparams_search=optuna", "search.n_folds=3"])
    assert benchmark.study_name_for(other, "fehda") != summary["study_name"].iloc[1]


def test_cli_search_then_benchmark(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "helpers.benchmark", *TINY, "hparams_search=optuna", "search.methods=[target_only]",
         "search.n_trials=2", "search.n_folds=2", f"search.storage=journal:{tmp_path}/optuna.log",
         "benchmark.methods=[source_only,target_only]", f"hydra.run.dir={out}"],
        cwd=project_root(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "search.csv").exists() and (out / "results.csv").exists()
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "ハイパーパラメータ探索（Optuna）" in report


def test_trials_are_nested_mlflow_runs(tmp_path):
    import mlflow

    from helpers.tracking import setup_tracking, tracked_run

    cfg = compose_config([*TINY, "hparams_search=optuna", "search.methods=[target_only]", "search.n_trials=2",
                          "search.n_folds=2", "search.storage=null", "tracking.enabled=true",
                          f"tracking.tracking_uri=sqlite:///{tmp_path}/mlruns/mlflow.db",
                          "tracking.experiment_name=search"])
    previous = mlflow.get_tracking_uri()
    try:
        setup_tracking(cfg)
        with tracked_run("parent") as parent:
            benchmark.tune(cfg, track=True)
        runs = mlflow.search_runs(experiment_names=["search"], output_format="list")
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert len(children) == 2
        assert all(-1 < c.data.metrics["cv_r2"] <= 1 and "learning_rate" in c.data.params for c in children)
    finally:
        mlflow.set_tracking_uri(previous)
