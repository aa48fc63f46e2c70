"""Optuna によるハイパーパラメータ探索（ノートブック 02 で紹介し、10 の総合演習で使う）。

目的関数は **target のラベル付き行の k-fold** で測る: fold ごとに、ほかの fold を target 学習行として手法を学習し、
残した fold の R² を測る。target テスト行は一度も使わない（テスト行で選ぶとテストの R² が楽観的になる）。

探索空間は conf/hparams_search/*.yaml の `search.spaces.<手法>` に書く（define-by-run に変換する）:

    lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    d_model: {type: categorical, choices: [32, 64]}
    l2_regularization: {type: float, low: 1.0e-3, high: 10, log: true, when: {regularize: true}}

`when` は条件付きの空間: 先に提案した値が合うときだけ、そのパラメータを提案する。
ストレージは "sqlite:///path.db"（RDB）、"journal:path.log"（Journal ファイル）、または SQLAlchemy の URL
（例: "postgresql+psycopg://user@host:5432/db"）。同じ study 名でもう一度呼ぶと続きから再開し、n_trials に
届くまでの残りだけを実行する。同じ study に何個のプロセスがつないでも、終わった試行の合計が n_trials に届いた
ところで各プロセスは止まる（実行中だった試行の分だけ、合計が少し超えることがある）。
RDB では heartbeat_interval を渡すと、途中で落ちたプロセスの試行を grace_period 後に FAIL にし、同じパラメータで
やり直す（RetryHeartbeatStaleTrialCallback）。
"""
from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from sklearn.model_selection import KFold

from helpers.data import DomainSplit
from helpers.errors import CourseError

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random", "cmaes", "gp")
PRUNERS = ("none", "median", "hyperband")
PARAM_TYPES = ("float", "int", "categorical", "bool")
#: 予算に数える「終わった」試行（FAIL は数えない: やり直すか、もう 1 試行を足す）
FINISHED_STATES = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
JOURNAL_PREFIX = "journal:"
SQLITE_PREFIX = "sqlite:///"
#: 試行が終わるたびに呼ぶ callback（Optuna の study.optimize(callbacks=...) と同じ形）
TrialCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


class SearchError(CourseError, ValueError):
    """探索の設定（空間・ストレージ・fold 数）の誤り。"""


# ---- 分割 -------------------------------------------------------------------------------------
def fold_splits(split: DomainSplit, n_folds: int, seed: int = 0) -> list[DomainSplit]:
    """ラベル付き target 行を n_folds に分け、fold ごとの DomainSplit を返す。

    各 fold では「ほかの fold」が X_target_train、「残した fold」が X_target_test になる。
    元の target テスト行はどの fold にも入らない。
    """
    n = len(split.y_target_train)
    if not 2 <= n_folds <= n // 2:
        raise SearchError(f"search.n_folds={n_folds} は使えません（ラベル付き target 行が {n} 行なので、"
                          f"2 以上 {n // 2} 以下にしてください）。")
    folds = []
    for train, held in KFold(n_folds, shuffle=True, random_state=seed).split(np.arange(n)):
        folds.append(dataclasses.replace(
            split,
            X_target_train=split.X_target_train[train], y_target_train=split.y_target_train[train],
            target_train_ids=split.target_train_ids[train],
            X_target_test=split.X_target_train[held], y_target_test=split.y_target_train[held],
            target_test_ids=split.target_train_ids[held],
        ))
    return folds


# ---- 探索空間 ------------------------------------------------------------------------------------
def check_space(space: Mapping[str, Any], allowed: set[str] | None = None, where: str = "search.spaces") -> None:
    """探索空間の書き方を検査する（未知の型・範囲の誤り・手法にないパラメータ名）。"""
    problems = []
    for name, spec in space.items():
        kind = spec.get("type")
        if allowed is not None and name not in allowed:
            problems.append(f"{where}.{name}: この手法にないパラメータです（使える名前: {', '.join(sorted(allowed))}）")
        if kind not in PARAM_TYPES:
            problems.append(f"{where}.{name}.type={kind!r} は使えません（選べる値: {', '.join(PARAM_TYPES)}）")
        elif kind == "categorical" and not spec.get("choices"):
            problems.append(f"{where}.{name}: categorical には choices（1 つ以上）が必要です")
        elif kind in ("float", "int"):
            low, high = spec.get("low"), spec.get("high")
            if low is None or high is None or not low < high:
                problems.append(f"{where}.{name}: low < high の low と high が必要です（受け取った値: {low}, {high}）")
            elif spec.get("log") and low <= 0:
                problems.append(f"{where}.{name}: log=true では low > 0 にしてください（受け取った値: {low}）")
        for other in (spec.get("when") or {}):
            if other not in space or list(space).index(other) >= list(space).index(name):
                problems.append(f"{where}.{name}.when の {other!r} は、{name} より前に書いたパラメータにしてください")
    if problems:
        raise SearchError("探索空間に誤りがあります:\n- " + "\n- ".join(problems))


def suggest(trial: optuna.Trial, space: Mapping[str, Any]) -> dict[str, Any]:
    """空間の定義から、この試行のパラメータを define-by-run で提案する（when が合わないものは飛ばす）。"""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        when = spec.get("when") or {}
        if any(params.get(k) != v for k, v in when.items()):
            continue
        kind = spec["type"]
        if kind == "float":
            params[name] = trial.suggest_float(name, spec["low"], spec["high"], log=bool(spec.get("log", False)))
        elif kind == "int":
            params[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log", False)))
        elif kind == "bool":
            params[name] = trial.suggest_categorical(name, [False, True])
        else:
            params[name] = trial.suggest_categorical(name, list(spec["choices"]))
    return params


# ---- 目的関数 ------------------------------------------------------------------------------------
def cv_objective(split: DomainSplit, method: str, base_params: Mapping[str, Any], space: Mapping[str, Any], *,
                 n_folds: int = 3, seed: int = 0, device: str = "cpu",
                 cpu_threads: int | None = None) -> Callable[[optuna.Trial], float]:
    """target 学習行の k-fold 平均 R² を返す目的関数を作る（fold ごとに途中経過を報告し、枝刈りに使う）。

    提案された値は base_params（conf の methods.<手法>）を上書きする。空間にない値は base_params のまま。
    cpu_threads: 学習の CPU スレッド数（helpers.env.limit_threads。None なら既定）。
    """
    from helpers.env import limit_threads
    from helpers.metrics import r2
    from helpers.models import build_method

    folds = fold_splits(split, n_folds, seed)

    def objective(trial: optuna.Trial) -> float:
        params = {**base_params, **suggest(trial, space)}
        scores = []
        for k, fold in enumerate(folds):
            with limit_threads(cpu_threads):
                model = build_method(method, params, seed=seed, device=device, progress=False).fit(fold)
                scores.append(r2(fold.y_target_test, model.predict(fold.X_target_test)))
            trial.report(float(np.mean(scores)), step=k)
            if trial.should_prune():
                raise optuna.TrialPruned(f"fold {k + 1}/{n_folds} で打ち切り（平均 R² {np.mean(scores):.3f}）")
        return float(np.mean(scores))

    return objective


# ---- sampler・pruner・storage ----------------------------------------------------------------------
def make_sampler(name: str, seed: int = 0) -> optuna.samplers.BaseSampler:
    """名前から sampler を作る（tpe | random | cmaes | gp）。どれも seed で再現できる。"""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":  # 連続値以外（categorical）は独立に RandomSampler で提案される（警告は出さない）
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise SearchError(f"search.sampler={name!r} は使えません（選べる値: {', '.join(SAMPLERS)}）。")


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """名前から pruner を作る（none | median | hyperband）。"""
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":  # 最初の 3 試行は比べる相手が少ないので打ち切らない
        return optuna.pruners.MedianPruner(n_startup_trials=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    raise SearchError(f"search.pruner={name!r} は使えません（選べる値: {', '.join(PRUNERS)}）。")


def make_storage(url: str | None, *, heartbeat_interval: int | None = None, grace_period: int | None = None,
                 max_retry: int = 2) -> optuna.storages.BaseStorage | str | None:
    """"sqlite:///…" は親フォルダを作って RDB に、"journal:…" は Journal ファイルに、None はメモリに置く。
    ほかの文字列は SQLAlchemy の URL として RDB に置く（PostgreSQL なら "postgresql+psycopg://…"）。

    heartbeat_interval（秒）: RDB のとき、実行中の試行が生きていることを記録する間隔。記録が grace_period 秒
    （既定は間隔の 2 倍）途絶えた試行は、次に試行を始めるプロセスが FAIL にし、max_retry 回まで同じパラメータで
    やり直す。Journal とメモリには heartbeat がないので SearchError。
    """
    if heartbeat_interval is not None and (url is None or url.startswith(JOURNAL_PREFIX)):
        raise SearchError(f"heartbeat_interval は RDB のストレージ（sqlite:/// や postgresql+psycopg://）だけで使えます"
                          f"（受け取ったストレージ: {url!r}）。")
    if url is None:
        return None
    if url.startswith(JOURNAL_PREFIX):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url[len(JOURNAL_PREFIX):])
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if url.startswith(SQLITE_PREFIX):
        Path(url[len(SQLITE_PREFIX):]).parent.mkdir(parents=True, exist_ok=True)
    if heartbeat_interval is None:
        return url
    if heartbeat_interval < 1:
        raise SearchError(f"heartbeat_interval={heartbeat_interval} は使えません（1 以上の秒数にしてください）。")
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with warnings.catch_warnings():  # heartbeat_interval は Optuna 5 でも「実験的」（ExperimentalWarning）
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=heartbeat_interval, grace_period=grace_period or 2 * heartbeat_interval,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry))


def finished_trials(study: optuna.Study) -> int:
    """終わった（完了か打ち切りの）試行の数。再開では n_trials からこれを引いた数だけ実行する。"""
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))


# ---- MLflow -----------------------------------------------------------------------------------------
def mlflow_trial_callback(method: str, study_name: str) -> TrialCallback:
    """試行ごとに入れ子の MLflow run（親は今開いている run）を作り、値・パラメータ・途中経過を記録する。"""
    import mlflow

    from helpers.tracking import tracked_run

    def log_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        tags = {"search_study": study_name, "method": method, "trial_state": trial.state.name}
        with tracked_run(f"{method}-trial{trial.number:03d}", tags=tags, nested=True):
            mlflow.log_params({"trial_number": trial.number, **trial.params})
            for step, value in sorted(trial.intermediate_values.items()):
                mlflow.log_metric("cv_r2_running", value, step=step)
            if trial.value is not None:
                mlflow.log_metric("cv_r2", trial.value)

    return log_trial


# ---- 本体 ------------------------------------------------------------------------------------------
def run_study(split: DomainSplit, method: str, base_params: Mapping[str, Any], space: Mapping[str, Any], *,
              n_trials: int, study_name: str, storage: str | None = None, sampler: str = "tpe",
              pruner: str = "median", n_folds: int = 3, timeout: float | None = None, seed: int = 0,
              device: str = "cpu", cpu_threads: int | None = None,
              callbacks: list[TrialCallback] | None = None, heartbeat_interval: int | None = None,
              grace_period: int | None = None) -> optuna.Study:
    """1 つの手法の study を作る（あれば読み込む）か再開し、終わった試行が n_trials になるまで探索する。

    ほかのプロセスが同じ study を進めていても、合計が n_trials に届いたら止まる（MaxTrialsCallback）。
    heartbeat_interval, grace_period: make_storage を見よ（落ちたプロセスの試行をやり直す）。
    """
    check_space(space, set(base_params), where=f"search.spaces.{method}")
    study = optuna.create_study(study_name=study_name, direction="maximize",
                                storage=make_storage(storage, heartbeat_interval=heartbeat_interval,
                                                     grace_period=grace_period),
                                sampler=make_sampler(sampler, seed), pruner=make_pruner(pruner),
                                load_if_exists=True)
    remaining = n_trials - finished_trials(study)
    log.info("探索 %s: %d 試行のうち %d 試行が済み、残り %d 試行", study_name, n_trials, n_trials - remaining,
             max(remaining, 0))
    if remaining > 0:
        objective = cv_objective(split, method, base_params, space, n_folds=n_folds, seed=seed, device=device,
                                 cpu_threads=cpu_threads)
        budget = optuna.study.MaxTrialsCallback(n_trials, states=FINISHED_STATES)  # 全プロセスの合計で止める
        study.optimize(objective, n_trials=remaining, timeout=timeout, callbacks=[*(callbacks or []), budget],
                       gc_after_trial=False, show_progress_bar=False)
    return study


def best_params(study: optuna.Study) -> dict[str, Any]:
    """完了した試行のうち最良のパラメータ（完了した試行がなければ SearchError）。"""
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        raise SearchError(f"study {study.study_name!r} に完了した試行がありません（すべて打ち切りか失敗）。"
                          "search.n_trials を増やすか search.pruner=none にしてください。")
    return dict(study.best_params)
