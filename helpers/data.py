"""走り続ける例のデータ: Bikeshare（実データ）と合成データ、そして唯一の分割関数。

ノートブック 06 で詳しく扱う。全手法は `make_split` が返す同じ `DomainSplit` を使うので、
同じ seed なら分割はどの手法でも同一になる。前処理（標準化）は source と target 学習行
（ラベルなし行を含む）だけで fit し、target テスト行には決して触れない。
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from helpers.errors import CourseError

log = logging.getLogger(__name__)

#: Bikeshare で y と足し算の関係にある（リークする）列
LEAKING_COLUMNS = ("casual", "registered")
#: ドメインを定義する列（特徴量に残すとドメインが丸見えになる）
DOMAIN_COLUMNS = ("workingday", "holiday", "weekday")
#: 月名 → 数値
MONTHS = ("Jan", "Feb", "March", "April", "May", "June", "July", "Aug", "Sept", "Oct", "Nov", "Dec")
#: 天気 → 順序（悪いほど大きい）
WEATHER = ("clear", "cloudy/misty", "light rain/snow", "heavy rain/snow")
BIKESHARE_COLUMNS = (
    "season", "mnth", "day", "hr", "holiday", "weekday", "workingday", "weathersit",
    "temp", "atemp", "hum", "windspeed", "casual", "registered", "bikers",
)
DATASETS = ("bikeshare", "synthetic")


class DataError(CourseError, ValueError):
    """データの問題を、何をすればよいかと一緒に伝える例外。"""


@dataclass(frozen=True)
class DomainData:
    """前処理前のドメイン適応データ。`domain` は 0 = source, 1 = target。"""

    name: str
    X: pd.DataFrame
    y: np.ndarray
    domain: np.ndarray
    description: str = ""

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.X.columns)

    def __post_init__(self) -> None:
        validate_frame(self.X, self.y, self.domain)


@dataclass(frozen=True)
class DomainSplit:
    """全手法が共有する 1 つの分割（標準化済み float32 配列）。"""

    X_source: np.ndarray
    y_source: np.ndarray
    X_target_train: np.ndarray
    y_target_train: np.ndarray
    X_target_unlabeled: np.ndarray
    X_target_test: np.ndarray
    y_target_test: np.ndarray
    feature_names: tuple[str, ...]
    #: 元データでの行番号（分割の同一性・リークの検査用）
    source_ids: np.ndarray
    target_train_ids: np.ndarray
    target_unlabeled_ids: np.ndarray
    target_test_ids: np.ndarray
    scaler: StandardScaler = field(repr=False)
    seed: int = 0
    label_fraction: float = 0.1
    dataset: str = ""

    @property
    def n_features(self) -> int:
        return self.X_source.shape[1]

    def summary(self) -> pd.DataFrame:
        """各部分の行数の表。"""
        rows = [
            ("source（ラベルあり）", len(self.y_source)),
            ("target 学習（ラベルあり）", len(self.y_target_train)),
            ("target 学習（ラベルなし）", len(self.X_target_unlabeled)),
            ("target テスト", len(self.y_target_test)),
        ]
        return pd.DataFrame(rows, columns=["部分", "行数"])


def project_data_dir() -> Path:
    """同梱データのフォルダ（リポジトリの data/）。"""
    from helpers.env import project_root

    return project_root() / "data"


def validate_frame(X: pd.DataFrame, y: np.ndarray, domain: np.ndarray) -> None:
    """特徴量・目的変数・ドメインを検査し、問題があれば日本語で何をすべきかを言う。"""
    if not isinstance(X, pd.DataFrame):
        raise DataError(f"X は pandas.DataFrame で渡してください（受け取った型: {type(X).__name__}）。")
    bad = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c])]
    if bad:
        raise DataError(
            f"数値でない列があります: {bad}。数値に変換する（例: 順序を割り当てる、one-hot にする）か、列を削除してください。"
        )
    values = X.to_numpy(dtype=float)
    n_nan = int(np.isnan(values).sum())
    if n_nan:
        cols = [c for c in X.columns if X[c].isna().any()]
        raise DataError(
            f"特徴量に欠損値 (NaN) が {n_nan} 個あります（列: {cols}）。"
            "SimpleImputer などで補完するか、その行を削除してから渡してください（ノートブック 06 参照）。"
        )
    if not np.isfinite(values).all():
        cols = [c for c in X.columns if not np.isfinite(X[c].to_numpy(dtype=float)).all()]
        raise DataError(f"特徴量に inf があります（列: {cols}）。値の範囲を確認し、inf を置き換えてください。")
    y = np.asarray(y, dtype=float)
    if y.shape != (len(X),):
        raise DataError(f"y の形 {y.shape} が X の行数 {len(X)} と合いません。")
    if not np.isfinite(y).all():
        raise DataError(f"目的変数 y に NaN か inf が {int((~np.isfinite(y)).sum())} 個あります。その行を除いてください。")
    domain = np.asarray(domain)
    if domain.shape != (len(X),) or not np.isin(domain, (0, 1)).all():
        raise DataError("domain は X と同じ長さで、0 (source) か 1 (target) だけを含む配列にしてください。")
    for value, label in ((0, "source"), (1, "target")):
        if not (domain == value).any():
            raise DataError(f"{label} ドメインの行が 0 行です。ドメインの定義（分割の条件）を見直してください。")


def load_bikeshare(path: str | Path | None = None) -> DomainData:
    """UCI Bike Sharing（時間単位, 2011 年）を読み、source = 平日, target = 週末・祝日 に分ける。

    y = log1p(bikers)。リーク列 (casual, registered) とドメイン定義列
    (workingday, holiday, weekday) は特徴量から外す。時刻は sin/cos も加える。
    """
    path = Path(path) if path is not None else project_data_dir() / "bikeshare.csv"
    if not path.exists():
        raise DataError(
            f"データファイルが見つかりません: {path}。リポジトリの data/bikeshare.csv があるか確認してください"
            "（作り方は data/README.md）。"
        )
    frame = pd.read_csv(path)
    missing = [c for c in BIKESHARE_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path.name} に必要な列がありません: {missing}。元の Bikeshare.csv を使ってください。")
    frame = frame[list(BIKESHARE_COLUMNS)].copy()  # 余分な列は特徴量にしない
    frame["mnth"] = _encode(frame["mnth"], MONTHS, "mnth") + 1
    frame["weathersit"] = _encode(frame["weathersit"], WEATHER, "weathersit") + 1
    numeric = [c for c in BIKESHARE_COLUMNS if c not in ("mnth", "weathersit")]
    for c in numeric:
        converted = pd.to_numeric(frame[c], errors="coerce")
        bad = converted.isna() & frame[c].notna()
        if bad.any():
            raise DataError(f"列 {c} に数値でない値があります（例: {frame.loc[bad, c].iloc[0]!r}）。数値に直してください。")
        frame[c] = converted
    if not frame["workingday"].isin([0, 1]).all():
        raise DataError("列 workingday は 0（週末・祝日）か 1（平日）だけにしてください。欠損や他の値の行を直すか除いてください。")
    if (frame["bikers"] < 0).any():
        raise DataError("列 bikers に負の値があります。利用者数は 0 以上です。データを確認してください。")
    frame["hr_sin"] = np.sin(2 * np.pi * frame["hr"] / 24)
    frame["hr_cos"] = np.cos(2 * np.pi * frame["hr"] / 24)
    y = np.log1p(frame["bikers"].to_numpy(dtype=float))
    domain = (frame["workingday"] == 0).to_numpy().astype(int)
    X = frame.drop(columns=[*LEAKING_COLUMNS, *DOMAIN_COLUMNS, "bikers"]).astype(float)
    return DomainData(
        name="bikeshare",
        X=X,
        y=y,
        domain=domain,
        description="UCI Bike Sharing (Fanaee-T & Gama 2013, CC BY 4.0): 平日 → 週末・祝日, y = log1p(bikers)",
    )


def _encode(series: pd.Series, levels: tuple[str, ...], column: str) -> pd.Series:
    unknown = sorted(set(series.dropna().unique()) - set(levels))
    if unknown:
        raise DataError(f"列 {column} に未知の値があります: {unknown}。許される値: {list(levels)}")
    return series.map({v: i for i, v in enumerate(levels)}).astype(float)


def make_synthetic(
    n_source: int = 2000,
    n_target: int = 1500,
    n_features: int = 6,
    covariate_shift: float = 1.0,
    concept_shift: float = 0.5,
    noise: float = 0.1,
    seed: int = 0,
) -> DomainData:
    """シフトの大きさを調節できる合成回帰データ（テスト用）。

    covariate_shift: target の特徴量の平均を第 1 軸方向にずらす量。
    concept_shift: target の回帰係数を source からずらす量（0 なら同じ関数）。
    """
    if n_source < 1 or n_target < 1:
        raise DataError("n_source と n_target は 1 以上にしてください。")
    rng = np.random.default_rng(seed)
    w = rng.normal(size=n_features)
    w_target = w + concept_shift * rng.normal(size=n_features)
    Xs = rng.normal(size=(n_source, n_features))
    Xt = rng.normal(size=(n_target, n_features))
    Xt[:, 0] += covariate_shift

    def f(X: np.ndarray, coef: np.ndarray) -> np.ndarray:
        return X @ coef + 0.5 * np.sin(2 * X[:, 1]) + 0.3 * X[:, 0] * X[:, 2 % n_features]

    ys = f(Xs, w) + noise * rng.normal(size=n_source)
    yt = f(Xt, w_target) + noise * rng.normal(size=n_target)
    X = pd.DataFrame(np.vstack([Xs, Xt]), columns=[f"x{i}" for i in range(n_features)])
    return DomainData(
        name="synthetic",
        X=X,
        y=np.concatenate([ys, yt]),
        domain=np.r_[np.zeros(n_source, int), np.ones(n_target, int)],
        description=f"合成データ (covariate_shift={covariate_shift}, concept_shift={concept_shift}, seed={seed})",
    )


def load_dataset(name: str = "bikeshare", **kwargs) -> DomainData:
    """名前でデータセットを読む（"bikeshare" または "synthetic"）。"""
    if name == "bikeshare":
        return load_bikeshare(**kwargs)
    if name == "synthetic":
        return make_synthetic(**kwargs)
    raise DataError(f"未知のデータセット名です: {name!r}。使えるのは {list(DATASETS)} です。")


def make_split(
    data: DomainData,
    *,
    label_fraction: float = 0.1,
    target_test_fraction: float = 0.3,
    min_test_rows: int = 500,
    max_source_rows: int | None = None,
    seed: int = 0,
) -> DomainSplit:
    """target を「テスト」と「学習プール」に分け、プールの label_fraction だけにラベルを付ける。

    - テスト行は seed だけで決まり、label_fraction を変えても同じ。
    - ラベル付き行はプールの並べ替えの先頭なので、5 % の集合は 10 % の集合に含まれる。
    - 標準化は source + target 学習プールで fit（target テスト行は使わない）。
    """
    if not 0 < label_fraction <= 1:
        raise DataError(f"label_fraction は (0, 1] の範囲にしてください（受け取った値: {label_fraction}）。")
    if not 0 < target_test_fraction < 1:
        raise DataError(f"target_test_fraction は (0, 1) の範囲にしてください（受け取った値: {target_test_fraction}）。")
    rng = np.random.default_rng(seed)
    source_ids = np.flatnonzero(data.domain == 0)
    target_ids = np.flatnonzero(data.domain == 1)
    n_test = max(min_test_rows, int(round(target_test_fraction * len(target_ids))))
    if n_test >= len(target_ids):
        raise DataError(
            f"target は {len(target_ids)} 行しかなく、テスト {n_test} 行を取ると学習用が残りません。"
            "min_test_rows か target_test_fraction を小さくしてください。"
        )
    perm = rng.permutation(target_ids)
    test_ids, pool = np.sort(perm[:n_test]), perm[n_test:]
    n_labelled = max(2, int(round(label_fraction * len(pool))))
    labelled_ids, unlabelled_ids = np.sort(pool[:n_labelled]), np.sort(pool[n_labelled:])
    source_rng = np.random.default_rng([seed, 1])
    if max_source_rows is not None and max_source_rows < len(source_ids):
        source_ids = np.sort(source_rng.choice(source_ids, size=max_source_rows, replace=False))

    X = data.X.to_numpy(dtype=float)
    y = np.asarray(data.y, dtype=np.float32)
    fit_rows = np.concatenate([source_ids, labelled_ids, unlabelled_ids])
    scaler = StandardScaler().fit(X[fit_rows])

    def tx(ids: np.ndarray) -> np.ndarray:
        if len(ids) == 0:  # label_fraction=1.0 ならラベルなし行は 0 行
            return np.empty((0, X.shape[1]), dtype=np.float32)
        return scaler.transform(X[ids]).astype(np.float32)

    log.info(
        "split %s seed=%d: source=%d, target labelled=%d, unlabelled=%d, test=%d",
        data.name, seed, len(source_ids), len(labelled_ids), len(unlabelled_ids), len(test_ids),
    )
    return DomainSplit(
        X_source=tx(source_ids), y_source=y[source_ids],
        X_target_train=tx(labelled_ids), y_target_train=y[labelled_ids],
        X_target_unlabeled=tx(unlabelled_ids),
        X_target_test=tx(test_ids), y_target_test=y[test_ids],
        feature_names=data.feature_names,
        source_ids=source_ids, target_train_ids=labelled_ids,
        target_unlabeled_ids=unlabelled_ids, target_test_ids=test_ids,
        scaler=scaler, seed=seed, label_fraction=label_fraction, dataset=data.name,
    )
