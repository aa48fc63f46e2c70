"""multiprocessing の開始方式（fork / spawn / forkserver）の罠を、ノートブックでは見せられない形で確かめる（ノートブック 08）。

    python scripts/parallel_demo.py guard        # __main__ ガードあり: spawn のプールが動く
    python scripts/parallel_demo.py no-guard     # ガードなし: spawn の子がスクリプトを読み直して失敗する
    python scripts/parallel_demo.py fork-lock    # スレッドが握ったロックは fork した子では永遠に外れない
    python scripts/parallel_demo.py fork-openmp  # OpenMP（HistGradientBoosting・torch）を使った後の fork で子が固まる（spawn は大丈夫）
    python scripts/parallel_demo.py wait-policy  # 過剰なスレッドがときどき極端に遅くなるのは OpenMP の待ち方のせいか（1〜3 分）

ノートブックはこのファイルを import して、作業用の関数（busy など）をワーカーに渡すのにも使う。
関数をモジュール（.py ファイル）に置けば、spawn / forkserver のワーカーも名前で import して見つけられる。
"""
from __future__ import annotations

import multiprocessing as mp
import queue as queue_module
import sys
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

#: 子プロセスの計算を待つ最短の秒数（親で同じ計算にかかった時間の 10 倍がこれより長ければそちら）。
#: これを過ぎても終わらなければ「固まった」とみなして止める
HANG_TIMEOUT_S = 2.0


def busy(n: int) -> int:
    """純 Python の CPU 仕事（GIL を離さない）。"""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def square(x: int) -> int:
    return x * x


# ---- ガードなしの例 --------------------------------------------------------------------------------
# `no-guard` で起動したときだけ、わざと __main__ ガードの外（モジュールの最上位）でプールを使う。
# spawn の子は親の sys.argv を受け継ぎ、このファイルを __mp_main__ として import し直すので、この行を子でも実行してしまう。
if sys.argv[1:] == ["no-guard"]:
    try:
        with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
            print("ガードなし: 結果", list(pool.map(square, range(4))), flush=True)
    except BrokenProcessPool as e:
        # 例外の文言はどの時点で子が落ちたかで変わるので、型だけを出す
        print(f"ガードなし: 親が受け取った例外 {type(e).__name__}（子プロセスが異常終了した）", flush=True)


def run_guarded() -> None:
    for method in ("spawn", "forkserver"):
        with ProcessPoolExecutor(2, mp_context=mp.get_context(method)) as pool:
            print(f"ガードあり ({method}): 結果", list(pool.map(square, range(4))))


# ---- fork とスレッド ---------------------------------------------------------------------------------
LOCK = threading.Lock()


def _hold_lock() -> None:
    with LOCK:
        time.sleep(1.5)


def _try_lock(queue) -> None:
    queue.put(LOCK.acquire(timeout=1.0))


def run_fork_lock() -> None:
    """別スレッドがロックを握っている瞬間に子プロセスを作り、子がそのロックを取れるかを見る。"""
    for method in ("fork", "spawn"):
        ctx = mp.get_context(method)
        holder = threading.Thread(target=_hold_lock)
        holder.start()
        time.sleep(0.2)  # スレッドがロックを握るのを待つ
        queue = ctx.Queue()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            child = ctx.Process(target=_try_lock, args=(queue,))
            child.start()
        got = queue.get(timeout=30)
        child.join()
        holder.join()
        fork_warnings = [w for w in caught if issubclass(w.category, DeprecationWarning)]
        print(f"{method:<6}: 子はロックを取れた={got}, DeprecationWarning={len(fork_warnings)} 件"
              + (f"（{str(fork_warnings[0].message)[:60]}…）" if fork_warnings else ""))


# ---- fork と OpenMP -----------------------------------------------------------------------------------
def _prepare(kind: str):
    """import とデータの用意（spawn の子ではここに数秒かかるので、固まったかどうかの判定から外す）。"""
    import numpy as np

    if kind == "hgb":
        from sklearn.ensemble import HistGradientBoostingRegressor

        X = np.random.default_rng(0).normal(size=(1000, 6))
        return lambda: HistGradientBoostingRegressor(max_iter=10, random_state=0).fit(X, X[:, 0])
    import torch

    x = torch.randn(500, 500)
    return lambda: (x @ x).sum()


def _openmp_child(kind: str, queue) -> None:
    work = _prepare(kind)
    queue.put("ready")
    work()
    queue.put("done")


def _child_finishes(method: str, kind: str, timeout: float) -> str:
    ctx = mp.get_context(method)
    queue = ctx.Queue()
    child = ctx.Process(target=_openmp_child, args=(kind, queue))
    child.start()
    queue.get(timeout=300)  # import が終わるまで待つ（spawn の子だけ時間がかかる）
    try:
        queue.get(timeout=timeout)
        result = "終わった"
    except queue_module.Empty:
        result = "親の 10 倍以上の時間がたっても終わらない（固まった。kill した）"
        child.kill()
    child.join()
    return result


def run_fork_openmp(kinds: list[str]) -> None:
    """親が OpenMP のスレッドプールを一度使った後に fork すると、子の OpenMP が固まる（spawn の子は大丈夫）。"""
    names = {"hgb": "HistGradientBoosting", "torch": "torch の行列積"}
    for kind in kinds:
        work = _prepare(kind)
        work()  # 親で 1 回使う（OpenMP のスレッドプールができる）
        start = time.perf_counter()
        work()
        timeout = max(HANG_TIMEOUT_S, 10 * (time.perf_counter() - start))  # 混んだマシンでも誤判定しないように
        methods = ("fork", "spawn") if kind == "hgb" else ("fork",)
        for method in methods:
            print(f"親で {names[kind]} を使った後、{method:<5} の子で同じ計算: {_child_finishes(method, kind, timeout)}", flush=True)


# ---- 過剰なスレッドと OpenMP の待ち方 -------------------------------------------------------------------
OVERSUB_LIMIT_S = 8.0  #: 1 回の測定の打ち切り（これを超えたら「極端に遅い」と数える）


def fit_small_hgb(seed: int, threads: int | None = None) -> tuple[float, int]:
    """小さな HistGradientBoosting の学習 1 回の秒数と、そのときの OpenMP のスレッド数（ワーカーの中で測る）。

    threads が None なら、ワーカーの既定（環境変数と joblib の設定）のまま。
    """
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_info

    from helpers.env import limit_threads

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2000, 8))
    y = X[:, 0] + np.sin(X[:, 1]) + 0.1 * rng.normal(size=2000)
    with limit_threads(threads):
        start = time.perf_counter()
        HistGradientBoostingRegressor(max_iter=20, random_state=0).fit(X, y)
        seconds = time.perf_counter() - start
        return seconds, max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp")


def run_oversub_once() -> None:
    """2 プロセス × OpenMP 2 スレッド（2 コアでは過剰）で 1 回ずつ学習し、遅い方の秒数を出す（打ち切りなら inf）。"""
    from joblib import Parallel, delayed, parallel_config

    with parallel_config(backend="loky", n_jobs=2, inner_max_num_threads=2):
        try:
            print(max(sec for sec, _ in Parallel(timeout=OVERSUB_LIMIT_S)(delayed(fit_small_hgb)(s) for s in range(2))))
        except mp.TimeoutError:  # joblib は時間切れのワーカーを止めてから送出する
            print("inf")


def run_wait_policy(reps: int = 8) -> None:
    """OMP_WAIT_POLICY（OpenMP のスレッドが待つ間に CPU を使って回り続けるか、眠るか）を変えて、過剰な条件を何度も測る。

    環境変数は OpenMP のライブラリが読み込まれるときに読まれるので、1 回ごとに新しいプロセスで測る（1〜3 分かかる）。
    """
    import os
    import subprocess

    for policy in ("既定", "ACTIVE", "PASSIVE"):
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        if policy != "既定":
            env["OMP_WAIT_POLICY"] = policy
        seconds = [float(subprocess.run([sys.executable, __file__, "_oversub-once"], env=env, capture_output=True,
                                        text=True, check=True).stdout.split()[-1]) for _ in range(reps)]
        slow = sum(s > 1.0 for s in seconds)  # ふつうは 0.1〜0.5 秒
        shown = ", ".join("打ち切り" if s > OVERSUB_LIMIT_S else f"{s:.2f}" for s in seconds)
        print(f"OMP_WAIT_POLICY={policy:<7}: 1 秒を超えた回数 {slow}/{reps}（秒: {shown}）", flush=True)


COMMANDS = {"guard": run_guarded, "fork-lock": run_fork_lock,
            "fork-openmp": lambda: run_fork_openmp(["hgb", "torch"]),
            "wait-policy": run_wait_policy, "_oversub-once": run_oversub_once}  # _ で始まるものは内部用

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in (*COMMANDS, "no-guard"):
        public = [name for name in COMMANDS if not name.startswith("_")]
        raise SystemExit(f"使い方: python {sys.argv[0]} {{{'|'.join([*public, 'no-guard'])}}}")
    if not sys.argv[1].startswith("_"):
        print(f"Python {sys.version.split()[0]} / 既定の開始方式: {mp.get_start_method()}")
    if sys.argv[1] in COMMANDS:
        COMMANDS[sys.argv[1]]()
    # no-guard はモジュールの最上位（ガードの外）の例がすでに動いた
