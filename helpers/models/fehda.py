"""FEHDA: Daumé III の特徴量拡張 + HistGradientBoostingRegressor（ノートブック 04 で紹介）。

「FEHDA」という名前の公開された手法はない。この講座ではこの名前で、
H. Daumé III, "Frustratingly Easy Domain Adaptation" (ACL 2007) の特徴量拡張
（source x → [x, x, 0], target x → [x, 0, x]）をしてから回帰器を 1 つ学習する手法を指す。
共通部分 [x] が両ドメインに効く関係を、残りの 2 つのブロックがドメイン固有の関係を学ぶ。
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from helpers.models.baselines import (
    HGBRegressorBase,
    check_target_weight,
    stack_domains,
)

if TYPE_CHECKING:
    from helpers.data import DomainSplit

DOMAINS = ("source", "target")


def augment(X: np.ndarray, domain: str) -> np.ndarray:
    """Daumé III の拡張: source なら [X, X, 0]、target なら [X, 0, X]（列数は 3 倍）。"""
    if domain not in DOMAINS:
        raise ValueError(f"domain は {list(DOMAINS)} のどちらかにしてください（受け取った値: {domain!r}）。")
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X は (行数, 特徴量数) の 2 次元配列にしてください（形: {X.shape}）。")
    zeros = np.zeros_like(X)
    return np.hstack([X, X, zeros] if domain == "source" else [X, zeros, X])


class FEHDA(HGBRegressorBase):
    """拡張した source 行と target 行で HistGradientBoostingRegressor を 1 つ学習する。

    target_weight: target 行の sample_weight（source 行は 1）。予測は target として拡張して行う。
    """

    display_name = "FEHDA"

    def __init__(self, *, target_weight: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.target_weight = check_target_weight(target_weight)

    def fit(self, split: "DomainSplit") -> "FEHDA":
        X, y, weight = stack_domains(
            augment(split.X_source, "source"), split.y_source,
            augment(split.X_target_train, "target"), split.y_target_train,
            self.target_weight,
        )
        return self._fit_rows(X, y, sample_weight=weight)

    def _features(self, X: np.ndarray) -> np.ndarray:
        return augment(X, "target")
