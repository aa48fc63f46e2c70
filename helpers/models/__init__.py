"""講座の 6 手法と、名前から作るファクトリ（ノートブック 04・10 で紹介）。

どの手法も `DomainRegressor`（fit(split) / predict(X)）を実装する。conf/model/*.yaml の値が
そのままコンストラクタの引数になる。
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from helpers.models.base import DomainRegressor

#: 設定名 → (モジュール, クラス)。import は使うときまで遅らせる（torch の import は重い）
REGISTRY: dict[str, tuple[str, str]] = {
    "source_only": ("helpers.models.baselines", "SourceOnly"),
    "target_only": ("helpers.models.baselines", "TargetOnly"),
    "pooled": ("helpers.models.baselines", "Pooled"),
    "fehda": ("helpers.models.fehda", "FEHDA"),
    "tabddpm": ("helpers.models.diffusion", "TabDDPMRegressor"),
    "cross_attention": ("helpers.models.cross_attention", "CrossAttentionRegressor"),
}
#: PyTorch で学習する（device と進捗バーを受け取る）手法
TORCH_METHODS = frozenset({"tabddpm", "cross_attention"})


def method_class(name: str) -> type[DomainRegressor]:
    """設定名から手法のクラスを返す。"""
    if name not in REGISTRY:
        raise KeyError(f"未知の手法です: {name!r}。使えるのは {list(REGISTRY)} です。")
    module, cls = REGISTRY[name]
    return getattr(importlib.import_module(module), cls)


def build_method(name: str, params: Mapping[str, Any], *, seed: int = 0, device: str = "cpu",
                 progress: bool = True) -> DomainRegressor:
    """設定名とハイパーパラメータ（conf の methods.<name>）から手法を作る。"""
    kwargs = dict(params)
    if name in TORCH_METHODS:
        kwargs.update(device=device, progress=progress)
    return method_class(name)(**kwargs, seed=seed)


def display_name(name: str) -> str:
    """レポートに出す表示名（例: "Ours (CrossAttention)"）。"""
    return method_class(name).display_name
