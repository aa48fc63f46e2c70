"""helpers.ray_tune（ノートブック 02 の Ray Tune）のテスト。本物の Ray のクラスタを 1 台の中に起動する（約 20 秒）。

ノートブック 02 は quick プロファイルでは Ray を起動しないので、Ray の経路はここで確かめる。
ray（extra）がないとき、CI（環境変数 CI=true。.ci/run は --all-extras で入れる）では失敗、手元ではスキップする。
"""
from __future__ import annotations

import os

import optuna
import pytest

from helpers import ray_tune
from helpers.data import make_split, make_synthetic
from helpers.search import cv_objective

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
HGB = {"max_iter": 10, "learning_rate": 0.1, "max_leaf_nodes": 15, "min_samples_leaf": 5, "l2_regularization": 0.0}
SPACE = {"learning_rate": {"type": "float", "low": 0.05, "high": 0.3, "log": True},
         "max_leaf_nodes": {"type": "int", "low": 4, "high": 31}}


@pytest.fixture(scope="module")
def split():
    return make_split(make_synthetic(n_source=300, n_target=200, seed=0), label_fraction=0.3, min_test_rows=40, seed=0)


def test_ray_trials_score_the_same_objective_as_optuna(split, tmp_path):
    if not ray_tune.ray_available():
        if IN_CI:
            pytest.fail("CI では ray（extra）が入っているはず: uv sync --all-extras")
        pytest.skip(ray_tune.INSTALL_HINT)
    import ray

    table, best, seconds = ray_tune.tune_with_ray(split, "target_only", HGB, SPACE, storage_path=tmp_path,
                                                  num_samples=3, n_folds=2, seed=0)
    assert len(table) == 3 and not ray.is_initialized()  # 3 試行が終わり、クラスタは止めてある
    assert os.getpid() not in set(table["pid"])  # 試行は Ray のワーカープロセスで計算した
    objective = cv_objective(split, "target_only", HGB, SPACE, n_folds=2, seed=0)
    for _, row in table.iterrows():  # Ray の値は、同じ値を Optuna の目的関数に渡したときと一致する
        config = {name: row[f"config/{name}"] for name in SPACE}
        config["max_leaf_nodes"] = int(config["max_leaf_nodes"])
        assert row["cv_r2"] == pytest.approx(objective(optuna.trial.FixedTrial(config)), abs=1e-12)
    assert best in [{n: r[f"config/{n}"] for n in SPACE} for _, r in table.iterrows()]
    assert best == {n: table.loc[table["cv_r2"].idxmax(), f"config/{n}"] for n in SPACE}
    assert {"import", "ray.init", "Tuner.fit（3 試行）", "ray.shutdown"} == set(seconds)


def test_missing_ray_gives_install_hint(monkeypatch, split, tmp_path):
    monkeypatch.setattr(ray_tune, "ray_available", lambda: False)
    with pytest.raises(ray_tune.RayTuneError, match="uv sync --extra ray"):
        ray_tune.tune_with_ray(split, "target_only", HGB, SPACE, storage_path=tmp_path)
