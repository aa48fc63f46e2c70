"""テストの共通関数: 子プロセスが目印のファイルを書いたところで SIGKILL する（落ちても失わないことのテスト用）。"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest


def kill_when_file_appears(proc: subprocess.Popen, path: Path, *, timeout: float, what: str) -> None:
    """path ができるまで待って proc を SIGKILL する。先に終了したり時間切れになったりしたらテストを失敗にする。

    what は「試行 2 に入る」のような、目印のファイルができる時点の説明（エラーメッセージに使う）。パイプは最後に閉じる。
    """
    try:
        deadline = time.monotonic() + timeout
        while not path.exists():
            if proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else ""
                err = err.decode(errors="replace") if isinstance(err, bytes) else err
                pytest.fail(f"子プロセスが{what}前に終了しました:\n{err[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"{timeout} 秒待っても、子プロセスが{what}ところまで進みませんでした")
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == -signal.SIGKILL
