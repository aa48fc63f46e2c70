"""MLflow による実験の記録（ノートブック 03 で紹介）。

- `setup_tracking(cfg)`: 記録先（既定は mlruns/ の sqlite）と実験を用意する。
- `flatten_config(cfg)`: 設定を「ドット区切りのキー → 文字列」にして `mlflow.log_params` に渡せる形にする。
- `log_config_artifact(cfg)`: 解決済みの設定 YAML を成果物として残す。
- `tracked_run(...)`: run を開く文脈。例外で抜けた run は FAILED になる（これは `mlflow.start_run`
  の文脈マネージャ `ActiveRun.__exit__` がもともと行うので、ここでは足さない）。
- `log_training_curves(model)`: 手法が持つ学習曲線（`history`）を step 付きのメトリクスとして記録する。

`import mlflow` は 2 秒ほどかかるので、関数の中で import する。
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

SQLITE_PREFIX = "sqlite:///"


def _sqlite_path(uri: str) -> Path | None:
    """sqlite:///path/to/mlflow.db のファイルのパス（sqlite 以外なら None）。"""
    return Path(uri[len(SQLITE_PREFIX):]) if uri.startswith(SQLITE_PREFIX) else None


def setup_tracking(cfg: DictConfig) -> str:
    """cfg.tracking の記録先と実験を設定し、実験 ID を返す（実験がすでにあればそれを使う）。

    sqlite のときはフォルダを作り、成果物（図や CSV）も同じフォルダの artifacts/ に置く。
    何も指定しないと MLflow は成果物を「今の作業フォルダ」の ./mlruns に書くため。
    初めての sqlite ファイルではテーブル作成に 6〜10 秒かかる。
    """
    import mlflow

    uri = str(cfg.tracking.tracking_uri)
    db = _sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    name = str(cfg.tracking.experiment_name)
    if db is not None and mlflow.get_experiment_by_name(name) is None:
        try:
            mlflow.create_experiment(name, artifact_location=(db.parent / "artifacts" / name).resolve().as_uri())
        except mlflow.exceptions.MlflowException as e:  # 別のプロセスが同時に作った
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    experiment = mlflow.set_experiment(name)
    # 別のプロセスと同時に実験を作ったとき、MLflow 3.17 の set_experiment は実験を返すだけで有効にしない
    # （mlflow/tracking/fluent.py:221 の早い return）。run が既定の実験 0 に入らないよう、ID で有効にし直す。
    mlflow.set_experiment(experiment_id=experiment.experiment_id)
    log.info("MLflow: %s の実験 %r (id=%s)", uri, name, experiment.experiment_id)
    return experiment.experiment_id


def flatten_config(cfg: DictConfig | Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """設定を解決し、ドット区切りのキー（例: methods.fehda.max_iter）→ 文字列 の辞書にする。

    リストは 1 つの値（例: "[0, 1]"）にする。MLflow はパラメータの値を 6000 文字までしか受け付けない
    （mlflow/utils/validation.py の MAX_PARAM_VAL_LENGTH）ので、長い値は切り詰めて警告する。
    """
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    container = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    flat: dict[str, str] = {}

    def walk(node: Any, key: str) -> None:
        if isinstance(node, Mapping) and node:
            for k, v in node.items():
                walk(v, f"{key}.{k}" if key else str(k))
            return
        text = str(node)
        if len(text) > MAX_PARAM_VAL_LENGTH:
            log.warning("パラメータ %s の値が %d 文字あるので %d 文字に切り詰めます", key, len(text), MAX_PARAM_VAL_LENGTH)
            text = text[:MAX_PARAM_VAL_LENGTH]
        flat[key] = text

    walk(container, prefix)
    return flat


def log_config_artifact(cfg: DictConfig, name: str = "config.yaml") -> None:
    """解決済みの設定を YAML の成果物として今の run に記録する。"""
    import mlflow

    mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), name)


@contextmanager
def tracked_run(run_name: str, *, tags: Mapping[str, str] | None = None, nested: bool = False,
                enabled: bool = True) -> Iterator[Any]:
    """MLflow の run を開く（enabled=False なら何もせず None を渡す）。

    例外で抜けると run は FAILED、正常に抜けると FINISHED で閉じる。これは
    `mlflow.start_run()` が返す ActiveRun の `__exit__` の動作そのもの。
    """
    if not enabled:
        yield None
        return
    import mlflow

    with mlflow.start_run(run_name=run_name, nested=nested, tags=dict(tags or {})) as run:
        yield run


def training_curves(model: Any) -> dict[str, list[tuple[int, float]]]:
    """手法の学習曲線を {メトリクス名: [(step, 値), ...]} で返す（なければ空の辞書）。

    読むのは `history` / `history_` 属性（モデル自身か、その `diffusion` 属性）。形は 2 通り:
    (step, loss) の組のリスト（TabDDPM）と、エポックごとの辞書のリスト（CrossAttention）。
    知らない形の要素は読み飛ばす。
    """
    curves: dict[str, list[tuple[int, float]]] = {}
    for owner in (model, getattr(model, "diffusion", None)):
        for attr in ("history", "history_"):
            history = getattr(owner, attr, None) if owner is not None else None
            if not isinstance(history, (list, tuple)):
                continue
            prefix = "diffusion_" if owner is not model else ""
            for i, item in enumerate(history):
                if isinstance(item, Mapping):
                    step = item.get("epoch", item.get("step", i + 1))
                    values = {k: v for k, v in item.items() if k not in ("epoch", "step")}
                elif isinstance(item, (list, tuple)) and len(item) == 2:
                    step, values = item[0], {"loss": item[1]}
                else:
                    continue
                for key, value in values.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                        curves.setdefault(f"{prefix}{key}", []).append((int(step), float(value)))
    return curves


def log_training_curves(model: Any) -> int:
    """`training_curves(model)` を今の run に step 付きのメトリクスとして記録し、記録した点の数を返す。"""
    import mlflow
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(key, value, now, step) for key, points in training_curves(model).items()
               for step, value in points]
    if metrics:
        mlflow.MlflowClient().log_batch(mlflow.active_run().info.run_id, metrics=metrics)
    return len(metrics)
