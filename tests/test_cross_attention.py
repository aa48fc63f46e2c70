"""helpers/models/cross_attention.py のテスト: 精度・自分のラベルを見ないこと・top-m・決定性・引数検査。"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.metrics import r2_score

from helpers.data import make_split, make_synthetic
from helpers.models.cross_attention import CrossAttentionRegressor, _Network
from helpers.models.fehda import FEHDA

SMALL = {
    "d_model": 32, "d_key": 8, "top_m": 8, "n_epochs": 25, "batch_size": 128, "lr": 3e-3, "patience": 8,
    "max_source_rows": 400, "gbdt_blend": 0.0, "progress": False, "device": "cpu",
}


@pytest.fixture(scope="module")
def split():
    data = make_synthetic(n_source=600, n_target=400, n_features=5, seed=0)
    return make_split(data, label_fraction=0.2, min_test_rows=50, seed=0)


@pytest.fixture(scope="module")
def model(split):
    return CrossAttentionRegressor(**SMALL, seed=0).fit(split)


def test_beats_mean_predictor(split, model):
    pred = model.predict(split.X_target_test)
    mean_r2 = r2_score(split.y_target_test, np.full_like(split.y_target_test, split.y_target_train.mean()))
    r2 = r2_score(split.y_target_test, pred)
    assert r2 > 0.6 and r2 > mean_r2 + 0.6, (r2, mean_r2)
    # 学習の記録: エポックごとに train_loss と val_loss
    assert len(model.history) >= 1 and {"epoch", "train_loss", "val_loss"} <= set(model.history[0])
    assert 1 <= model.best_epoch_ <= len(model.history)
    assert model.domain_bias_.shape == (2, 2)


def test_memory_holds_only_labelled_rows(split, model):
    """記憶 = source（max_source_rows 行）+ ラベル付き target 全行。テスト行もラベルなし行も入らない。"""
    assert set(model.memory_ids_).isdisjoint(split.target_test_ids)
    assert set(model.memory_ids_).isdisjoint(split.target_unlabeled_ids)
    used = model.source_index_
    assert len(used) == SMALL["max_source_rows"] < len(split.y_source)
    np.testing.assert_array_equal(model.memory_X_, np.vstack([split.X_source[used], split.X_target_train]))
    np.testing.assert_array_equal(model.memory_y_, np.concatenate([split.y_source[used], split.y_target_train]))
    np.testing.assert_array_equal(model.memory_ids_, np.concatenate([split.source_ids[used], split.target_train_ids]))
    assert model.memory_domain_.tolist() == [0] * len(used) + [1] * len(split.y_target_train)


def test_fit_ignores_target_test_rows(split, model):
    """target テスト行の X と y を壊しても、学習結果（予測）は 1 ビットも変わらない。"""
    rng = np.random.default_rng(1)
    broken = dataclasses.replace(
        split,
        X_target_test=rng.normal(size=split.X_target_test.shape).astype(np.float32),
        y_target_test=rng.normal(size=split.y_target_test.shape).astype(np.float32),
    )
    other = CrossAttentionRegressor(**SMALL, seed=0).fit(broken)
    np.testing.assert_array_equal(other.predict(split.X_target_test), model.predict(split.X_target_test))


def test_deterministic_for_a_seed(split, model):
    again = CrossAttentionRegressor(**SMALL, seed=0).fit(split)
    np.testing.assert_array_equal(again.predict(split.X_target_test), model.predict(split.X_target_test))
    assert again.history == model.history
    different = CrossAttentionRegressor(**SMALL, seed=1).fit(split)
    assert not np.array_equal(different.predict(split.X_target_test), model.predict(split.X_target_test))


def test_row_never_sees_its_own_label(split, model):
    """記憶の行をクエリにするとき（学習中と同じ exclude）、自分のラベルを変えても予測は同じ、近傍のラベルなら変わる。"""
    i = len(model.source_index_) + 3  # ラベル付き target 行の 1 つ
    x = model.memory_X_[i:i + 1]
    # 除外しなければ自分自身が最も近い近傍になる（だから除外が必要で、このテストは落ちうる）
    assert model.attention(x)["memory_index"].iloc[0] == i
    table = model.attention(x, exclude=[i])
    assert i not in set(table["memory_index"])
    before = model.predict_rows(x, exclude=[i])
    y_orig = model.memory_y_.copy()
    try:
        model.memory_y_[i] += 10.0
        np.testing.assert_array_equal(model.predict_rows(x, exclude=[i]), before)
        assert not np.array_equal(model.predict_rows(x), model.predict_rows(x, exclude=[i]))
        neighbour = table["memory_index"].iloc[0]
        model.memory_y_[neighbour] += 10.0
        assert abs(model.predict_rows(x, exclude=[i])[0] - before[0]) > 1e-3
    finally:
        model.memory_y_[:] = y_orig


def test_training_does_not_leak_own_label(monkeypatch):
    """ラベルが純粋な雑音なら、自分のラベルを見ない限り学習損失は分散 (≈1) 近くに留まる。

    対照として除外を無効にすると（自分が記憶の中にいる）、損失は大きく下がる。
    """
    rng = np.random.default_rng(0)
    data = make_synthetic(n_source=300, n_target=260, n_features=4, seed=0)
    noise = dataclasses.replace(data, y=rng.normal(size=len(data.y)))
    split = make_split(noise, label_fraction=0.5, min_test_rows=50, seed=0)
    params = {**SMALL, "n_epochs": 15, "val_fraction": 0.0, "temperature": 0.1}
    honest = CrossAttentionRegressor(**params).fit(split)
    original = _Network.select
    monkeypatch.setattr(_Network, "select", lambda self, *a, exclude=None: original(self, *a, exclude=None))
    leaky = CrossAttentionRegressor(**params).fit(split)
    honest_loss, leaky_loss = honest.history[-1]["train_loss"], leaky.history[-1]["train_loss"]
    assert honest_loss > 0.7, honest_loss
    assert leaky_loss < 0.5 * honest_loss, (leaky_loss, honest_loss)


def test_only_top_m_rows_matter(split, model):
    """各クエリで重みが 0 でない記憶行はちょうど top_m 行。それ以外の行のラベルは予測に効かない。"""
    x = split.X_target_test[:5]
    table = model.attention(x)
    counts = table.groupby("query").size()
    assert (counts == SMALL["top_m"]).all()
    assert (table["weight"] > 0).all()
    np.testing.assert_allclose(table.groupby("query")["weight"].sum(), 1.0, rtol=1e-5)
    before = model.predict(x[:1])
    chosen = set(table.loc[table["query"] == 0, "memory_index"])
    others = np.setdiff1d(np.arange(len(model.memory_y_)), list(chosen))
    y_orig = model.memory_y_.copy()
    try:
        model.memory_y_[others] += 10.0
        np.testing.assert_array_equal(model.predict(x[:1]), before)
        model.memory_y_[min(chosen)] += 10.0
        assert abs(model.predict(x[:1])[0] - before[0]) > 1e-3
    finally:
        model.memory_y_[:] = y_orig


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("d_model", 0), ("top_m", 0), ("n_epochs", 1.5), ("batch_size", -1), ("lr", 0.0), ("dropout", 1.0),
        ("target_weight", -2.0), ("temperature", 0), ("val_fraction", 1.0), ("gbdt_blend", 1.5), ("patience", 0),
        ("device", "tpu"), ("cpu_threads", 0), ("weight_decay", float("nan")), ("max_source_rows", 0),
        ("d_key", "8"), ("seed", -1),
    ],
)
def test_bad_arguments_raise_japanese_errors(name, value):
    with pytest.raises(ValueError, match=name) as info:
        CrossAttentionRegressor(**{name: value})
    assert "してください" in str(info.value)


def test_predict_checks_shape_and_fitted(split, model):
    with pytest.raises(RuntimeError, match="fit"):
        CrossAttentionRegressor().predict(split.X_target_test)
    with pytest.raises(ValueError, match="X"):
        model.predict(split.X_target_test[:, :2])


def test_gbdt_blend_mixes_predictions(split, model):
    """gbdt_blend = b なら予測 = (1 − b)·ネットワーク + b·FEHDA（同じ seed）。"""
    blended = CrossAttentionRegressor(**{**SMALL, "gbdt_blend": 0.3}, seed=0).fit(split)
    X_test = split.X_target_test
    nn_only = blended.predict_rows(X_test)
    np.testing.assert_array_equal(nn_only, model.predict(X_test))
    fehda = FEHDA(seed=0).fit(split).predict(X_test)
    assert not np.allclose(nn_only, fehda)
    np.testing.assert_allclose(blended.predict(X_test), 0.7 * nn_only + 0.3 * fehda, rtol=1e-5, atol=1e-5)
