"""scripts/parallel_demo.py（ノートブック 08 がターミナルで実行させるスクリプト）の、ノートブックが実行しないコマンド。"""
from __future__ import annotations

import math
import subprocess
import sys

from helpers.env import project_root

SCRIPT = project_root() / "scripts" / "parallel_demo.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          cwd=project_root())


def test_one_oversubscribed_measurement_prints_seconds():
    # wait-policy はこれを 24 回、OMP_WAIT_POLICY を変えて新しいプロセスで実行する
    done = _run("_oversub-once")
    assert done.returncode == 0, done.stderr[-2000:]
    seconds = float(done.stdout.split()[-1])
    assert seconds > 0 and (math.isinf(seconds) or seconds < 8.0)


def test_usage_lists_public_commands_only():
    done = _run("no-such-command")
    assert done.returncode != 0
    assert "wait-policy" in done.stderr and "fork-openmp" in done.stderr
    assert "_oversub-once" not in done.stderr
