"""共有ストレージの Optuna study に、別のプロセスから試行を足すワーカー（ノートブック 02 で紹介）。

    python scripts/optuna_worker.py --study-name demo --storage journal:/tmp/demo/optuna.log --n-trials 4 --seed 1

study は名前とストレージで読み込む（先にノートブックなどで作っておく）。ストレージの書き方は helpers.search.make_storage
と同じ（"journal:<path>"・"sqlite:///<path>"、複数台なら "postgresql+psycopg://user@host:5432/db"）。
同じ study に何個のワーカーをつないでもよく、試行番号はストレージが配る。
目的関数 busy_objective は純 Python の CPU 計算で GIL を手放さない: スレッド（n_jobs）では速くならず、プロセスなら並ぶ。
最後に 1 行の JSON（pid・import と探索の秒数・このワーカーが実行した試行番号）を標準出力に書く。
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

T_START = time.perf_counter()

import optuna  # noqa: E402

#: 1 試行の計算量の既定値（純 Python のループの回数）
DEFAULT_WORK = 200_000


def busy_objective(trial: optuna.Trial, work: int = DEFAULT_WORK) -> float:
    """2 変数の二次関数（最小値 0、x=1・y=-2）を、work 回の純 Python ループの計算時間つきで返す。"""
    x = trial.suggest_float("x", -5.0, 5.0)
    y = trial.suggest_float("y", -5.0, 5.0)
    acc = 0
    for i in range(work):  # GIL を持ったまま回る CPU 計算（numpy や C 拡張に渡さない）
        acc = (acc + i * i) % 1_000_003
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("thread", threading.get_ident())
    return (x - 1.0) ** 2 + (y + 2.0) ** 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="共有ストレージの Optuna study に試行を足すワーカー")
    parser.add_argument("--study-name", required=True, help="読み込む study の名前")
    parser.add_argument("--storage", required=True, help='"journal:<path>"、"sqlite:///<path>" または "postgresql+psycopg://…"')
    parser.add_argument("--n-trials", type=int, default=4, help="このワーカーが実行する試行数（1 以上）")
    parser.add_argument("--seed", type=int, default=0, help="sampler の seed（ワーカーごとに変える）")
    parser.add_argument("--work", type=int, default=DEFAULT_WORK, help="1 試行の純 Python ループの回数（1 以上）")
    args = parser.parse_args(argv)
    if args.n_trials < 1:
        parser.error(f"--n-trials は 1 以上にしてください（受け取った値: {args.n_trials}）")
    if args.work < 1:
        parser.error(f"--work は 1 以上にしてください（受け取った値: {args.work}）")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from helpers.search import make_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = make_storage(args.storage)
    try:
        study = optuna.load_study(study_name=args.study_name, storage=storage,
                                  sampler=optuna.samplers.TPESampler(seed=args.seed))
    except KeyError:
        print(f"study {args.study_name!r} がストレージ {args.storage} にありません。先に create_study で作ってください。",
              file=sys.stderr)
        return 2
    ready = time.perf_counter()
    mine: list[int] = []
    study.optimize(lambda trial: busy_objective(trial, args.work), n_trials=args.n_trials,
                   callbacks=[lambda _study, trial: mine.append(trial.number)])
    done = time.perf_counter()
    print(json.dumps({"pid": os.getpid(), "startup_s": round(ready - T_START, 3),
                      "optimize_s": round(done - ready, 3), "trials": mine}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
