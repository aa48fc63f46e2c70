"""ベンチマークの図: 埋め込み・特徴量の分布・手法ごとの R²・Wasserstein 距離・拡散モデルの生成行
（ノートブック 07 で紹介）。

どの関数も matplotlib の `Figure` を返し、`plt.show()` は呼ばない。図は pyplot を通さずに
`matplotlib.figure.Figure` で作るので、ノートブックでは返り値を最後の式に置けば 1 回だけ表示され、
開いたままの図がたまることもない。保存は `save_figure`。日本語のタイトル・軸名は
IPAexGothic（matplotlib-fontja）で描く。
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from helpers.env import setup_japanese_fonts
from helpers.errors import CourseError

if TYPE_CHECKING:
    from helpers.data import DomainSplit

log = logging.getLogger(__name__)

EMBEDDINGS = ("pca", "umap")
#: 部分ごとの色と表示名（埋め込みと分布の図で共通）
PARTS = {"source": "source", "target_train": "target 学習（ラベルあり）", "target_test": "target テスト"}
_font: str | None = None


class PlotError(CourseError, ValueError):
    """作図の引数の誤り。"""


def use_japanese_fonts() -> str:
    """日本語フォントを有効にする（初回だけ seaborn のテーマも適用）。

    あとから `sns.set_theme()` などでフォントが戻されていたら、フォントだけを設定し直す。
    """
    global _font
    if _font is None or matplotlib.rcParams["font.family"][:1] != [_font]:
        _font = setup_japanese_fonts(theme=_font is None)
    return _font


def _figure(nrows: int = 1, ncols: int = 1, *, size: tuple[float, float] = (6.4, 4.8)):
    """pyplot を通さずに Figure と Axes を作る（constrained layout）。"""
    use_japanese_fonts()
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _parts(split: "DomainSplit", max_rows: int, seed: int) -> pd.DataFrame:
    """source・target 学習・target テストの行を最大 max_rows 行ずつ（無作為に）集め、部分名を付ける。"""
    if max_rows < 1:
        raise PlotError(f"max_rows は 1 以上にしてください（受け取った値: {max_rows}）。")
    rng = np.random.default_rng(seed)
    frames = []
    for key, X in (("source", split.X_source), ("target_train", split.X_target_train),
                   ("target_test", split.X_target_test)):
        rows = rng.choice(len(X), size=min(max_rows, len(X)), replace=False)
        frame = pd.DataFrame(X[np.sort(rows)], columns=list(split.feature_names))
        frame["部分"] = PARTS[key]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def plot_embedding(split: "DomainSplit", method: str = "pca", max_rows: int = 1000, seed: int = 0) -> Figure:
    """source・target 学習・target テストの行を 2 次元に埋め込んで色分けした散布図。

    method: "pca"（速い）か "umap"（umap-learn。初回の import は numba のコンパイルで 30 秒ほどかかる）。
    各部分から最大 max_rows 行を seed で選ぶ。埋め込みは表示される行すべてで fit する（見るためだけの変換）。
    """
    import seaborn as sns

    if method not in EMBEDDINGS:
        raise PlotError(f"method は {list(EMBEDDINGS)} のどちらかにしてください（受け取った値: {method!r}）。")
    frame = _parts(split, max_rows, seed)
    X = frame[list(split.feature_names)].to_numpy()
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed)
        Z = pca.fit_transform(X)
        labels = [f"PC{i + 1}（分散の {r:.0%}）" for i, r in enumerate(pca.explained_variance_ratio_)]
    else:
        import umap  # 遅い import なので使うときだけ

        # random_state を決めると UMAP は 1 スレッドで動く（n_jobs=1 を明示して警告を出さない）
        Z = umap.UMAP(n_components=2, random_state=seed, n_jobs=1).fit_transform(X)
        labels = ["UMAP 1", "UMAP 2"]
    frame["z1"], frame["z2"] = Z[:, 0], Z[:, 1]
    fig, axes = _figure()
    ax = axes[0, 0]
    sns.scatterplot(data=frame, x="z1", y="z2", hue="部分", style="部分", s=14, alpha=0.6, ax=ax)
    ax.set(xlabel=labels[0], ylabel=labels[1], title=f"ドメインの埋め込み（{method.upper()}）")
    return fig


def plot_feature_distributions(split: "DomainSplit", features: Sequence[str] | None = None, *,
                               bins: int = 30, ncols: int = 4) -> Figure:
    """特徴量ごとに source と target（学習・ラベルなし・テストの全行）の分布を重ねたヒストグラム（密度）。

    値は標準化後の単位。離散的な列（時刻・季節など）もあるので、KDE ではなくヒストグラムで描く。
    """
    import seaborn as sns

    names = list(split.feature_names)
    features = names if features is None else list(features)
    unknown = [f for f in features if f not in names]
    if unknown or not features:
        raise PlotError(f"features に未知の特徴量があるか空です: {unknown}（使える名前: {names}）。")
    target = np.vstack([split.X_target_train, split.X_target_unlabeled, split.X_target_test])
    frame = pd.concat([
        pd.DataFrame(split.X_source, columns=names).assign(ドメイン="source"),
        pd.DataFrame(target, columns=names).assign(ドメイン="target"),
    ], ignore_index=True)
    ncols = min(ncols, len(features))
    nrows = -(-len(features) // ncols)
    fig, axes = _figure(nrows, ncols, size=(3.2, 2.6))
    for ax, feature in zip(axes.flat, features):
        sns.histplot(data=frame, x=feature, hue="ドメイン", bins=bins, stat="density", common_norm=False,
                     element="step", ax=ax, legend=ax is axes.flat[0])
        ax.set(title=feature, xlabel="標準化した値", ylabel="密度")
    for ax in list(axes.flat)[len(features):]:
        ax.set_visible(False)
    fig.suptitle("特徴量ごとの分布: source と target")
    return fig


def plot_r2_by_method(results: pd.DataFrame) -> Figure:
    """手法ごとの target テスト R²（棒はシードの平均、ひげは標準偏差。ラベル割合ごとに色分け）。"""
    import seaborn as sns

    missing = {"display_name", "r2", "label_fraction"} - set(results.columns)
    if missing or results.empty:
        raise PlotError(f"results に必要な列がないか空です（足りない列: {sorted(missing)}）。")
    frame = results.assign(ラベル割合=results["label_fraction"].map(lambda v: f"{v:.0%}"))
    order = list(dict.fromkeys(frame["display_name"]))
    fig, axes = _figure(size=(max(6.4, 1.3 * len(order)), 4.2))
    ax = axes[0, 0]
    sns.barplot(data=frame, x="display_name", y="r2", hue="ラベル割合", order=order, errorbar="sd", ax=ax)
    n_seeds = results["seed"].nunique() if "seed" in results else 1
    ax.set(xlabel="手法", ylabel="R²（target テスト）",
           title=f"手法ごとの R²（{n_seeds} シードの平均 ± 標準偏差）")
    ax.tick_params(axis="x", labelrotation=20)
    return fig


def plot_wasserstein(shift_series: pd.Series, title: str = "特徴量ごとの Wasserstein 距離（source → target）") -> Figure:
    """特徴量ごとの 1 次元 Wasserstein 距離の横棒グラフ（大きい順）。"""
    if not isinstance(shift_series, pd.Series) or shift_series.empty:
        raise PlotError("shift_series は特徴量名を index に持つ pandas.Series にしてください（空は不可）。")
    values = shift_series.sort_values()
    fig, axes = _figure(size=(6.4, max(2.5, 0.35 * len(values) + 1)))
    ax = axes[0, 0]
    ax.barh([str(i) for i in values.index], values.to_numpy(), color="#4c72b0")
    ax.set(xlabel="Wasserstein 距離（source の標準偏差単位）", ylabel="特徴量", title=title)
    return fig


def plot_diffusion_samples(real: np.ndarray, synthetic: np.ndarray, feature_names: Sequence[str],
                           pairs: Sequence[tuple[str | int, str | int]] | None = None,
                           max_rows: int = 1000, seed: int = 0) -> Figure:
    """本物の行と拡散モデルが生成した行を、特徴量の組ごとの散布図で重ねる。

    pairs: (特徴量, 特徴量) の組（名前か列番号）。省略すると先頭の 3 列から作る組。
    """
    names = list(feature_names)
    real, synthetic = np.asarray(real, dtype=float), np.asarray(synthetic, dtype=float)
    for label, X in (("real", real), ("synthetic", synthetic)):
        if X.ndim != 2 or X.shape[1] != len(names):
            raise PlotError(f"{label} は (行数, {len(names)}) の配列にしてください（形: {X.shape}）。")
    if pairs is None:
        k = min(3, len(names))
        pairs = [(i, j) for i in range(k) for j in range(i + 1, k)] or [(0, 0)]

    def index(f: str | int) -> int:
        if isinstance(f, str):
            if f not in names:
                raise PlotError(f"pairs の特徴量 {f!r} がありません（使える名前: {names}）。")
            return names.index(f)
        if not 0 <= f < len(names):
            raise PlotError(f"pairs の列番号 {f} が範囲外です（0〜{len(names) - 1}）。")
        return int(f)

    rng = np.random.default_rng(seed)
    pick = [X[rng.choice(len(X), size=min(max_rows, len(X)), replace=False)] for X in (real, synthetic)]
    fig, axes = _figure(1, len(pairs), size=(4.0, 3.6))
    for ax, (a, b) in zip(axes.flat, pairs):
        i, j = index(a), index(b)
        for X, label, color in zip(pick, ("本物", "生成"), ("#4c72b0", "#dd8452")):
            ax.scatter(X[:, i], X[:, j], s=8, alpha=0.45, label=label, color=color)
        ax.set(xlabel=names[i], ylabel=names[j])
    axes.flat[0].legend()
    fig.suptitle("本物の行と拡散モデルの生成行")
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 200) -> Path:
    """図を PNG で保存する（論文向けの解像度、余白を詰める）。フォルダがなければ作る。"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    log.info("図を保存しました: %s", path)
    return path
