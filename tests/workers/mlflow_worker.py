"""テスト用の MLflow ワーカー: 追跡サーバーに run・メトリクス・成果物を記録する（helpers.tracking を使う）。

tests/test_distributed.py が 2 つ同時に起動し、同じサーバー・同じ実験に書かせる。

    python tests/workers/mlflow_worker.py --uri http://127.0.0.1:PORT --experiment NAME --worker 0 --runs 3

run ごとに params（worker, index）、step 付きのメトリクス、成果物 result.json（中身は worker と index）を記録する。
終わると 1 行の JSON（pid と作った run の ID）を標準出力に書く。
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # リポジトリのルート（helpers）

import mlflow  # noqa: E402

from helpers.tracking import setup_tracking, tracked_run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", required=True)
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    setup_tracking(SimpleNamespace(tracking=SimpleNamespace(tracking_uri=args.uri, experiment_name=args.experiment)))
    run_ids = []
    for index in range(args.runs):
        with tracked_run(f"worker{args.worker}-run{index}", tags={"worker": str(args.worker)}) as run:
            mlflow.log_params({"worker": args.worker, "index": index})
            for step in range(5):
                mlflow.log_metric("loss", 1.0 / (1 + step + index), step=step)
            mlflow.log_dict({"worker": args.worker, "index": index}, "result.json")
            run_ids.append(run.info.run_id)
    print(json.dumps({"pid": os.getpid(), "run_ids": run_ids}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
