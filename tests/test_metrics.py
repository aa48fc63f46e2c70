"""helpers.metrics のテスト: 既知の値、標準化の仕方、ブートストラップの正しさと再現性。"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import gamma
from scipy.stats import wasserstein_distance, wasserstein_distance_nd
from sklearn.metrics import r2_score

from helpers import metrics


def test_r2_and_rmse_known_values():
    y, pred = [1.0, 2.0, 3.0], [1.0, 2.0, 4.0]
    assert metrics.rmse(y, pred) == pytest.approx(math.sqrt(1 / 3))
    assert metrics.r2(y, pred) == pytest.approx(1 - 1 / 2)  # SS_res = 1, SS_tot = 2


def test_w1_of_a_shifted_sample_equals_the_shift_in_source_std_units():
    x = np.random.default_rng(0).normal(size=(2000, 1))
    x = (x - x.mean()) / x.std()  # source の標準偏差をちょうど 1 に
    dist = metrics.wasserstein_per_feature(x, x + 0.7)
    assert dist.iloc[0] == pytest.approx(0.7, abs=1e-12)


def test_identical_samples_give_zero_distance():
    X = np.random.default_rng(1).normal(size=(300, 3))
    assert (metrics.wasserstein_per_feature(X, X) == 0).all()
    assert metrics.sliced_wasserstein(X, X) == pytest.approx(0, abs=1e-12)
    assert metrics.wasserstein_nd(X[:80], X[:80], max_rows=80) == pytest.approx(0, abs=1e-9)


def test_standardisation_uses_the_source_std_not_the_target_std():
    rng = np.random.default_rng(2)
    xs = 5 + 2.0 * rng.normal(size=1000)  # source: 標準偏差約 2
    xt = 9 + 0.5 * rng.normal(size=800)  # target: 標準偏差約 0.5
    expected = wasserstein_distance(xs, xt) / xs.std()  # W1 は尺度に比例し、共通の平行移動では変わらない
    got = metrics.wasserstein_per_feature(xs[:, None], xt[:, None]).iloc[0]
    assert got == pytest.approx(expected, rel=1e-12)
    assert got != pytest.approx(wasserstein_distance(xs, xt) / xt.std(), rel=0.1)


def test_per_feature_is_named_and_sorted_descending():
    rng = np.random.default_rng(3)
    Xs = pd.DataFrame(rng.normal(size=(500, 3)), columns=["a", "b", "c"])
    Xt = Xs + np.array([0.1, 2.0, 0.5])
    dist = metrics.wasserstein_per_feature(Xs, Xt)
    assert list(dist.index) == ["b", "c", "a"]
    assert dist.is_monotonic_decreasing
    named = metrics.wasserstein_per_feature(Xs.to_numpy(), Xt.to_numpy(), feature_names=["p", "q", "r"])
    assert list(named.index) == ["q", "r", "p"]


def test_sliced_equals_exact_in_one_dimension():
    rng = np.random.default_rng(4)
    xs, xt = rng.normal(size=(400, 1)), 1.5 * rng.normal(size=(300, 1)) + 0.3
    # 1 次元では単位方向は ±1 だけで、W1 は符号反転で変わらない
    assert metrics.sliced_wasserstein(xs, xt, n_projections=8) == pytest.approx(
        metrics.wasserstein_per_feature(xs, xt).iloc[0], rel=1e-12
    )


def test_sliced_of_a_translation_matches_the_closed_form():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 2))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    delta = np.array([1.0, -2.0])
    # 平行移動なら射影ごとの距離は |θ·δ|。単位球面上で E|θ_1| = Γ(d/2) / (√π Γ((d+1)/2))
    d = 2
    expected = np.linalg.norm(delta) * gamma(d / 2) / (math.sqrt(math.pi) * gamma((d + 1) / 2))
    assert metrics.sliced_wasserstein(X, X + delta, n_projections=2000) == pytest.approx(expected, rel=0.03)


def test_nd_of_a_translation_equals_the_shift_norm():
    X = np.random.default_rng(6).normal(size=(60, 3))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    delta = np.array([0.5, 0.0, -1.0])
    # ユークリッド距離の W1 は平均の差のノルム以上で、恒等対応がそれを達成する
    assert metrics.wasserstein_nd(X, X + delta, max_rows=100) == pytest.approx(np.linalg.norm(delta), rel=1e-6)


def test_nd_subsamples_at_most_max_rows_and_is_seeded(monkeypatch):
    shapes = []
    real = metrics.wasserstein_distance_nd

    def spy(u, v):
        shapes.append((u.shape, v.shape))
        return real(u, v)

    monkeypatch.setattr(metrics, "wasserstein_distance_nd", spy)
    rng = np.random.default_rng(7)
    Xs, Xt = rng.normal(size=(300, 4)), rng.normal(size=(30, 4)) + 1
    first = metrics.wasserstein_nd(Xs, Xt, max_rows=40, seed=0)
    assert shapes == [((40, 4), (30, 4))]
    assert metrics.wasserstein_nd(Xs, Xt, max_rows=40, seed=0) == first
    assert metrics.wasserstein_nd(Xs, Xt, max_rows=40, seed=1) != first


def test_nd_equal_sizes_solve_the_assignment_problem_with_the_same_value_as_scipy(monkeypatch):
    # 行数が同じなら割り当て問題（linear_sum_assignment）で解き、SciPy の線形計画と同じ値になる
    rng = np.random.default_rng(11)
    Xs, Xt = rng.normal(size=(60, 5)), rng.normal(size=(60, 5)) * 1.5 + 0.4
    Zs, Zt = metrics.standardize_by_source(Xs, Xt)
    expected = wasserstein_distance_nd(Zs, Zt)
    calls = []
    monkeypatch.setattr(metrics, "wasserstein_distance_nd", lambda u, v: calls.append(1))
    assert metrics.wasserstein_nd(Xs, Xt, max_rows=60) == pytest.approx(expected, rel=1e-12)
    assert not calls  # 線形計画は使っていない


def _toy_predictions(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    pred_a = y + 0.3 * rng.normal(size=n)  # 母集団の R² ≈ 1 − 0.09
    pred_b = y + 0.6 * rng.normal(size=n)  # 母集団の R² ≈ 1 − 0.36
    return y, pred_a, pred_b


def test_paired_bootstrap_contains_the_true_difference():
    y, a, b = _toy_predictions()
    res = metrics.paired_bootstrap_r2_diff(y, a, b, n_boot=1000, seed=0)
    true_diff = 0.36 - 0.09
    assert res["low"] < true_diff < res["high"]
    assert res["low"] < res["diff"] < res["high"]
    assert res["diff"] == pytest.approx(r2_score(y, a) - r2_score(y, b))
    assert res["low"] > 0 and res["p_value"] < 0.01
    assert res["n_boot"] == 1000


def test_paired_bootstrap_matches_a_plain_loop():
    y, a, b = _toy_predictions(n=50, seed=1)
    res = metrics.paired_bootstrap_r2_diff(y, a, b, n_boot=200, seed=3, alpha=0.1)
    idx = np.random.default_rng(3).integers(0, 50, size=(200, 50))
    diffs = [r2_score(y[i], a[i]) - r2_score(y[i], b[i]) for i in idx]
    assert res["low"] == pytest.approx(np.quantile(diffs, 0.05), rel=1e-10)
    assert res["high"] == pytest.approx(np.quantile(diffs, 0.95), rel=1e-10)


def test_paired_bootstrap_is_reproducible_and_chunking_does_not_change_it(monkeypatch):
    y, a, b = _toy_predictions(n=300, seed=2)
    first = metrics.paired_bootstrap_r2_diff(y, a, b, n_boot=500, seed=11)
    assert metrics.paired_bootstrap_r2_diff(y, a, b, n_boot=500, seed=11) == first
    assert metrics.paired_bootstrap_r2_diff(y, a, b, n_boot=500, seed=12) != first
    monkeypatch.setattr(metrics, "_MAX_BOOT_CELLS", 300 * 7)  # 7 再標本ずつ
    assert metrics.paired_bootstrap_r2_diff(y, a, b, n_boot=500, seed=11) == first


def test_paired_bootstrap_of_identical_predictions_is_zero():
    y, a, _ = _toy_predictions(n=100)
    res = metrics.paired_bootstrap_r2_diff(y, a, a, n_boot=100)
    assert res["diff"] == res["low"] == res["high"] == 0
    assert res["p_value"] == 1


def test_bootstrap_ci_of_the_mean():
    values = [0.80, 0.82, 0.85, 0.79, 0.84]
    res = metrics.bootstrap_ci(values, n_boot=2000, seed=0)
    assert res["mean"] == pytest.approx(np.mean(values))
    assert res["std"] == pytest.approx(np.std(values, ddof=1))
    assert min(values) <= res["low"] < res["mean"] < res["high"] <= max(values)
    assert metrics.bootstrap_ci(values, n_boot=2000, seed=0) == res
    constant = metrics.bootstrap_ci([0.5, 0.5, 0.5])
    assert constant["low"] == constant["high"] == 0.5


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: metrics.wasserstein_per_feature(np.ones((5, 2)), np.ones((5, 3))), "列数が違います"),
        (lambda: metrics.wasserstein_per_feature(np.full((5, 1), np.nan), np.ones((5, 1))), "NaN か inf"),
        (lambda: metrics.wasserstein_nd(np.ones((5, 2)), np.ones((5, 2)), max_rows=1), "max_rows は 2 以上"),
        (lambda: metrics.sliced_wasserstein(np.ones((5, 2)), np.ones((5, 2)), n_projections=0), "n_projections は 1 以上"),
        (lambda: metrics.paired_bootstrap_r2_diff([1, 2, 3], [1, 2], [1, 2, 3]), "同じ長さ"),
        (lambda: metrics.paired_bootstrap_r2_diff([1, 2, 3], [1, 2, 3], [1, 2, 3], alpha=1.5), r"alpha は \(0, 1\)"),
        (lambda: metrics.bootstrap_ci([0.1, 0.2], n_boot=0), "n_boot は 1 以上"),
    ],
)
def test_bad_input_gives_a_japanese_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
