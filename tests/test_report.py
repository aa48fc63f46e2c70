"""レポート（helpers.report_generator）のテスト: 数値が CSV と一致し、所見が数値から作られ、HTML が自己完結する。

結果の表は、既知の誤差の大きさを持つ予測から作る（R² と RMSE は予測から計算するので、表と予測は整合する）。
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from helpers.metrics import paired_bootstrap_r2_diff, r2, rmse
from helpers.report_generator import (
    ReportError,
    build_blocks,
    findings,
    paired_comparisons,
    summarize_results,
    write_report,
)

NAMES = {"target_only": "Target only", "fehda": "FEHDA", "cross_attention": "Ours (CrossAttention)"}


def make_outputs(noise: dict[str, float], seeds=(0, 1, 2), fractions=(0.05, 0.1), n_test: int = 120):
    """手法ごとに誤差の標準偏差 noise[m] の予測を作り、results と predictions を返す。"""
    rows, preds = [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        ids = np.sort(rng.choice(1000, size=n_test, replace=False))
        y = rng.normal(3.0, 1.0, size=n_test)
        for fraction in fractions:
            for method, scale in noise.items():
                y_pred = y + rng.normal(0, scale * (1.2 if fraction < 0.1 else 1.0), size=n_test)
                preds.append(pd.DataFrame({"seed": seed, "label_fraction": fraction, "method": method,
                                           "row_id": ids, "y_true": y, "y_pred": y_pred}))
                rows.append({"dataset": "synthetic", "method": method, "display_name": NAMES[method],
                             "seed": seed, "label_fraction": fraction, "r2": r2(y, y_pred), "rmse": rmse(y, y_pred),
                             "fit_seconds": 0.5 + seed, "predict_seconds": 0.01, "n_source": 500,
                             "n_target_train": int(fraction * 1000), "n_target_test": n_test, "device": "cpu",
                             "profile": "quick"})
    return pd.DataFrame(rows), pd.concat(preds, ignore_index=True)


def markdown_tables(text: str, heading: str) -> dict[str, pd.DataFrame]:
    """「## heading」の節にある「### 小見出し」ごとの Markdown 表を DataFrame に読み戻す。"""
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    tables = {}
    for part in section.split("\n### ")[1:]:
        title, body = part.split("\n", 1)
        lines = [line for line in body.splitlines() if line.startswith("|")]
        cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
        tables[title.strip()] = pd.DataFrame(cells[2:], columns=cells[0])
    return tables


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    results, predictions = make_outputs({"target_only": 0.6, "fehda": 0.45, "cross_attention": 0.3})
    results.to_csv(out / "results.csv", index=False)
    predictions.to_csv(out / "predictions.csv", index=False)
    results, predictions = pd.read_csv(out / "results.csv"), pd.read_csv(out / "predictions.csv")
    shift = pd.DataFrame({"seed": 0, "comparison": ["target_test", "target_test", "source_halves", "target_test"],
                          "measure": ["wasserstein_1d", "wasserstein_1d", "sliced_wasserstein", "sliced_wasserstein"],
                          "feature": ["hr", "temp", "(multivariate)", "(multivariate)"],
                          "value": [0.25, 0.125, 0.02, 0.08]})
    figure = out / "figures" / "dot.png"
    figure.parent.mkdir()
    figure.write_bytes(bytes.fromhex("89504e470d0a1a0a"))  # PNG の署名だけ（埋め込みの確認用）
    md, html = write_report(results, out, shift=shift, predictions=predictions, figures={"点": figure},
                            meta={"benchmark_id": "test-123"})
    return results, predictions, md.read_text(encoding="utf-8"), html.read_text(encoding="utf-8")


def test_results_table_equals_the_csv(report):
    results, _, md, _ = report
    tables = markdown_tables(md, "4. 結果（target テスト）")
    assert set(tables) == {"ラベル割合 5%", "ラベル割合 10%"}
    for fraction, title in ((0.05, "ラベル割合 5%"), (0.1, "ラベル割合 10%")):
        table = tables[title].set_index("手法")
        expected = results[results["label_fraction"] == fraction].groupby("display_name")
        assert set(table.index) == set(NAMES.values())
        for name, group in expected:
            assert table.loc[name, "R² 平均"] == f"{group['r2'].mean():.3f}"
            assert table.loc[name, "± 標準偏差"] == f"{group['r2'].std(ddof=1):.3f}"
            assert table.loc[name, "RMSE 平均"] == f"{group['rmse'].mean():.3f}"
            assert table.loc[name, "学習秒数"] == f"{group['fit_seconds'].mean():.2f}"
            low, high = map(float, re.findall(r"-?\d+\.\d+", table.loc[name, "95 % CI"]))
            assert low <= group["r2"].mean() <= high
        # 並びは R² 平均の降順
        assert list(table["R² 平均"]) == sorted(table["R² 平均"], reverse=True)


def test_paired_comparison_is_computed_from_predictions(report):
    results, predictions, md, _ = report
    tables = markdown_tables(md, "5. 基準 Target only との対応ある比較")
    table = tables["ラベル割合 10%"].set_index("手法")
    frame = predictions[predictions["label_fraction"] == 0.1]
    wide = frame.pivot_table(index=["seed", "row_id"], columns="method", values="y_pred")
    y = frame[frame.method == "target_only"].set_index(["seed", "row_id"])["y_true"].loc[wide.index]
    expected = paired_bootstrap_r2_diff(y, wide["cross_attention"], wide["target_only"], n_boot=1000, seed=0)
    row = table.loc["Ours (CrossAttention)"]
    assert row["R² の差"] == f"{expected['diff']:+.3f}"
    assert row["95 % CI"] == f"[{expected['low']:+.3f}, {expected['high']:+.3f}]"
    wins = (results[results.label_fraction == 0.1].pivot_table(index="seed", columns="method", values="r2")
            .pipe(lambda t: int((t["cross_attention"] > t["target_only"]).sum())))
    assert row["シードごとの勝ち"] == f"{wins}/3"
    assert "Target only" not in table.index  # 基準は自分自身と比べない
    assert "pooled" in md  # 全シードをつなげた比較であることを書いている


def test_findings_are_generated_from_the_numbers(report):
    results, _, md, _ = report
    section = md.split("## 6. 所見", 1)[1].split("\n## ", 1)[0]
    for fraction in (0.05, 0.1):
        means = results[results.label_fraction == fraction].groupby("display_name")["r2"].mean()
        assert f"最も高いのは {means.idxmax()}（{means.max():.3f}）" in section
        assert f"最も低いのは {means.idxmin()}（{means.min():.3f}）" in section
    assert "Ours (CrossAttention) は Target only を上回り、差の 95 % CI は 0 を含まない" in section
    assert "最大が hr（0.250）" in section
    assert "比 4.0 倍" in section


def test_findings_follow_the_data_when_ours_loses_or_ties():
    results, predictions = make_outputs({"target_only": 0.3, "cross_attention": 0.6}, seeds=(0,), fractions=(0.1,))
    summary = summarize_results(results, n_boot=200)
    comparisons = paired_comparisons(predictions, results, "target_only", n_boot=200)
    text = " ".join(findings(summary, comparisons, NAMES))
    assert "を下回り" in text and "シードが 1 つ" in text
    tie = predictions.copy()
    tie.loc[tie.method == "cross_attention", "y_pred"] = tie.loc[tie.method == "target_only", "y_pred"].to_numpy()
    comparisons = paired_comparisons(tie, results, "target_only", n_boot=200)
    assert "はっきりしない" in " ".join(findings(summary, comparisons, NAMES))


def test_footnotes_name_the_sources(report):
    _, _, md, _ = report
    notes = md.split("## 注", 1)[1]
    assert "Daumé III" in notes and "この名前の公開された手法はない" in notes
    assert "Gorishniy" in notes and "TabR" in notes
    assert "Kotelnikov" not in notes  # TabDDPM はこの結果に含まれていない


def test_html_is_self_contained(report):
    _, _, md, html = report
    sources = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html)
    assert sources and all(s.startswith("data:") for s in sources)
    assert "<link" not in html and "<script" not in html
    assert "data:image/png;base64,iVBORw0KGgo" in html  # PNG の署名を base64 にしたもの
    assert "![点](figures/dot.png)" in md
    assert "test-123" in md and "test-123" in html
    assert "Domain Adaptation Benchmark Report" in html and '<meta charset="utf-8">' in html


def test_bad_input_is_explained():
    results, _ = make_outputs({"target_only": 0.5}, seeds=(0,), fractions=(0.1,))
    with pytest.raises(ReportError, match="r2"):
        build_blocks(results.drop(columns="r2"))
    with pytest.raises(ReportError, match="空"):
        build_blocks(results.iloc[:0])
