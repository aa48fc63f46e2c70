"""ベンチマーク: 手法 × シード × ラベル割合を同じ分割で比べ、表・図・レポートを書く（ノートブック 10 で紹介。
CLI アプリとしての使い方はノートブック 08）。

    uv run benchmark profile=quick
    uv run benchmark benchmark.methods=[fehda,target_only] benchmark.seeds=[0,1] benchmark.label_fractions=[0.05,0.1]

出力フォルダ（Hydra の run フォルダ）に書くもの:
- results.csv: 1 行 = (手法, シード, ラベル割合)。終わるたびに 1 行ずつ追記するので、途中で落ちても
  それまでの結果は残り、同じフォルダで再実行すると済んだ行は飛ばす（再開）。
- predictions.csv: target テスト行ごとの予測（対応ある比較に使う）。
- shift.csv: シードごとのドメインのずれ（Wasserstein 距離）。
- figures/*.png, report.md, report.html。
`tracking.enabled=true` なら MLflow に記録する（親 run 1 つ + (手法, シード, ラベル割合) ごとの子 run）。
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from helpers.config import METHOD_NAMES, VERSION_BASE, register_configs, validate
from helpers.data import DomainData, DomainSplit, load_dataset, make_split
from helpers.env import (
    describe_device,
    limit_threads,
    progress_bar,
    project_root,
    resolve_device,
    seed_everything,
)
from helpers.errors import CourseError
from helpers.models import TORCH_METHODS, build_method, display_name

log = logging.getLogger(__name__)

RESULTS_CSV, PREDICTIONS_CSV, SHIFT_CSV = "results.csv", "predictions.csv", "shift.csv"
SEARCH_CSV, TRIALS_CSV = "search.csv", "search_trials.csv"
KEY = ["seed", "label_fraction", "method"]
RESULT_COLUMNS = [
    "dataset", "method", "display_name", "seed", "label_fraction", "r2", "rmse", "fit_seconds", "predict_seconds",
    "n_source", "n_target_train", "n_target_test", "device", "profile", "config_hash",
]
#: 厳密な多変量 Wasserstein 距離に使う各ドメインの最大行数（n=200 で 1〜4 秒）
ND_MAX_ROWS = 200

#: on_result(row, model): 1 つの (手法, シード, ラベル割合) が終わるたびに呼ぶ
ResultCallback = Callable[[dict[str, Any], Any], None]


class BenchmarkError(CourseError, ValueError):
    """ベンチマークの入力や出力フォルダの問題。"""


# ---- データ ---------------------------------------------------------------------------------
def load_data(cfg: DictConfig) -> DomainData:
    """cfg.data からデータを読む。合成データの生成には trainer.seed を使う（分割と手法の seed とは別）。"""
    if cfg.data.name == "synthetic":
        if cfg.data.synthetic is None:
            raise BenchmarkError("data=synthetic には data.synthetic の設定が必要です（conf/data/synthetic.yaml）。")
        return load_dataset("synthetic", **OmegaConf.to_container(cfg.data.synthetic, resolve=True),
                            seed=cfg.trainer.seed)
    if cfg.data.name == "bikeshare":
        return load_dataset("bikeshare", path=Path(cfg.paths.data_dir) / "bikeshare.csv")
    return load_dataset(cfg.data.name)  # 未知の名前は helpers.data が日本語の DataError にする


def split_for(cfg: DictConfig, data: DomainData, seed: int, label_fraction: float) -> DomainSplit:
    """cfg.data の設定で分割を 1 つ作る（全手法がこれを共有する）。"""
    return make_split(
        data, label_fraction=label_fraction, target_test_fraction=cfg.data.target_test_fraction,
        min_test_rows=cfg.data.min_test_rows, max_source_rows=cfg.data.max_source_rows, seed=seed,
    )


def device_for(cfg: DictConfig, methods) -> str:
    """methods に PyTorch の手法があるときだけ trainer.device を解決する（なければ "cpu"。torch を import しない）。"""
    return resolve_device(cfg.trainer.device) if TORCH_METHODS & set(methods) else "cpu"


def _all_methods(cfg: DictConfig) -> list[str]:
    """ベンチマークと（選ばれていれば）探索で使う手法の名前。"""
    return [*cfg.benchmark.methods, *(cfg.search.methods if cfg.search is not None else ())]


def measure_shift(split: DomainSplit, seed: int = 0, nd_max_rows: int | None = None) -> pd.DataFrame:
    """source と target のずれを測る（列: seed, comparison, measure, feature, value）。

    comparison: target_test（テスト行）、target_pool（学習プール = ラベルあり + なし）、
    source_halves（source を無作為に半分に分けた 2 つ。有限標本で出る値の目安）。
    wasserstein_nd は各ドメイン最大 nd_max_rows 行（省略時は ND_MAX_ROWS）で測る。
    """
    from helpers.metrics import (
        sliced_wasserstein,
        wasserstein_nd,
        wasserstein_per_feature,
    )

    halves = np.random.default_rng([seed, 3]).permutation(len(split.X_source))
    half = len(halves) // 2
    pairs = {
        "target_test": (split.X_source, split.X_target_test),
        "target_pool": (split.X_source, np.vstack([split.X_target_train, split.X_target_unlabeled])),
        "source_halves": (split.X_source[halves[:half]], split.X_source[halves[half:]]),
    }
    rows = []
    for comparison, (Xs, Xt) in pairs.items():
        per_feature = wasserstein_per_feature(Xs, Xt, split.feature_names)
        rows += [(comparison, "wasserstein_1d", f, v) for f, v in per_feature.items()]
        rows.append((comparison, "sliced_wasserstein", "(multivariate)", sliced_wasserstein(Xs, Xt, seed=seed)))
        rows.append((comparison, "wasserstein_nd", "(multivariate)",
                     wasserstein_nd(Xs, Xt, max_rows=nd_max_rows or ND_MAX_ROWS, seed=seed)))
    frame = pd.DataFrame(rows, columns=["comparison", "measure", "feature", "value"])
    frame.insert(0, "seed", seed)
    return frame


# ---- 再開（resume）と追記 -------------------------------------------------------------------------
def config_hash(cfg: DictConfig, method: str) -> str:
    """結果を左右する設定（data・その手法のパラメータ・決定性）の短いハッシュ。再開の安全確認に使う。

    data.label_fraction はベンチマークでは使わない（benchmark.label_fractions を使う）ので含めない。
    """
    data = OmegaConf.to_container(cfg.data, resolve=True)
    data.pop("label_fraction")
    content = {
        "data": data,
        "data_seed": cfg.trainer.seed if cfg.data.name == "synthetic" else None,  # 合成データの生成に使う
        "method": OmegaConf.to_container(cfg.methods[method], resolve=True),
        "deterministic": bool(cfg.trainer.deterministic),
    }
    return hashlib.sha1(json.dumps(content, sort_keys=True).encode()).hexdigest()[:12]


def _append(frame: pd.DataFrame, path: Path) -> None:
    """CSV に行を追記する（ファイルがなければ見出し付きで作る）。"""
    frame.to_csv(path, mode="a", header=not path.exists(), index=False)


def _finished(out_dir: Path, cfg: DictConfig) -> pd.DataFrame:
    """前回までに終わった行を読み、設定が変わっていないか確かめ、予測ファイルをそれに合わせる。"""
    results_path = out_dir / RESULTS_CSV
    if not results_path.exists():
        for name in (PREDICTIONS_CSV, SHIFT_CSV):  # 結果の行がないのに残っているのは、途中で落ちた前回の残り
            (out_dir / name).unlink(missing_ok=True)
        return pd.DataFrame(columns=RESULT_COLUMNS)
    done = pd.read_csv(results_path)
    changed = [f"{r.method} (seed={r.seed}, label_fraction={r.label_fraction})"
               for r in done.itertuples() if r.method in cfg.methods and r.config_hash != config_hash(cfg, r.method)]
    if changed:
        raise BenchmarkError(
            f"{results_path} には別の設定で得た結果があります: {changed[:3]}。"
            "結果が混ざらないよう、別の出力フォルダ（hydra.run.dir=...）を使うか、そのフォルダを消してください。"
        )
    predictions_path = out_dir / PREDICTIONS_CSV
    if predictions_path.exists():  # 結果の行がない（予測の書き込み後に落ちた）予測を捨てる
        predictions = pd.read_csv(predictions_path)
        keep = predictions.merge(done[KEY], on=KEY, how="inner")
        if len(keep) < len(predictions):
            keep.to_csv(predictions_path, index=False)
    log.info("%s から %d 行の結果を読みました（これらは飛ばします）", results_path, len(done))
    return done


# ---- 本体 ---------------------------------------------------------------------------------------
def run_benchmark(cfg: DictConfig, out_dir: Path | None = None, *,
                  on_result: ResultCallback | None = None) -> pd.DataFrame:
    """benchmark.methods × benchmark.seeds × benchmark.label_fractions を実行し、結果の表を返す。

    分割は (シード, ラベル割合) ごとに 1 回だけ作り、同じものを全手法に渡す。手法の乱数もそのシード。
    out_dir を渡すと results.csv・predictions.csv・shift.csv に 1 行ずつ追記し、済んだ行は飛ばす
    （返す表は、そのフォルダの results.csv の全行）。
    data.label_fraction ではなく benchmark.label_fractions のリストを使う。
    """
    bench = cfg.benchmark
    if not bench.methods or not bench.seeds or not bench.label_fractions:
        raise BenchmarkError("benchmark.methods・benchmark.seeds・benchmark.label_fractions は空にできません。")
    if cfg.data.label_fraction not in bench.label_fractions:
        log.warning("data.label_fraction=%s はベンチマークでは使いません（benchmark.label_fractions=%s を使う）。",
                    cfg.data.label_fraction, list(bench.label_fractions))
    device = device_for(cfg, bench.methods)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
    done = _finished(out_dir, cfg) if out_dir is not None else pd.DataFrame(columns=RESULT_COLUMNS)
    done_keys = {(int(s), float(f), m) for s, f, m in done[KEY].itertuples(index=False)}
    shift_path = out_dir / SHIFT_CSV if out_dir is not None else None
    shift_seeds = set(pd.read_csv(shift_path)["seed"]) if shift_path is not None and shift_path.exists() else set()

    runs = [(int(s), float(f), str(m)) for s in bench.seeds for f in bench.label_fractions for m in bench.methods]
    todo = [key for key in runs if key not in done_keys]
    log.info("ベンチマーク: %d 件（済み %d 件）、device=%s", len(runs), len(runs) - len(todo), device)
    data = load_data(cfg) if todo or (shift_path is not None and set(bench.seeds) - shift_seeds) else None
    rows: list[dict[str, Any]] = []
    bar = progress_bar(total=len(runs), initial=len(runs) - len(todo), desc="ベンチマーク",
                       enabled=bool(cfg.trainer.progress))
    try:
        for seed in dict.fromkeys(s for s, _, _ in runs):
            for fraction in dict.fromkeys(f for s, f, _ in runs if s == seed):
                methods = [m for s, f, m in todo if s == seed and f == fraction]
                need_shift = shift_path is not None and seed not in shift_seeds
                if not methods and not need_shift:
                    continue
                split = split_for(cfg, data, seed, fraction)
                if need_shift:
                    _append(measure_shift(split, seed), shift_path)
                    shift_seeds.add(seed)
                for method in methods:
                    bar.set_postfix_str(f"{method} seed={seed} lf={fraction}")
                    row, model, predictions = _run_one(cfg, split, method, seed, fraction, device)
                    if out_dir is not None:  # 予測を先に、結果の行を後に書く（行があれば予測もある）
                        _append(predictions, out_dir / PREDICTIONS_CSV)
                        _append(pd.DataFrame([row], columns=RESULT_COLUMNS), out_dir / RESULTS_CSV)
                    rows.append(row)
                    if on_result is not None:
                        on_result(row, model)
                    bar.update(1)
    finally:
        bar.close()
    new = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    results = pd.concat([done, new], ignore_index=True) if not done.empty else new
    # 並び: シード → ラベル割合 → 手法（METHOD_NAMES の順）。フォルダにある行はすべて返す
    rank = results["method"].map({m: i for i, m in enumerate(METHOD_NAMES)})
    return results.assign(_rank=rank).sort_values(["seed", "label_fraction", "_rank"]).drop(
        columns="_rank").reset_index(drop=True)


def _run_one(cfg: DictConfig, split: DomainSplit, method: str, seed: int, fraction: float,
             device: str) -> tuple[dict[str, Any], Any, pd.DataFrame]:
    """1 つの手法を学習・予測して、結果の行・学習済みモデル・テスト行ごとの予測を返す。"""
    from helpers.metrics import r2, rmse

    seed_everything(seed, deterministic=bool(cfg.trainer.deterministic), with_torch=method in TORCH_METHODS)
    model = build_method(method, OmegaConf.to_container(cfg.methods[method], resolve=True), seed=seed,
                         device=device, progress=bool(cfg.trainer.progress))
    with limit_threads(cfg.trainer.cpu_threads):
        start = time.perf_counter()
        model.fit(split)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        y_pred = np.asarray(model.predict(split.X_target_test), dtype=float).ravel()
        predict_seconds = time.perf_counter() - start
    y_true = split.y_target_test.astype(float)
    row = {
        "dataset": split.dataset, "method": method, "display_name": display_name(method), "seed": seed,
        "label_fraction": fraction, "r2": r2(y_true, y_pred), "rmse": rmse(y_true, y_pred),
        "fit_seconds": fit_seconds, "predict_seconds": predict_seconds, "n_source": len(split.y_source),
        "n_target_train": len(split.y_target_train), "n_target_test": len(y_true),
        "device": device if method in TORCH_METHODS else "cpu",  # scikit-learn の手法はいつも CPU
        "profile": cfg.profile_name, "config_hash": config_hash(cfg, method),
    }
    log.info("%s seed=%d lf=%s: R²=%.3f（学習 %.1f 秒）", method, seed, fraction, row["r2"], fit_seconds)
    predictions = pd.DataFrame({"seed": seed, "label_fraction": fraction, "method": method,
                                "row_id": split.target_test_ids, "y_true": y_true, "y_pred": y_pred})
    return row, model, predictions


def load_outputs(out_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """出力フォルダから results・predictions・shift を読む（ないファイルは None）。"""
    out_dir = Path(out_dir)
    if not (out_dir / RESULTS_CSV).exists():
        raise BenchmarkError(f"{out_dir / RESULTS_CSV} がありません。先にベンチマークを実行してください。")

    def read(name: str) -> pd.DataFrame | None:
        return pd.read_csv(out_dir / name) if (out_dir / name).exists() else None

    return pd.read_csv(out_dir / RESULTS_CSV), read(PREDICTIONS_CSV), read(SHIFT_CSV)


# ---- ハイパーパラメータ探索（hparams_search） -------------------------------------------------------
def study_name_for(cfg: DictConfig, method: str) -> str:
    """study 名 = search.study_name + 手法名 + 探索の条件のハッシュ。

    条件（データ・手法の既定値・空間・fold 数・sampler・シード・ラベル割合）が同じときだけ同じ study を再開し、
    違えば別の study になる（違う条件の試行が混ざらない）。
    """
    search = cfg.search
    content = {"base": config_hash(cfg, method), "space": OmegaConf.to_container(search.spaces[method], resolve=True),
               "n_folds": search.n_folds, "sampler": search.sampler, "pruner": search.pruner,
               "seed": cfg.trainer.seed, "label_fraction": cfg.data.label_fraction}
    digest = hashlib.sha1(json.dumps(content, sort_keys=True).encode()).hexdigest()[:8]
    return f"{search.study_name}-{method}-{digest}"


def tune(cfg: DictConfig, out_dir: Path | None = None, *, track: bool = False) -> tuple[DictConfig, pd.DataFrame]:
    """search.methods の手法ごとに Optuna で探索し、(最良の値を methods.<手法> に入れた設定, 要約の表) を返す。

    探索の分割は trainer.seed と data.label_fraction の 1 つ。目的関数はそのラベル付き target 行の k-fold の
    平均 R² で、target テスト行は使わない（helpers/search.py）。track=True なら試行ごとに入れ子の MLflow run を作る
    （親 run を開いてから呼ぶ）。out_dir には search.csv（要約）と search_trials.csv（全試行）を書く。
    """
    from helpers.search import best_params, finished_trials, mlflow_trial_callback, run_study

    search = cfg.search
    if search is None:
        raise BenchmarkError("hparams_search が選ばれていません（例: hparams_search=optuna）。")
    seed, fraction = int(cfg.trainer.seed), float(cfg.data.label_fraction)
    split = split_for(cfg, load_data(cfg), seed, fraction)
    device = device_for(cfg, search.methods)
    tuned = copy.deepcopy(cfg)
    rows, trials = [], []
    for method in progress_bar(list(search.methods), desc="探索", enabled=bool(cfg.trainer.progress)):
        name = study_name_for(cfg, method)
        callbacks = [mlflow_trial_callback(method, name)] if track else []
        study = run_study(split, method, OmegaConf.to_container(cfg.methods[method], resolve=True),
                          OmegaConf.to_container(search.spaces[method], resolve=True), n_trials=int(search.n_trials),
                          study_name=name, storage=search.storage, sampler=search.sampler, pruner=search.pruner,
                          n_folds=int(search.n_folds), timeout=search.timeout, seed=seed, device=device,
                          cpu_threads=cfg.trainer.cpu_threads, callbacks=callbacks)
        best = best_params(study)
        for key, value in best.items():
            tuned.methods[method][key] = value
        rows.append({"method": method, "display_name": display_name(method), "study_name": name,
                     "n_trials": finished_trials(study), "best_trial": study.best_trial.number,
                     "best_cv_r2": study.best_value, "best_params": json.dumps(best, sort_keys=True)})
        trials.append(study.trials_dataframe(attrs=("number", "value", "state", "params")).assign(method=method))
        log.info("探索 %s: 最良の k-fold R²=%.3f（試行 %d）%s", method, study.best_value, study.best_trial.number, best)
    summary = pd.DataFrame(rows)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        summary.to_csv(Path(out_dir) / SEARCH_CSV, index=False)
        pd.concat(trials, ignore_index=True).to_csv(Path(out_dir) / TRIALS_CSV, index=False)
    return tuned, summary


# ---- 図とレポート -----------------------------------------------------------------------------------
def write_figures(cfg: DictConfig, results: pd.DataFrame, shift: pd.DataFrame | None,
                  out_dir: Path) -> dict[str, Path]:
    """ベンチマークの図を out_dir/figures に PNG で保存し、{題: パス} を返す。"""
    from helpers.visualization import (
        plot_embedding,
        plot_r2_by_method,
        plot_wasserstein,
        save_figure,
    )

    figures = {"手法ごとの R²": plot_r2_by_method(results)}
    if shift is not None and not shift.empty:
        one_d = shift[(shift["comparison"] == "target_test") & (shift["measure"] == "wasserstein_1d")]
        figures["特徴量ごとの Wasserstein 距離"] = plot_wasserstein(
            one_d.groupby("feature")["value"].mean(), title="特徴量ごとの Wasserstein 距離（source ↔ target テスト）")
    seed, fraction = int(results["seed"].iloc[0]), float(results["label_fraction"].iloc[0])
    split = split_for(cfg, load_data(cfg), seed, fraction)
    figures["ドメインの埋め込み (PCA)"] = plot_embedding(split, "pca", seed=seed)
    names = {"手法ごとの R²": "r2_by_method", "特徴量ごとの Wasserstein 距離": "wasserstein",
             "ドメインの埋め込み (PCA)": "embedding_pca"}
    return {title: save_figure(fig, out_dir / "figures" / f"{names[title]}.png") for title, fig in figures.items()}


def report_benchmark(cfg: DictConfig, out_dir: Path, meta: dict[str, Any] | None = None) -> dict[str, Path]:
    """out_dir の CSV から図とレポートを作り、書いたファイルを {名前: パス} で返す。"""
    from helpers.env import versions_table
    from helpers.report_generator import write_report

    results, predictions, shift = load_outputs(out_dir)
    figures = write_figures(cfg, results, shift, out_dir)
    meta = {**(meta or {}), "versions": versions_table()}
    search = pd.read_csv(out_dir / SEARCH_CSV) if (out_dir / SEARCH_CSV).exists() else None
    md, html = write_report(results, out_dir, shift=shift, predictions=predictions, config=cfg,
                            figures=figures, meta=meta, search=search)
    names = (RESULTS_CSV, PREDICTIONS_CSV, SHIFT_CSV, SEARCH_CSV, TRIALS_CSV)
    files = {name: out_dir / name for name in names if (out_dir / name).exists()}
    return {**files, **{p.name: p for p in figures.values()}, md.name: md, html.name: html}


# ---- MLflow と CLI -------------------------------------------------------------------------------------
def _child_logger(cfg: DictConfig, benchmark_id: str) -> ResultCallback:
    """(手法, シード, ラベル割合) ごとに入れ子の MLflow run を作って記録する callback。"""
    import mlflow

    from helpers.tracking import flatten_config, log_training_curves, tracked_run

    def log_result(row: dict[str, Any], model: Any) -> None:
        name = f"{row['method']}-seed{row['seed']}-lf{row['label_fraction']}"
        tags = {"benchmark_id": benchmark_id, "method": row["method"]}
        with tracked_run(name, tags=tags, nested=True):
            mlflow.log_params({"method": row["method"], "seed": row["seed"], "label_fraction": row["label_fraction"],
                               **flatten_config(cfg.methods[row["method"]], prefix=f"methods.{row['method']}")})
            mlflow.log_metrics({k: float(row[k]) for k in ("r2", "rmse", "fit_seconds", "predict_seconds")})
            log_training_curves(model)

    return log_result


def run_and_track(cfg: DictConfig, out_dir: Path) -> dict[str, Path]:
    """（hparams_search があれば探索 →）ベンチマーク → 図とレポート。

    tracking.enabled なら親 run 1 つの下に、探索の試行と (手法, シード, ラベル割合) を子 run として記録する。
    """
    benchmark_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    enabled = bool(cfg.tracking.enabled)
    meta = {"benchmark_id": benchmark_id, "デバイスの詳細": describe_device(device_for(cfg, _all_methods(cfg))),
            "出力フォルダ": str(out_dir)}
    if enabled:
        from helpers.tracking import setup_tracking

        setup_tracking(cfg)
    from helpers.tracking import tracked_run

    with tracked_run(f"benchmark-{benchmark_id}", tags={"benchmark_id": benchmark_id}, enabled=enabled) as parent:
        if parent is not None:
            import mlflow

            from helpers.tracking import flatten_config, log_config_artifact

            mlflow.log_params(flatten_config(cfg))
            log_config_artifact(cfg)
        if cfg.search is not None:  # 探索 → 最良の値でベンチマーク
            cfg, _ = tune(cfg, out_dir, track=enabled)
            if parent is not None:
                log_config_artifact(cfg, "config_tuned.yaml")
        results = run_benchmark(cfg, out_dir, on_result=_child_logger(cfg, benchmark_id) if enabled else None)
        files = report_benchmark(cfg, out_dir, meta)
        if parent is not None:
            summary = results.groupby(["method", "label_fraction"])["r2"].mean()
            mlflow.log_metrics({f"r2_mean/{m}/lf{f}": float(v) for (m, f), v in summary.items()})
            for path in files.values():
                mlflow.log_artifact(str(path), artifact_path="figures" if path.suffix == ".png" else None)
    log.info("出力: %s（benchmark_id=%s）", out_dir, benchmark_id)
    return files


def check_config(cfg: DictConfig) -> None:
    """設定を検査する（helpers.config.validate）。探索空間のパラメータ名も手法の設定と照らし合わせる。"""
    validate(cfg)
    if cfg.search is not None:
        from helpers.search import check_space

        for method in cfg.search.methods:
            check_space(OmegaConf.to_container(cfg.search.spaces[method], resolve=True), set(cfg.methods[method]),
                        where=f"search.spaces.{method}")


register_configs()  # スキーマ base_config とリゾルバ ${project_root:} を @hydra.main より先に登録する


@hydra.main(version_base=VERSION_BASE, config_path=str(project_root() / "conf"), config_name="config")
def main(cfg: DictConfig) -> None:
    """`uv run benchmark [上書き ...]`: 設定を検査し、ベンチマークを実行して Hydra の run フォルダに書く。

    誤った設定・入力は日本語のメッセージを標準エラーに出し、終了コード 1 で終わる。
    """
    try:
        check_config(cfg)
        run_and_track(cfg, Path(HydraConfig.get().runtime.output_dir))
    except CourseError as e:
        raise SystemExit(f"{type(e).__name__}: {e}") from None


if __name__ == "__main__":
    main()
