"""helpers.data のテスト: 分割の同一性、テスト行のリーク防止、Bikeshare の列、悪い入力の日本語エラー。"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from helpers.data import (
    DOMAIN_COLUMNS,
    LEAKING_COLUMNS,
    DataError,
    DomainData,
    load_bikeshare,
    load_dataset,
    make_split,
    make_synthetic,
    project_data_dir,
)

ID_FIELDS = ("source_ids", "target_train_ids", "target_unlabeled_ids", "target_test_ids")
ARRAY_FIELDS = (
    "X_source", "y_source", "X_target_train", "y_target_train", "X_target_unlabeled", "X_target_test", "y_target_test",
)


@pytest.fixture(scope="module")
def bikeshare():
    return load_bikeshare()


@pytest.fixture(scope="module")
def raw_csv():
    return pd.read_csv(project_data_dir() / "bikeshare.csv")


@pytest.fixture
def synthetic():
    return make_synthetic(n_source=300, n_target=200, seed=0)


def _split(data, **kwargs):
    kwargs.setdefault("min_test_rows", 50)
    return make_split(data, **kwargs)


def _assert_same_split(a, b):
    for name in ID_FIELDS + ARRAY_FIELDS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


# --- 分割の同一性 -------------------------------------------------------------------------------


def test_split_is_identical_across_calls_and_ignores_global_rng(synthetic):
    first = _split(synthetic, seed=3)
    np.random.seed(123)
    np.random.rand(10)  # 手法側が seed_everything しても分割は変わらないこと
    _assert_same_split(first, _split(synthetic, seed=3))
    assert not np.array_equal(first.target_test_ids, _split(synthetic, seed=4).target_test_ids)


def test_split_is_the_same_for_every_method(synthetic):
    """どの手法を学習しても、分割（配列と id）は書き換えられず、作り直しても同じ。"""
    from helpers.models.baselines import Pooled, SourceOnly, TargetOnly
    from helpers.models.fehda import FEHDA

    split = _split(synthetic, seed=1)
    before = {name: getattr(split, name).copy() for name in ID_FIELDS + ARRAY_FIELDS}
    with threadpool_limits(1):
        for cls in (SourceOnly, TargetOnly, Pooled, FEHDA):
            cls(max_iter=5).fit(split).predict(split.X_target_test)
            for name, value in before.items():
                assert np.array_equal(getattr(split, name), value), f"{cls.__name__} が {name} を書き換えた"
    _assert_same_split(split, _split(synthetic, seed=1))


def test_smaller_label_fraction_is_a_subset_and_test_rows_do_not_move(bikeshare):
    s5, s10 = make_split(bikeshare, label_fraction=0.05), make_split(bikeshare, label_fraction=0.10)
    assert set(s5.target_train_ids) < set(s10.target_train_ids)
    assert np.array_equal(s5.target_test_ids, s10.target_test_ids)
    assert np.array_equal(s5.source_ids, s10.source_ids)


def test_parts_are_disjoint_and_cover_each_domain(bikeshare):
    s = make_split(bikeshare)
    test, train, unlabeled = set(s.target_test_ids), set(s.target_train_ids), set(s.target_unlabeled_ids)
    assert not test & train and not test & unlabeled and not train & unlabeled
    assert test | train | unlabeled == set(np.flatnonzero(bikeshare.domain == 1))
    assert set(s.source_ids) == set(np.flatnonzero(bikeshare.domain == 0))


def test_bikeshare_sizes_match_the_documented_numbers(bikeshare):
    s10, s5 = make_split(bikeshare, label_fraction=0.1), make_split(bikeshare, label_fraction=0.05)
    assert (len(s10.y_source), len(s10.y_target_train), len(s10.y_target_test)) == (5911, 191, 820)
    assert len(s5.y_target_train) == 96
    assert s10.X_source.dtype == np.float32 and s10.n_features == 11


# --- 前処理がテスト行を使わないこと ---------------------------------------------------------------


def _with_rows_altered(data: DomainData, rows: np.ndarray) -> DomainData:
    X = data.X.copy()
    X.iloc[rows] = X.iloc[rows] * 7 + 1000
    return DomainData(name=data.name, X=X, y=data.y, domain=data.domain)


def test_scaler_is_not_fitted_on_target_test_rows(bikeshare):
    split = make_split(bikeshare, seed=0)
    altered = make_split(_with_rows_altered(bikeshare, split.target_test_ids), seed=0)
    assert np.array_equal(altered.target_test_ids, split.target_test_ids)
    assert np.array_equal(altered.scaler.mean_, split.scaler.mean_)
    assert np.array_equal(altered.scaler.scale_, split.scaler.scale_)
    assert np.array_equal(altered.X_source, split.X_source)
    # 検査に力があること: 学習行を変えれば平均は変わる
    moved = make_split(_with_rows_altered(bikeshare, split.target_train_ids), seed=0)
    assert not np.allclose(moved.scaler.mean_, split.scaler.mean_)


# --- Bikeshare の中身 --------------------------------------------------------------------------


def test_bikeshare_features_have_no_leaking_or_domain_columns(bikeshare):
    names = set(bikeshare.feature_names)
    assert not names & {*LEAKING_COLUMNS, *DOMAIN_COLUMNS, "bikers"}
    assert {"hr_sin", "hr_cos", "temp", "hr"} <= names
    assert all(pd.api.types.is_float_dtype(bikeshare.X[c]) for c in bikeshare.X.columns)


def test_bikeshare_target_and_domain_follow_the_definition(bikeshare, raw_csv):
    assert np.allclose(bikeshare.y, np.log1p(raw_csv["bikers"].to_numpy(dtype=float)))
    assert np.array_equal(bikeshare.domain, (raw_csv["workingday"] == 0).to_numpy().astype(int))
    hr = raw_csv["hr"].to_numpy(dtype=float)
    assert np.allclose(bikeshare.X["hr_sin"], np.sin(2 * np.pi * hr / 24))
    assert np.allclose(bikeshare.X["hr_cos"], np.cos(2 * np.pi * hr / 24))


# --- 悪い入力は日本語の DataError -----------------------------------------------------------------


def _write(frame: pd.DataFrame, tmp_path) -> Path:
    path = tmp_path / "bikeshare.csv"
    frame.to_csv(path, index=False)
    return path


def _small_raw(raw_csv) -> pd.DataFrame:
    return raw_csv.head(400).astype(object)  # 400 行に平日も週末も入っている


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="データファイルが見つかりません"):
        load_bikeshare(tmp_path / "nothing.csv")


def test_missing_columns(raw_csv, tmp_path):
    with pytest.raises(DataError, match=r"必要な列がありません: \['hum'\]"):
        load_bikeshare(_write(_small_raw(raw_csv).drop(columns=["hum"]), tmp_path))


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("temp", np.nan, r"特徴量に欠損値 \(NaN\) が 1 個あります（列: \['temp'\]）"),
        ("temp", np.inf, r"特徴量に inf があります（列: \['temp'\]）"),
        ("bikers", np.nan, "目的変数 y に NaN か inf が 1 個"),
        ("mnth", "Smarch", "列 mnth に未知の値があります"),
    ],
)
def test_bad_values_in_the_csv(raw_csv, tmp_path, column, value, message):
    frame = _small_raw(raw_csv)
    frame.loc[3, column] = value
    with pytest.raises(DataError, match=message):
        load_bikeshare(_write(frame, tmp_path))


def test_empty_domain_in_the_csv(raw_csv, tmp_path):
    frame = _small_raw(raw_csv)
    frame["workingday"] = 1
    with pytest.raises(DataError, match="target ドメインの行が 0 行です"):
        load_bikeshare(_write(frame, tmp_path))


def _frame(**columns) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], **columns})
    return X, np.array([0.0, 1.0, 2.0, 3.0]), np.array([0, 0, 1, 1])


def test_non_numeric_column():
    X, y, domain = _frame(color=["red", "blue", "red", "blue"])
    with pytest.raises(DataError, match=r"数値でない列があります: \['color'\]"):
        DomainData(name="t", X=X, y=y, domain=domain)


def test_nan_and_inf_in_X_and_nan_in_y():
    X, y, domain = _frame(b=[0.0, np.nan, 1.0, 2.0])
    with pytest.raises(DataError, match="欠損値 \\(NaN\\)"):
        DomainData(name="t", X=X, y=y, domain=domain)
    X, y, domain = _frame(b=[0.0, np.inf, 1.0, 2.0])
    with pytest.raises(DataError, match="inf があります"):
        DomainData(name="t", X=X, y=y, domain=domain)
    X, y, domain = _frame()
    y[0] = np.nan
    with pytest.raises(DataError, match="目的変数 y"):
        DomainData(name="t", X=X, y=y, domain=domain)


@pytest.mark.parametrize(("domain", "missing"), [([0, 0, 0, 0], "target"), ([1, 1, 1, 1], "source")])
def test_empty_domain(domain, missing):
    X, y, _ = _frame()
    with pytest.raises(DataError, match=f"{missing} ドメインの行が 0 行です"):
        DomainData(name="t", X=X, y=y, domain=np.array(domain))


def test_unknown_dataset_name():
    with pytest.raises(DataError, match=r"未知のデータセット名です: 'bike'.*'bikeshare'"):
        load_dataset("bike")


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, float("nan")])
def test_label_fraction_outside_the_range(synthetic, fraction):
    with pytest.raises(DataError, match=r"label_fraction は \(0, 1\] の範囲"):
        _split(synthetic, label_fraction=fraction)


# --- 以前の不具合の回帰テスト ----------------------------------------------------------------


def test_label_fraction_one_is_accepted(synthetic):
    split = _split(synthetic, label_fraction=1.0)
    assert len(split.X_target_unlabeled) == 0


@pytest.mark.parametrize("column", ["temp", "season", "hr"])
def test_text_in_a_numeric_csv_column(raw_csv, tmp_path, column):
    frame = _small_raw(raw_csv)
    frame.loc[3, column] = "abc"
    with pytest.raises(DataError, match=column):
        load_bikeshare(_write(frame, tmp_path))


@pytest.mark.parametrize("value", [np.nan, 2])
def test_bad_workingday_in_the_csv(raw_csv, tmp_path, value):
    frame = _small_raw(raw_csv)
    frame.loc[3, "workingday"] = value
    with pytest.raises(DataError, match="workingday"):
        load_bikeshare(_write(frame, tmp_path))


def test_negative_bikers_is_a_clear_error(raw_csv, tmp_path):
    frame = _small_raw(raw_csv)
    frame.loc[3, "bikers"] = -1
    with pytest.raises(DataError, match="bikers"):
        load_bikeshare(_write(frame, tmp_path))
