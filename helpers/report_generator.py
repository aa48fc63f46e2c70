"""ベンチマークの結果から "Domain Adaptation Benchmark Report" を Markdown と HTML で書く
（ノートブック 07 で紹介）。

数値はすべて results.csv / predictions.csv / shift.csv の表から計算し、手で書いた数値や主張はない。
結果の文章（「所見」）も数値から組み立てる。レポートの内容は一度だけ「ブロック」（見出し・段落・
箇条書き・表・図）の列として作り、それを Markdown と HTML の 2 通りに書き出す。HTML は図を
base64 の PNG として埋め込むので、1 ファイルで完結する（追加の依存なし）。
"""
from __future__ import annotations

import base64
import html
import logging
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.errors import CourseError
from helpers.metrics import bootstrap_ci, paired_bootstrap_r2_diff

log = logging.getLogger(__name__)

TITLE = "Domain Adaptation Benchmark Report"
RESULT_COLUMNS = {"method", "display_name", "seed", "label_fraction", "r2", "rmse", "fit_seconds"}
PREDICTION_COLUMNS = {"seed", "label_fraction", "method", "row_id", "y_true", "y_pred"}
#: shift.csv の距離（レポートの表の並び順）
SHIFT_MEASURES = ("wasserstein_1d", "sliced_wasserstein", "wasserstein_nd")
#: 講座の提案手法（所見で基準と比べる）
OURS = "cross_attention"
#: 手法名の由来と出典（レポートの脚注）
REFERENCES = {
    "fehda": "FEHDA: この講座では H. Daumé III, \"Frustratingly Easy Domain Adaptation\" (ACL 2007) の特徴量拡張 "
             "（source x → [x, x, 0], target x → [x, 0, x]）と HistGradientBoostingRegressor の組み合わせをこう呼ぶ。"
             "この名前の公開された手法はない。",
    "tabddpm": "TabDDPM: A. Kotelnikov, D. Baranchuk, I. Rubachev, A. Babenko, \"TabDDPM: Modelling Tabular Data "
               "with Diffusion Models\" (ICML 2023) にならったガウス拡散（数値特徴量のみ）で target 行を合成し、"
               "本物の行と合わせて回帰器を学習する。",
    "cross_attention": "Ours (CrossAttention): 参照した設計は Y. Gorishniy et al., \"TabR: Tabular Deep Learning "
                       "Meets Nearest Neighbors\" (2023; ICLR 2024) の検索（近傍への注意）に基づく表データモデル。"
                       "この講座の実装はそれを source の記憶へのドメイン適応に使う簡略版。",
}


class ReportError(CourseError, ValueError):
    """レポートの入力（結果の表）の誤り。"""


# ---- 集計 ------------------------------------------------------------------------------
def _check_columns(frame: pd.DataFrame, required: set[str], name: str) -> None:
    missing = sorted(required - set(frame.columns))
    if missing:
        raise ReportError(f"{name} に必要な列がありません: {missing}（benchmark が書いた {name}.csv を渡してください）。")


def summarize_results(results: pd.DataFrame, n_boot: int = 1000) -> pd.DataFrame:
    """ラベル割合 × 手法ごとに、シード間の R² 平均・標準偏差・95 % CI（平均のブートストラップ）と RMSE・学習時間の平均。

    行の順は、ラベル割合の昇順、その中は R² 平均の降順。
    """
    _check_columns(results, RESULT_COLUMNS, "results")
    rows = []
    for (fraction, method), group in results.groupby(["label_fraction", "method"], sort=False):
        ci = bootstrap_ci(group["r2"], n_boot=n_boot, seed=0)
        rows.append({
            "label_fraction": fraction, "method": method, "display_name": group["display_name"].iloc[0],
            "n_seeds": ci["n"], "r2_mean": ci["mean"], "r2_std": ci["std"], "r2_low": ci["low"], "r2_high": ci["high"],
            "rmse_mean": group["rmse"].mean(), "fit_seconds_mean": group["fit_seconds"].mean(),
        })
    table = pd.DataFrame(rows)
    return table.sort_values(["label_fraction", "r2_mean"], ascending=[True, False], ignore_index=True)


def paired_comparisons(predictions: pd.DataFrame, results: pd.DataFrame, reference: str,
                       n_boot: int = 1000) -> pd.DataFrame:
    """各手法と基準手法の R² の差を、テスト行の対応ありブートストラップで比べる（ラベル割合ごと）。

    全シードのテスト行をつなげて（pooled）1 つの R² を計算し、行を再標本化する。シードごとの
    R² で基準に勝った数（wins / n_seeds）も添える。
    """
    _check_columns(predictions, PREDICTION_COLUMNS, "predictions")
    if reference not in set(predictions["method"]):
        raise ReportError(f"基準手法 {reference!r} の予測がありません。benchmark.methods に入れてください。")
    rows = []
    for fraction, frame in predictions.groupby("label_fraction", sort=True):
        wide = frame.pivot_table(index=["seed", "row_id"], columns="method", values="y_pred", sort=True)
        y_true = frame.drop_duplicates(["seed", "row_id"]).set_index(["seed", "row_id"])["y_true"].loc[wide.index]
        r2_by_seed = results[results["label_fraction"] == fraction].pivot_table(index="seed", columns="method",
                                                                               values="r2")
        for method in (m for m in dict.fromkeys(frame["method"]) if m != reference):
            both = wide[[method, reference]].dropna()
            test = paired_bootstrap_r2_diff(y_true.loc[both.index], both[method], both[reference], n_boot=n_boot, seed=0)
            seeds = r2_by_seed[[method, reference]].dropna()
            rows.append({
                "label_fraction": fraction, "method": method, "reference": reference, **test,
                "wins": int((seeds[method] > seeds[reference]).sum()), "n_seeds": len(seeds),
                "n_rows": len(both),
            })
    return pd.DataFrame(rows)


def findings(summary: pd.DataFrame, comparisons: pd.DataFrame | None, names: Mapping[str, str],
             shift: pd.DataFrame | None = None) -> list[str]:
    """数値から所見の文を組み立てる（手で書いた主張は入れない）。"""
    lines = []
    for fraction, table in summary.groupby("label_fraction", sort=True):
        best, worst = table.iloc[0], table.iloc[-1]
        line = (f"ラベル割合 {fraction:.0%}: R² の平均が最も高いのは {best.display_name}（{best.r2_mean:.3f}）、"
                f"最も低いのは {worst.display_name}（{worst.r2_mean:.3f}）。")
        if comparisons is not None and not comparisons.empty:
            rows = comparisons[comparisons["label_fraction"] == fraction]
            ours = rows[rows["method"] == OURS]
            if not ours.empty:
                c = ours.iloc[0]
                ref = names.get(c.reference, c.reference)
                if c.low > 0:
                    verdict = f"{names.get(OURS, OURS)} は {ref} を上回り、差の 95 % CI は 0 を含まない"
                elif c.high < 0:
                    verdict = f"{names.get(OURS, OURS)} は {ref} を下回り、差の 95 % CI は 0 を含まない"
                else:
                    verdict = f"{names.get(OURS, OURS)} と {ref} の差は 95 % CI が 0 を含むので、はっきりしない"
                line += (f"{verdict}（R² の差 {c['diff']:+.3f}, 95 % CI [{c.low:+.3f}, {c.high:+.3f}]、"
                         f"シードごとの勝ち {c.wins}/{c.n_seeds}）。")
            elif OURS not in set(summary["method"]):
                line += f"{names.get(OURS, 'Ours')} はこの実行に含まれていない。"
        lines.append(line)
    if summary["n_seeds"].max() < 2:
        lines.append("シードが 1 つなので、シード間のばらつき（標準偏差・CI）はまだ測れていない。")
    if shift is not None and not shift.empty:
        one_d = shift[(shift["measure"] == "wasserstein_1d") & (shift["comparison"] == "target_test")]
        if not one_d.empty:
            mean = one_d.groupby("feature")["value"].mean().sort_values(ascending=False)
            lines.append(f"source と target テストの 1 次元 Wasserstein 距離は、最大が {mean.index[0]}（{mean.iloc[0]:.3f}）、"
                         f"中央値が {mean.median():.3f}（source の標準偏差単位、シード平均）。")
        sliced = shift[shift["measure"] == "sliced_wasserstein"].groupby("comparison")["value"].mean()
        if {"target_test", "source_halves"} <= set(sliced.index) and sliced["source_halves"] > 0:
            lines.append(f"スライス Wasserstein 距離は source ↔ target テストで {sliced['target_test']:.3f}、"
                         f"source を半分に分けた 2 つの間で {sliced['source_halves']:.3f}"
                         f"（比 {sliced['target_test'] / sliced['source_halves']:.1f} 倍）。")
    return lines


# ---- ブロック → Markdown / HTML ----------------------------------------------------------------
def _fmt(value: Any, digits: int) -> str:
    return "—" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def _md_table(frame: pd.DataFrame) -> str:
    cells = [[str(c) for c in frame.columns], *[[str(v) for v in row] for row in frame.itertuples(index=False)]]
    lines = ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("---" for _ in frame.columns) + "|")
    return "\n".join(lines)


def to_markdown(blocks: list[tuple[str, Any]], base: Path | None = None) -> str:
    """ブロックの列を Markdown にする（図は base フォルダからの相対パスで参照）。"""
    out = []
    for kind, value in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + value)
        elif kind == "p":
            out.append(value)
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in value))
        elif kind == "table":
            out.append(_md_table(value))
        elif kind == "figure":
            title, path = value
            out.append(f"![{title}]({Path(os.path.relpath(path, base)).as_posix() if base else path})")
    return "\n\n".join(out) + "\n"


def to_html(blocks: list[tuple[str, Any]], title: str = TITLE) -> str:
    """ブロックの列を 1 ファイルで完結する HTML にする（図は base64 の data URI）。"""
    body = []
    for kind, value in blocks:
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{html.escape(value)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{html.escape(value)}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in value) + "</ul>")
        elif kind == "table":
            body.append(value.to_html(index=False, border=0, escape=True))
        elif kind == "figure":
            caption, path = value
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.6}"
             "table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.25rem .6rem;"
             "text-align:right}th{background:#f3f3f3}img{max-width:100%}figcaption{color:#555}")
    return (f'<!DOCTYPE html>\n<html lang="ja">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>{style}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


# ---- レポート本体 --------------------------------------------------------------------------
def _results_table(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "手法": table["display_name"],
        "R² 平均": table["r2_mean"].map(lambda v: _fmt(v, 3)),
        "± 標準偏差": [_fmt(sd, 3) if n > 1 else "—" for sd, n in zip(table["r2_std"], table["n_seeds"])],
        "95 % CI": [f"[{_fmt(lo, 3)}, {_fmt(hi, 3)}]" if n > 1 else "—"
                    for lo, hi, n in zip(table["r2_low"], table["r2_high"], table["n_seeds"])],
        "RMSE 平均": table["rmse_mean"].map(lambda v: _fmt(v, 3)),
        "学習秒数": table["fit_seconds_mean"].map(lambda v: _fmt(v, 2)),
        "シード数": table["n_seeds"],
    })


def _comparison_table(rows: pd.DataFrame, names: Mapping[str, str]) -> pd.DataFrame:
    return pd.DataFrame({
        "手法": rows["method"].map(lambda m: names.get(m, m)),
        "R² の差": rows["diff"].map(lambda v: f"{v:+.3f}"),
        "95 % CI": [f"[{lo:+.3f}, {hi:+.3f}]" for lo, hi in zip(rows["low"], rows["high"])],
        # p 値の分解能は 2 / 再標本数（0 になったら「それ未満」と書く）
        "p 値（近似）": [f"< {2 / n:.3f}" if p == 0 else _fmt(p, 3) for p, n in zip(rows["p_value"], rows["n_boot"])],
        "シードごとの勝ち": [f"{w}/{n}" for w, n in zip(rows["wins"], rows["n_seeds"])],
        "テスト行数": rows["n_rows"],
    })


def _shift_table(shift: pd.DataFrame) -> pd.DataFrame:
    """特徴量ごとの 1 次元距離と多変量の距離を、比較（target テスト / target 学習プール / source どうし）ごとの列に。"""
    table = shift.pivot_table(index=["measure", "feature"], columns="comparison", values="value", aggfunc="mean")
    order = [c for c in ("target_test", "target_pool", "source_halves") if c in table.columns]
    table = table[order].reset_index()
    measures = table["measure"].map({m: i for i, m in enumerate(SHIFT_MEASURES)})
    table = table.assign(_m=measures).sort_values(["_m", order[0]], ascending=[True, False])
    return pd.DataFrame({
        "距離": table["measure"], "特徴量": table["feature"],
        **{f"source ↔ {c}": table[c].map(lambda v: _fmt(v, 3)) for c in order},
    })


def build_blocks(results: pd.DataFrame, *, shift: pd.DataFrame | None = None,
                 predictions: pd.DataFrame | None = None, config: Any = None,
                 figures: Mapping[str, Path] | None = None, meta: Mapping[str, Any] | None = None,
                 search: pd.DataFrame | None = None) -> list:
    """レポートの内容をブロックの列として組み立てる（search: benchmark.tune が書いた search.csv の表）。"""
    _check_columns(results, RESULT_COLUMNS, "results")
    if results.empty:
        raise ReportError("results が空です。ベンチマークが 1 行も結果を書いていません。")
    bench = getattr(config, "benchmark", None)
    reference = str(getattr(bench, "reference", "target_only"))
    n_boot = int(getattr(bench, "n_boot", 1000))
    names = dict(zip(results["method"], results["display_name"]))
    summary = summarize_results(results, n_boot=n_boot)
    comparisons = (paired_comparisons(predictions, results, reference, n_boot=n_boot)
                   if predictions is not None and reference in set(predictions["method"]) else None)

    first = results.iloc[0]
    setup = {
        "データセット": first.get("dataset", "—"), "プロファイル": first.get("profile", "—"),
        "デバイス": ", ".join(sorted(results["device"].astype(str).unique())) if "device" in results else "—",
        "作成日時": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "シード": ", ".join(str(s) for s in sorted(results["seed"].unique())),
        "ラベル割合": ", ".join(f"{f:.0%}" for f in sorted(results["label_fraction"].unique())),
        "手法": ", ".join(dict.fromkeys(results["display_name"])),
        **{str(k): str(v) for k, v in (meta or {}).items() if k != "versions"},
    }
    blocks: list[tuple[str, Any]] = [("h1", TITLE), ("h2", "1. 設定"),
                                     ("ul", [f"{k}: {v}" for k, v in setup.items()])]
    versions = (meta or {}).get("versions")
    if isinstance(versions, pd.DataFrame):
        blocks += [("p", "バージョン:"), ("table", versions.reset_index())]

    sizes = results.drop_duplicates(["seed", "label_fraction"]).assign(
        label_fraction=lambda f: f["label_fraction"].map(lambda v: f"{v:.0%}"))
    size_cols = [c for c in ("seed", "label_fraction", "n_source", "n_target_train", "n_target_test") if c in sizes]
    blocks += [("h2", "2. データと分割"),
               ("p", "分割はシードとラベル割合の組ごとに 1 回だけ作り、すべての手法に同じものを渡した。"
                     "target テスト行はどの手法の学習にも使っていない。"),
               ("table", sizes[size_cols].rename(columns={
                   "seed": "シード", "label_fraction": "ラベル割合", "n_source": "source 行数",
                   "n_target_train": "target 学習（ラベルあり）", "n_target_test": "target テスト"}))]

    if shift is not None and not shift.empty:
        blocks += [("h2", "3. ドメインのずれ（Wasserstein 距離）"),
                   ("p", "source の平均・標準偏差で標準化した単位（シード平均）。wasserstein_1d は特徴量ごと、"
                         "sliced_wasserstein は全行の無作為な 1 次元射影の平均、wasserstein_nd は無作為に選んだ"
                         "少数の行での厳密な多変量距離。source_halves は source を半分に分けた 2 つの間の距離で、"
                         "有限標本でどれくらいの値が出るかの目安になる。"),
                   ("table", _shift_table(shift))]

    if search is not None and not search.empty:
        blocks += [("h2", "ハイパーパラメータ探索（Optuna）"),
                   ("p", "手法ごとに 1 つの study で探索し、最良の値でベンチマークした。目的関数は探索用の分割"
                         "（trainer.seed とその label_fraction）のラベル付き target 行の k-fold 平均 R² で、"
                         "target テスト行は使っていない。"),
                   ("table", search[["display_name", "n_trials", "best_trial", "best_cv_r2", "best_params"]].rename(
                       columns={"display_name": "手法", "n_trials": "試行数", "best_trial": "最良の試行",
                                "best_cv_r2": "k-fold R²", "best_params": "最良の値"}).round({"k-fold R²": 3}))]

    blocks.append(("h2", "4. 結果（target テスト）"))
    blocks.append(("p", "R² はシード間の平均 ± 標準偏差。95 % CI はシードの R² の平均のブートストラップ区間"
                        f"（{n_boot} 回）。シードが 1 つのときは標準偏差と CI を — とする。"))
    for fraction, table in summary.groupby("label_fraction", sort=True):
        blocks += [("h3", f"ラベル割合 {fraction:.0%}"), ("table", _results_table(table))]

    if comparisons is not None and not comparisons.empty:
        blocks += [("h2", f"5. 基準 {names.get(reference, reference)} との対応ある比較"),
                   ("p", "R² の差 = 手法 − 基準。全シードのテスト行をつなげて（pooled）R² を計算し、テスト行を "
                         f"{n_boot} 回再標本化した対応ありブートストラップの 95 % CI（同じ行で両手法を比べる）。"
                         "この CI はテスト行の標本のばらつきだけを表し、学習の乱数によるばらつきは"
                         "「シードごとの勝ち」で見る。")]
        for fraction, rows in comparisons.groupby("label_fraction", sort=True):
            rows = rows.sort_values("diff", ascending=False)
            blocks += [("h3", f"ラベル割合 {fraction:.0%}"), ("table", _comparison_table(rows, names))]

    blocks += [("h2", "6. 所見（数値から自動生成）"), ("ul", findings(summary, comparisons, names, shift))]
    if figures:
        blocks.append(("h2", "7. 図"))
        blocks += [("figure", (title, Path(path))) for title, path in figures.items()]
    notes = [text for method, text in REFERENCES.items() if method in names]
    blend = _blend_note(config) if "cross_attention" in names else None
    if blend:
        notes.append(blend)
    if notes:
        blocks += [("h2", "注"), ("ul", notes)]
    return blocks


def _blend_note(config: Any) -> str | None:
    """Ours が FEHDA の予測と混ぜているなら、その割合を注に書く（設定の methods.cross_attention.gbdt_blend）。"""
    blend = getattr(getattr(getattr(config, "methods", None), "cross_attention", None), "gbdt_blend", None)
    if not blend:
        return None
    return (f"Ours (CrossAttention) の予測は、注意モデル {1 - float(blend):.0%} と FEHDA {float(blend):.0%} の"
            "混合（methods.cross_attention.gbdt_blend）。注意モデルだけの性能ではない。")


def write_report(results: pd.DataFrame, out_dir: str | Path, *, shift: pd.DataFrame | None = None,
                 predictions: pd.DataFrame | None = None, config: Any = None,
                 figures: Mapping[str, Path] | None = None, meta: Mapping[str, Any] | None = None,
                 search: pd.DataFrame | None = None, stem: str = "report") -> tuple[Path, Path]:
    """report.md と report.html を out_dir に書き、2 つのパスを返す。

    figures: {図の題: PNG のパス}（Markdown は out_dir からの相対パスで参照、HTML は埋め込み）。
    config: 合成済みの設定（benchmark.reference と benchmark.n_boot を使う）。
    meta: 「設定」節に足す項目（"versions" に versions_table() の DataFrame を渡すと表にする）。
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = build_blocks(results, shift=shift, predictions=predictions, config=config, figures=figures, meta=meta,
                          search=search)
    md_path, html_path = out_dir / f"{stem}.md", out_dir / f"{stem}.html"
    md_path.write_text(to_markdown(blocks, out_dir), encoding="utf-8")
    html_path.write_text(to_html(blocks), encoding="utf-8")
    log.info("レポートを書きました: %s, %s", md_path, html_path)
    return md_path, html_path
