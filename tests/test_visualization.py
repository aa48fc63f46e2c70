"""図（helpers.visualization）のテスト: Figure を返し、日本語が欠けずに描け、PNG に保存できる。"""
from __future__ import annotations

import os
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from helpers import visualization as viz
from helpers.data import make_split, make_synthetic


@pytest.fixture(scope="module")
def split():
    return make_split(make_synthetic(n_source=300, n_target=200, seed=0), min_test_rows=40, seed=0)


def render(fig: Figure) -> list[str]:
    """図を PNG に描画し、出た警告の文を返す（欠けたグリフは "Glyph ... missing from font" の警告になる）。"""
    import io

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(io.BytesIO(), format="png")
    return [str(w.message) for w in caught]


def glyph_warnings(messages: list[str]) -> list[str]:
    return [m for m in messages if "missing from font" in m]


def test_detection_works_without_japanese_font():
    """対照: 日本語フォントなし（DejaVu Sans）なら、この検査は欠けたグリフを見つける。"""
    with matplotlib.rc_context({"font.family": ["DejaVu Sans"]}):
        fig = Figure()
        fig.subplots().set_title("日本語のタイトル")
        assert glyph_warnings(render(fig))


def test_japanese_text_has_no_missing_glyphs(split):
    results = pd.DataFrame({"display_name": ["FEHDA", "Target only"] * 2, "r2": [0.9, 0.8, 0.88, 0.79],
                            "label_fraction": [0.1] * 4, "seed": [0, 0, 1, 1]})
    figures = [
        viz.plot_embedding(split, "pca", max_rows=100),
        viz.plot_feature_distributions(split, ["x0", "x1"]),
        viz.plot_r2_by_method(results),
        viz.plot_wasserstein(pd.Series({"時刻": 0.3, "気温": 0.1})),
        viz.plot_diffusion_samples(split.X_target_train, split.X_target_test, split.feature_names,
                                   pairs=[("x0", "x1"), (0, 2)]),
    ]
    for fig in figures:
        assert isinstance(fig, Figure)
        assert glyph_warnings(render(fig)) == []
    # pyplot を通さないので、開いたままの図は増えない
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []


def test_fonts_come_back_after_a_theme_reset(split):
    import seaborn as sns

    sns.set_theme()  # フォントを既定に戻してしまう
    fig = viz.plot_wasserstein(pd.Series({"降水": 0.2}))
    assert glyph_warnings(render(fig)) == []


def test_embedding_colours_each_part(split):
    fig = viz.plot_embedding(split, "pca", max_rows=50)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == list(viz.PARTS.values())
    n_points = sum(len(c.get_offsets()) for c in ax.collections)
    assert n_points == 50 + min(50, len(split.X_target_train)) + 50
    assert ax.get_xlabel().startswith("PC1")


def test_wasserstein_bars_are_sorted():
    fig = viz.plot_wasserstein(pd.Series({"a": 0.1, "b": 0.5, "c": 0.3}))
    ax = fig.axes[0]
    widths = [p.get_width() for p in ax.patches]
    assert widths == sorted(widths)  # barh は下から描くので、いちばん上が最大
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "c", "b"]


def test_save_figure_writes_png(tmp_path, split):
    path = viz.save_figure(viz.plot_r2_by_method(pd.DataFrame({
        "display_name": ["A"], "r2": [0.5], "label_fraction": [0.1], "seed": [0]})), tmp_path / "sub" / "r2.png")
    assert path.read_bytes()[:8] == bytes.fromhex("89504e470d0a1a0a")


def test_bad_arguments_are_explained(split):
    with pytest.raises(viz.PlotError, match="method"):
        viz.plot_embedding(split, "tsne")
    with pytest.raises(viz.PlotError, match="zzz"):
        viz.plot_feature_distributions(split, ["zzz"])
    with pytest.raises(viz.PlotError, match="pairs"):
        viz.plot_diffusion_samples(split.X_source, split.X_source, split.feature_names, pairs=[("x0", "nope")])
    with pytest.raises(viz.PlotError, match="形"):
        viz.plot_diffusion_samples(split.X_source, split.X_source[:, :2], split.feature_names)
    with pytest.raises(viz.PlotError, match="r2"):
        viz.plot_r2_by_method(pd.DataFrame({"display_name": ["A"]}))


@pytest.mark.skipif(os.environ.get("COURSE_SLOW_TESTS") != "1",
                    reason="umap-learn の初回 import は numba のコンパイルで 30 秒ほどかかる（COURSE_SLOW_TESTS=1 で実行）")
def test_umap_embedding(split):
    fig = viz.plot_embedding(split, "umap", max_rows=60)
    assert fig.axes[0].get_xlabel() == "UMAP 1"
    assert glyph_warnings(render(fig)) == []
    assert np.isfinite(np.concatenate([c.get_offsets() for c in fig.axes[0].collections])).all()
