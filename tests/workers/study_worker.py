"""テスト用の Optuna ワーカー: 講座の例（Bikeshare、target_only の k-fold）の study を helpers.search.run_study で進める。

tests/test_distributed.py が別プロセスとして起動する（SIGKILL して再開する・3 つ並べて PostgreSQL を共有する）。

    python tests/workers/study_worker.py --storage URL --study-name NAME --n-trials 6 --seed 1 [--heartbeat 1]
        [--stall-at 2 --marker PATH]

--stall-at K: 試行番号 K の途中（最初の fold の後）で marker ファイルを作って止まる（「試行の途中で落ちるワーカー」を作るため。テストが SIGKILL する）。
終わると 1 行の JSON（pid、このワーカーが終えた試行 {番号: 値}、最後に見た最良値）を標準出力に書く。
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # リポジトリのルート（helpers）

from helpers import search  # noqa: E402
from helpers.data import load_dataset, make_split  # noqa: E402

#: 小さな HistGradientBoosting（1 試行が 1 秒未満）と 2 つのパラメータの空間
PARAMS = {"max_iter": 10, "learning_rate": 0.1, "max_leaf_nodes": 15, "min_samples_leaf": 5, "l2_regularization": 0.0}
SPACE = {"learning_rate": {"type": "float", "low": 0.05, "high": 0.3, "log": True},
         "max_leaf_nodes": {"type": "int", "low": 4, "high": 31}}


def stall_at(number: int, marker: Path) -> None:
    """試行番号 number が最初の fold の値を報告したところで marker を作って止まる（SIGKILL されるまで待つ）。

    止まった試行はパラメータと途中経過を持つ「実行中」の試行になる。
    """
    real = search.cv_objective

    def stalling_objective(*args, **kwargs):
        objective = real(*args, **kwargs)

        def wrapped(trial):
            if trial.number == number:
                report = trial.report

                def report_then_stall(value, step):
                    report(value, step)
                    marker.touch()
                    time.sleep(600)

                trial.report = report_then_stall
            return objective(trial)

        return wrapped

    search.cv_objective = stalling_objective


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study-name", required=True)
    parser.add_argument("--n-trials", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--heartbeat", type=int, default=None)
    parser.add_argument("--stall-at", type=int, default=None)
    parser.add_argument("--marker", type=Path, default=None)
    args = parser.parse_args()
    if args.stall_at is not None:
        stall_at(args.stall_at, args.marker)

    split = make_split(load_dataset("bikeshare"), label_fraction=0.1, seed=0)
    done: dict[int, float] = {}
    study = search.run_study(
        split, "target_only", PARAMS, SPACE, n_trials=args.n_trials, study_name=args.study_name,
        storage=args.storage, sampler="tpe", pruner="none", n_folds=2, seed=args.seed, cpu_threads=1,
        heartbeat_interval=args.heartbeat,
        callbacks=[lambda _study, trial: done.__setitem__(trial.number, trial.value)])
    print(json.dumps({"pid": os.getpid(), "trials": done, "best_value": study.best_value}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
