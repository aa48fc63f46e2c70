"""ベースラインと FEHDA のテスト: 拡張の定義どおりか、本当に学習するか、決定的か。"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from helpers.data import make_split, make_synthetic
from helpers.metrics import r2
from helpers.models.base import DomainRegressor
from helpers.models.baselines import Pooled, SourceOnly, TargetOnly
from helpers.models.fehda import FEHDA, augment

MODELS = (SourceOnly, TargetOnly, Pooled, FEHDA)
FAST = dict(max_iter=50)  # テストを速くするため反復を減らす


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """CPU を共有する CI でも速いように OpenMP を 1 スレッドに（結果は変わらない）。"""
    with threadpool_limits(1):
        yield


def _split(concept_shift: float, covariate_shift: float = 0.5, seed: int = 0):
    data = make_synthetic(
        n_source=600, n_target=400, covariate_shift=covariate_shift, concept_shift=concept_shift, seed=seed
    )
    return make_split(data, label_fraction=0.3, min_test_rows=100, seed=seed)


@pytest.fixture(scope="module")
def shared_split():
    """source と target が同じ関数を共有する（共変量シフトだけ）。"""
    return _split(concept_shift=0.0)


@pytest.fixture(scope="module")
def fitted(shared_split):
    return {cls: cls(**FAST).fit(shared_split) for cls in MODELS}


def test_augment_equals_the_definition():
    X = np.arange(6, dtype=float).reshape(2, 3) + 1
    d = X.shape[1]
    # Daumé III (2007): source x → ⟨x, x, 0⟩, target x → ⟨x, 0, x⟩ を 1 行ずつ書き下す
    expected_source = np.array([list(row) + list(row) + [0.0] * d for row in X])
    expected_target = np.array([list(row) + [0.0] * d + list(row) for row in X])
    assert np.array_equal(augment(X, "source"), expected_source)
    assert np.array_equal(augment(X, "target"), expected_target)
    assert augment(X.astype(np.float32), "target").dtype == np.float32


@pytest.mark.parametrize("bad", ["Source", 0, "test"])
def test_augment_rejects_unknown_domain(bad):
    with pytest.raises(ValueError, match="domain は"):
        augment(np.ones((2, 2)), bad)


def test_display_names_and_interface():
    assert [cls.display_name for cls in MODELS] == ["Source only", "Target only", "Pooled", "FEHDA"]
    assert all(issubclass(cls, DomainRegressor) for cls in MODELS)


def test_hgb_settings_are_passed_through():
    model = FEHDA(max_iter=7, learning_rate=0.2, max_leaf_nodes=5, min_samples_leaf=3, l2_regularization=0.5, seed=4)
    params = model.new_regressor().get_params()
    assert {k: params[k] for k in ("max_iter", "learning_rate", "max_leaf_nodes", "min_samples_leaf")} == dict(
        max_iter=7, learning_rate=0.2, max_leaf_nodes=5, min_samples_leaf=3
    )
    assert params["l2_regularization"] == 0.5 and params["random_state"] == 4


@pytest.mark.parametrize("cls", MODELS)
def test_every_model_beats_the_mean_predictor(cls, shared_split, fitted):
    s = shared_split
    pred = fitted[cls].predict(s.X_target_test)
    assert pred.shape == (len(s.y_target_test),)
    mean_r2 = r2(s.y_target_test, np.full(len(s.y_target_test), s.y_target_train.mean()))
    assert r2(s.y_target_test, pred) > max(mean_r2, 0.0) + 0.5


def test_target_only_beats_source_only_under_strong_concept_shift():
    s = _split(concept_shift=3.0, covariate_shift=0.0)
    source = r2(s.y_target_test, SourceOnly(**FAST).fit(s).predict(s.X_target_test))
    target = r2(s.y_target_test, TargetOnly(**FAST).fit(s).predict(s.X_target_test))
    assert target > source + 0.2


@pytest.mark.parametrize("cls", MODELS)
def test_refit_is_deterministic_and_never_reads_target_test_rows(cls, shared_split, fitted):
    # テスト行を None にした分割で学習し直す: テスト行に触れれば例外、乱数が揺れれば予測が変わる
    blind = dataclasses.replace(shared_split, X_target_test=None, y_target_test=None)
    pred = cls(**FAST).fit(blind).predict(shared_split.X_target_test)
    assert np.array_equal(pred, fitted[cls].predict(shared_split.X_target_test))


@pytest.mark.parametrize("cls", [Pooled, FEHDA])
def test_target_weight_changes_the_fit_and_must_be_positive(cls, shared_split, fitted):
    heavy = cls(target_weight=20.0, **FAST).fit(shared_split).predict(shared_split.X_target_test)
    assert not np.allclose(heavy, fitted[cls].predict(shared_split.X_target_test))
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="target_weight は正の数"):
            cls(target_weight=bad)


def test_predict_before_fit_says_what_to_do():
    with pytest.raises(RuntimeError, match="fit"):
        SourceOnly().predict(np.zeros((1, 3)))
