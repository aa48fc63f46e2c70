"""評価指標: R²・RMSE、ドメイン間の Wasserstein 距離、ブートストラップ信頼区間。

ノートブック 05 で導入する。Wasserstein 距離はすべて、両ドメインを **source の平均と標準偏差**
で標準化してから測る（単位は「source の標準偏差いくつ分」）。
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from scipy.stats import wasserstein_distance, wasserstein_distance_nd
from sklearn.metrics import r2_score, root_mean_squared_error

log = logging.getLogger(__name__)

#: ブートストラップで一度に作る (再標本数 × 行数) の上限。メモリを抑えるため。
_MAX_BOOT_CELLS = 4_000_000


def r2(y_true, y_pred) -> float:
    """決定係数 R²。"""
    return float(r2_score(y_true, y_pred))


def rmse(y_true, y_pred) -> float:
    """二乗平均平方根誤差（scikit-learn 1.4 以降の `root_mean_squared_error`）。"""
    return float(root_mean_squared_error(y_true, y_pred))


def _as_2d(X, name: str) -> np.ndarray:
    values = np.asarray(X, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or len(values) == 0:
        raise ValueError(f"{name} は (行数, 特徴量数) の 2 次元配列で、1 行以上にしてください（形: {values.shape}）。")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} に NaN か inf があります。距離を測る前に取り除いてください。")
    return values


def standardize_by_source(X_source, X_target) -> tuple[np.ndarray, np.ndarray]:
    """両ドメインを source の平均・標準偏差で標準化する（標準偏差 0 の列は 1 で割る）。"""
    Xs, Xt = _as_2d(X_source, "X_source"), _as_2d(X_target, "X_target")
    if Xs.shape[1] != Xt.shape[1]:
        raise ValueError(f"X_source と X_target の列数が違います（{Xs.shape[1]} と {Xt.shape[1]}）。")
    mean, std = Xs.mean(axis=0), Xs.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (Xs - mean) / std, (Xt - mean) / std


def wasserstein_per_feature(X_source, X_target, feature_names: Sequence[str] | None = None) -> pd.Series:
    """特徴量ごとの 1 次元 Wasserstein 距離（source 標準偏差単位）を大きい順に返す。"""
    if feature_names is None:
        feature_names = getattr(X_source, "columns", None)
    Xs, Xt = standardize_by_source(X_source, X_target)
    if feature_names is None:
        feature_names = [f"x{i}" for i in range(Xs.shape[1])]
    if len(feature_names) != Xs.shape[1]:
        raise ValueError(f"feature_names の長さ {len(feature_names)} が列数 {Xs.shape[1]} と合いません。")
    distances = [wasserstein_distance(Xs[:, j], Xt[:, j]) for j in range(Xs.shape[1])]
    series = pd.Series(distances, index=pd.Index(list(feature_names), name="特徴量"), name="wasserstein")
    return series.sort_values(ascending=False)


def subsample_standardized(X_source, X_target, max_rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """source の統計で標準化し、各ドメインから最大 max_rows 行を seed で無作為に選ぶ（wasserstein_nd が測る行）。"""
    if max_rows < 2:
        raise ValueError(f"max_rows は 2 以上にしてください（受け取った値: {max_rows}）。")
    Xs, Xt = standardize_by_source(X_source, X_target)
    rng = np.random.default_rng(seed)
    return tuple(X[rng.choice(len(X), size=max_rows, replace=False)] if len(X) > max_rows else X for X in (Xs, Xt))


def wasserstein_nd(X_source, X_target, max_rows: int = 200, seed: int = 0) -> float:
    """多次元 Wasserstein 距離（W1、ユークリッド距離、厳密解）。

    各ドメインから最大 `max_rows` 行を seed で無作為に選んで測る。行数が少ないと同じ分布どうしでも
    0 からかなり離れる（有限標本の偏り）ので、値は source どうしの距離などと並べて読む。
    選んだ行数が両方で同じなら、一様な重みの最適輸送は点どうしの 1 対 1 の対応（割り当て問題）になるので
    `scipy.optimize.linear_sum_assignment` で解く（n=200 で数ミリ秒）。行数が違うときは線形計画の
    `scipy.stats.wasserstein_distance_nd`（n=200 で約 1 秒、行数の 3 乗ほどで増える）で解く。値はどちらも同じ。
    """
    Xs, Xt = subsample_standardized(X_source, X_target, max_rows, seed)
    log.debug("wasserstein_nd: source %d 行, target %d 行", len(Xs), len(Xt))
    if len(Xs) != len(Xt):
        return float(wasserstein_distance_nd(Xs, Xt))
    cost = cdist(Xs, Xt)  # 点どうしのユークリッド距離（n × n）
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def sliced_wasserstein(X_source, X_target, n_projections: int = 256, seed: int = 0) -> float:
    """スライス Wasserstein 距離: 無作為な単位方向へ射影した 1 次元距離の平均（全行を使っても速い）。"""
    if n_projections < 1:
        raise ValueError(f"n_projections は 1 以上にしてください（受け取った値: {n_projections}）。")
    Xs, Xt = standardize_by_source(X_source, X_target)
    directions = np.random.default_rng(seed).normal(size=(n_projections, Xs.shape[1]))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    Ps, Pt = Xs @ directions.T, Xt @ directions.T
    return float(np.mean([wasserstein_distance(Ps[:, k], Pt[:, k]) for k in range(n_projections)]))


def _check_boot(n_boot: int, alpha: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot は 1 以上にしてください（受け取った値: {n_boot}）。")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha は (0, 1) の範囲にしてください（受け取った値: {alpha}）。")


def _resample_chunks(rng: np.random.Generator, n_boot: int, n: int):
    """(再標本数, n) の添字行列を、メモリ上限を超えない大きさに分けて順に返す。"""
    step = max(1, _MAX_BOOT_CELLS // n)
    for start in range(0, n_boot, step):
        yield rng.integers(0, n, size=(min(step, n_boot - start), n))


def paired_bootstrap_r2_diff(
    y_true, pred_a, pred_b, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict[str, float]:
    """テスト行の対応ありブートストラップで R²(a) − R²(b) の差とパーセンタイル信頼区間を求める。

    同じ再標本の行で a と b を比べるので、行ごとの難しさの揺らぎが打ち消し合う。
    p_value は「差の符号が逆になる再標本の割合」の 2 倍（両側、近似）。
    """
    _check_boot(n_boot, alpha)
    y, a, b = (np.asarray(v, dtype=float).ravel() for v in (y_true, pred_a, pred_b))
    if not len(y) == len(a) == len(b) or len(y) < 2:
        raise ValueError(f"y_true, pred_a, pred_b は同じ長さ（2 以上）にしてください（{len(y)}, {len(a)}, {len(b)}）。")
    if np.ptp(y) == 0:
        raise ValueError("y_true がすべて同じ値なので R² が定義できません。")
    rng = np.random.default_rng(seed)
    diffs = []
    for idx in _resample_chunks(rng, n_boot, len(y)):
        yb = y[idx]
        ss_tot = ((yb - yb.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        ss_a = ((yb - a[idx]) ** 2).sum(axis=1)
        ss_b = ((yb - b[idx]) ** 2).sum(axis=1)
        ok = ss_tot > 0  # 全行が同じ値になった再標本（行数がごく少ないときだけ起こる）は除く
        diffs.append((ss_b[ok] - ss_a[ok]) / ss_tot[ok])  # = R²(a) − R²(b)
    diffs = np.concatenate(diffs)
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    p_value = min(1.0, 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0)))
    return {
        "diff": r2(y, a) - r2(y, b),
        "low": float(low),
        "high": float(high),
        "p_value": float(p_value),
        "n_boot": int(len(diffs)),
    }


def bootstrap_ci(values, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict[str, float]:
    """値（例: seed ごとの R²）の平均・標準偏差と、平均のブートストラップ信頼区間。"""
    _check_boot(n_boot, alpha)
    v = np.asarray(values, dtype=float).ravel()
    if len(v) == 0 or not np.isfinite(v).all():
        raise ValueError("values は 1 個以上の有限な数にしてください。")
    rng = np.random.default_rng(seed)
    means = np.concatenate([v[idx].mean(axis=1) for idx in _resample_chunks(rng, n_boot, len(v))])
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return {
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
        "low": float(low),
        "high": float(high),
        "n": int(len(v)),
    }
