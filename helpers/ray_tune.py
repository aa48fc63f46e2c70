"""Ray Tune で講座の探索（helpers.search と同じ空間・同じ目的関数）を動かす（ノートブック 02）。

ray は任意の依存（`uv sync --extra ray`）。Ray は 1 回の起動に、2 コアの CPU で十数秒かかる（raylet・GCS・
ダッシュボードのエージェントなど 7 つほどのプロセスを起動する）。小さな探索なら Optuna だけのほうが速い。
"""
from __future__ import annotations

import functools
import importlib.util
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from helpers.data import DomainSplit
from helpers.errors import CourseError
from helpers.search import cv_objective, suggest

# uv run の下では、Ray はワーカーも同じ `uv run ...` で起動しようとする（作業フォルダを zip で送り、そこに新しい .venv を
# 作る）。extra の ray がそこに入らず、ワーカーが「No module named 'ray'」で起動に失敗し続けて試行が止まる。
# 今の Python（.venv）をそのままワーカーに使わせる。Ray はこの変数を import のときに読むので、ray より先に設定する
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

INSTALL_HINT = "ray が入っていません。`uv sync --extra ray`（pip なら `pip install 'ray[tune]'`）で入れてください。"


class RayTuneError(CourseError, RuntimeError):
    """Ray が入っていない、または起動・実行に失敗した。"""


def ray_available() -> bool:
    """ray（extra）が import できるか。import はしない（数秒かかる）。"""
    return importlib.util.find_spec("ray") is not None


def _trial(config: dict[str, Any], split: DomainSplit, method: str, base: dict[str, Any], space: dict[str, Any],
           n_folds: int, seed: int) -> None:
    """Ray のワーカープロセスで 1 試行を計算する。値は OptunaSearch が決めて config で渡す。"""
    from ray import tune

    objective = cv_objective(split, method, base, space, n_folds=n_folds, seed=seed)
    tune.report({"cv_r2": objective(optuna.trial.FixedTrial(config)), "pid": os.getpid()})


def tune_with_ray(split: DomainSplit, method: str, base: Mapping[str, Any], space: Mapping[str, Any], *,
                  storage_path: str | Path, num_samples: int = 4, n_folds: int = 3, seed: int = 0,
                  num_cpus: int = 2) -> tuple[pd.DataFrame, dict[str, Any], dict[str, float]]:
    """1 台の中に Ray のクラスタを起動し、OptunaSearch（TPE）で num_samples 試行を探索して止める。

    返り値は (試行の表, 最良の設定, 段階ごとの秒数)。表の cv_r2 は helpers.search.cv_objective と同じ値。
    """
    if not ray_available():
        raise RayTuneError(INSTALL_HINT)
    t0 = time.perf_counter()
    import ray
    from ray import tune
    from ray._private import ray_constants
    from ray.tune.search.optuna import OptunaSearch

    if ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV:  # このモジュールより先に ray が import されていた
        raise RayTuneError("ray が helpers.ray_tune より先に import されました。uv run の下ではワーカーが起動できずに止まるので、"
                           "カーネルを再起動して helpers.ray_tune を先に import するか、環境変数 RAY_ENABLE_UV_RUN_RUNTIME_ENV=0 を設定してください。")

    seconds = {"import": time.perf_counter() - t0}
    base, space = dict(base), dict(space)
    try:
        t0 = time.perf_counter()
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        seconds["ray.init"] = time.perf_counter() - t0
        # 空間は define-by-run の関数で渡す。OptunaSearch は自分の状態を pickle で保存するので、lambda ではなく partial
        search_alg = OptunaSearch(functools.partial(suggest, space=space), metric="cv_r2", mode="max",
                                  sampler=optuna.samplers.TPESampler(seed=seed))
        tuner = tune.Tuner(
            # with_parameters: 大きな引数（データ）は Ray のオブジェクトストアに 1 回だけ置き、試行ごとに送らない
            tune.with_parameters(_trial, split=split, method=method, base=base, space=space, n_folds=n_folds, seed=seed),
            # reuse_actors: 起動済みのワーカーを次の試行に使い回す（試行ごとに helpers や sklearn を import し直さない）
            tune_config=tune.TuneConfig(search_alg=search_alg, num_samples=num_samples,
                                        max_concurrent_trials=num_cpus, reuse_actors=True),
            run_config=tune.RunConfig(name=f"{method}_tune", storage_path=str(Path(storage_path).resolve()), verbose=0),
        )
        t0 = time.perf_counter()
        results = tuner.fit()
        seconds[f"Tuner.fit（{num_samples} 試行）"] = time.perf_counter() - t0
        if results.errors:
            raise RayTuneError(f"Ray Tune の試行が {len(results.errors)} 個失敗しました: {results.errors[0]}")
        frame = results.get_dataframe()
        table = frame[[c for c in ("cv_r2", "pid", *[f"config/{name}" for name in space]) if c in frame]]  # 条件付きの値は欠けうる
        best = results.get_best_result(metric="cv_r2", mode="max").config
    except RayTuneError:
        raise
    except Exception as err:  # 混んだ CPU では raylet の起動待ちが時間切れになることがある
        raise RayTuneError(f"Ray を起動・実行できませんでした（{type(err).__name__}: {str(err)[:300]}）。"
                           "CPU が空いているときに実行し直してください。") from err
    finally:
        t0 = time.perf_counter()
        ray.shutdown()  # raylet などの Ray のプロセスを止める（止めないとノートブックを閉じても残る）
        seconds["ray.shutdown"] = time.perf_counter() - t0
    return table, best, seconds
