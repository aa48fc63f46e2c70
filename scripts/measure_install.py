"""uv と pip のインストール時間を測り、data/measurements/install_timings.json に書く（ノートブック 08 が読む）。

    uv run python scripts/measure_install.py              # 既定: 3 回ずつ測って中央値
    uv run python scripts/measure_install.py --repeats 5 --packages six packaging tomli

ネットワークで PyPI に届く必要があります。ノートブックの中では測らず（回線や混み具合で揺れ、失敗もしやすい）、
ここで測った結果のファイルをノートブックが読んで描きます。

- cold: 空の一時キャッシュ（PIP_CACHE_DIR / UV_CACHE_DIR）で、新しい仮想環境に入れる（ダウンロードを含む）
- warm: 同じキャッシュのまま、もう 1 つ新しい仮想環境に入れる（キャッシュから入れる）
仮想環境を作る時間は含めない（別に venv_seconds として記録する）。
uv run の起動の上乗せ（ロックと .venv の確認）も、同じ Python を直接起動した場合と比べて記録する。
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helpers.env import machine_info

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "data" / "measurements" / "install_timings.json"
DEFAULT_PACKAGES = ["six", "packaging", "tomli", "idna", "attrs"]
PIP_VERSION: list[str] = []


def timed(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    """コマンドを実行して経過秒数を返す（失敗したら標準エラーを添えて止まる）。"""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"コマンドが失敗しました: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return seconds


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def one_round(tool: str, uv: str, packages: list[str], work: Path, base_env: dict[str, str]) -> dict[str, float]:
    """空のキャッシュで cold、続けて同じキャッシュで warm を 1 回ずつ測る。"""
    cache = work / f"{tool}-cache"
    env = {**base_env, "PIP_CACHE_DIR": str(cache), "UV_CACHE_DIR": str(cache),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "UV_COMPILE_BYTECODE": "0"}
    env.pop("VIRTUAL_ENV", None)
    result = {}
    for phase in ("cold", "warm"):
        venv = work / f"{tool}-{phase}-venv"
        if tool == "pip":  # pip は仮想環境の中の pip を使う（python -m venv が ensurepip で入れる）
            result[f"venv_seconds_{phase}"] = timed([sys.executable, "-m", "venv", str(venv)], env)
            cmd = [str(venv_python(venv)), "-m", "pip", "install", "--no-compile", *packages]
        else:
            result[f"venv_seconds_{phase}"] = timed([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], env)
            cmd = [uv, "pip", "install", "--python", str(venv_python(venv)), *packages]
        result[phase] = timed(cmd, env)
        if tool == "pip" and phase == "cold":  # 測ったのは仮想環境の中の pip（Python に同梱の版）
            PIP_VERSION.append(tool_version([str(venv_python(venv)), "-m", "pip", "--version"]).split(" from ")[0])
    return result


def tool_version(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", nargs="+", default=DEFAULT_PACKAGES, help="入れる純 Python のパッケージ")
    parser.add_argument("--repeats", type=int, default=3, help="cold→warm の組を何回測るか（1 以上）")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        raise SystemExit(f"--repeats は 1 以上にしてください（受け取った値: {args.repeats}）")
    uv = shutil.which("uv")
    if uv is None:
        raise SystemExit("uv が見つかりません。`pip install uv` で入れてから実行してください。")

    base_env = dict(os.environ)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    rounds = {"pip": [], "uv": []}
    for i in range(args.repeats):
        for tool in ("pip", "uv"):
            with tempfile.TemporaryDirectory(prefix=f"measure_{tool}_") as work:
                rounds[tool].append(one_round(tool, uv, args.packages, Path(work), base_env))
            print(f"{i + 1}/{args.repeats} {tool}: " + ", ".join(f"{k}={v:.2f}s" for k, v in rounds[tool][-1].items()),
                  flush=True)

    # uv run の上乗せ: 同じ .venv の Python を直接起動した場合との差（中央値）
    project_python = str(venv_python(ROOT / ".venv")) if venv_python(ROOT / ".venv").exists() else sys.executable
    startup = {"python_direct": [], "uv_run": []}
    for _ in range(max(args.repeats, 3)):
        startup["python_direct"].append(timed([project_python, "-c", "pass"], base_env, ROOT))
        startup["uv_run"].append(timed([uv, "run", "python", "-c", "pass"], base_env, ROOT))

    summary = {tool: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for tool, rs in rounds.items()}
    payload = {
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load_average_1min": {"before": load_before and round(load_before[0], 2),
                              "after": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None},
        "versions": {"uv": tool_version([uv, "--version"]), "pip": PIP_VERSION[0]},
        "packages": args.packages,
        "repeats": args.repeats,
        "note": "cold = 空の一時キャッシュ（ダウンロードを含む）、warm = 同じキャッシュで 2 回目。仮想環境を作る時間は含めない。"
                "値は中央値（秒）。uv は `uv pip install`、pip は仮想環境の中の `python -m pip install --no-compile`。",
        "median_seconds": summary,
        "rounds": rounds,
        "startup_seconds_median": {k: statistics.median(v) for k, v in startup.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"書きました: {args.out}")


if __name__ == "__main__":
    main()
