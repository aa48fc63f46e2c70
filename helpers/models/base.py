"""全手法が共有する fit/predict インターフェース（ノートブック 04・10 で紹介）。"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # 循環 import を避ける
    from helpers.data import DomainSplit


class DomainRegressor(ABC):
    """ドメイン適応回帰の共通インターフェース。

    `fit(split)` は source 全行とラベル付き target 行（`split.X_target_train`）だけを使い、
    target テスト行には決して触れない。`predict(X)` は target ドメインの行として予測する。
    """

    #: レポートに出す表示名（例: "Ours (CrossAttention)"）
    display_name: str = "base"

    @abstractmethod
    def fit(self, split: "DomainSplit") -> "DomainRegressor":
        """学習して self を返す。"""

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """target ドメインの行 X (n, d) に対する予測 (n,) を返す。"""
