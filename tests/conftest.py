"""テスト全体の共通設定。"""
from __future__ import annotations

import os

import pytest

#: mlflow.set_experiment は「子プロセスにも受け継がせる」ために環境変数 MLFLOW_EXPERIMENT_ID を書く
#: （mlflow/tracking/fluent.py）。テストの後に残ると、後で nbval が起動するカーネルが受け継ぎ、
#: 別の保存先を使うノートブック（03 の「何も設定しない」例）が「その実験はない」で失敗する。
MLFLOW_ENV = ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI")


@pytest.fixture(autouse=True)
def _isolate_mlflow_env():
    """各テストを MLflow の環境変数なしで実行し、後でテスト前の状態に戻す。"""
    saved = {name: os.environ.pop(name, None) for name in MLFLOW_ENV}
    yield
    for name, value in saved.items():
        os.environ.pop(name, None)
        if value is not None:
            os.environ[name] = value
