"""ベースライン: source のみ・target のみ・両方をまとめて学習（ノートブック 04 で紹介）。

どれも scikit-learn の HistGradientBoostingRegressor 1 つで、設定は `HGBRegressorBase` にまとめてある。
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from helpers.models.base import DomainRegressor

if TYPE_CHECKING:
    from helpers.data import DomainSplit

log = logging.getLogger(__name__)


class HGBRegressorBase(DomainRegressor):
    """HistGradientBoostingRegressor を 1 つ持つ手法の共通部分（設定・予測）。

    early_stopping=False にしているので、max_iter 回きっちり学習し、検証用に行を取り分けることもない。
    """

    def __init__(
        self,
        max_iter: int = 200,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        min_samples_leaf: int = 20,
        l2_regularization: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.seed = seed
        self.model_: HistGradientBoostingRegressor | None = None

    def new_regressor(self) -> HistGradientBoostingRegressor:
        """この設定の未学習の回帰器を作る。"""
        return HistGradientBoostingRegressor(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            early_stopping=False,
            random_state=self.seed,
        )

    def _fit_rows(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> "HGBRegressorBase":
        log.info("%s: %d 行で学習", self.display_name, len(y))
        self.model_ = self.new_regressor().fit(X, y, sample_weight=sample_weight)
        return self

    def _features(self, X: np.ndarray) -> np.ndarray:
        """予測に渡す特徴量（特徴量を変換する手法はここを上書きする）。"""
        return np.asarray(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.model_ is None:
            raise RuntimeError(f"{self.display_name} はまだ学習していません。先に fit(split) を呼んでください。")
        return self.model_.predict(self._features(X))


def check_target_weight(target_weight: float) -> float:
    """target 行の重みを検査する（正の数だけ許す）。"""
    if not target_weight > 0:
        raise ValueError(f"target_weight は正の数にしてください（受け取った値: {target_weight}）。")
    return float(target_weight)


def stack_domains(X_source, y_source, X_target, y_target, target_weight: float):
    """source 行と target 行を縦に並べ、sample_weight（source 1, target target_weight）を添える。"""
    X = np.vstack([X_source, X_target])
    y = np.concatenate([y_source, y_target])
    weight = np.r_[np.ones(len(y_source)), np.full(len(y_target), target_weight)]
    return X, y, weight


class SourceOnly(HGBRegressorBase):
    """source のラベルだけで学習する（target への移りやすさの下限の目安）。"""

    display_name = "Source only"

    def fit(self, split: "DomainSplit") -> "SourceOnly":
        return self._fit_rows(split.X_source, split.y_source)


class TargetOnly(HGBRegressorBase):
    """少数の target ラベルだけで学習する。"""

    display_name = "Target only"

    def fit(self, split: "DomainSplit") -> "TargetOnly":
        return self._fit_rows(split.X_target_train, split.y_target_train)


class Pooled(HGBRegressorBase):
    """source と target のラベル付き行をまとめて 1 つのモデルで学習する。

    target_weight: target 行の sample_weight（source 行は 1）。
    """

    display_name = "Pooled"

    def __init__(self, *, target_weight: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.target_weight = check_target_weight(target_weight)

    def fit(self, split: "DomainSplit") -> "Pooled":
        X, y, weight = stack_domains(
            split.X_source, split.y_source, split.X_target_train, split.y_target_train, self.target_weight
        )
        return self._fit_rows(X, y, sample_weight=weight)
