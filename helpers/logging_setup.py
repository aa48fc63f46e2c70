"""ログ設定の共通部品（ノートブック 09 で紹介）。

- `logging_config()`: `logging.config.dictConfig` に渡す辞書を作る（画面とファイル、うるさいライブラリを静かに）
- `setup_logging()`: その辞書で設定し、`warnings.warn` もログに流す
- `queue_listener()` と `worker_logging()`: worker プロセスのログを QueueHandler で親プロセスへ集める
"""
from __future__ import annotations

import logging
import logging.config
import logging.handlers
import multiprocessing
from contextlib import contextmanager
from pathlib import Path

from helpers.errors import CourseError

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: 画面用の書式（時刻なし: ノートブックの出力が毎回同じになる）
CONSOLE_FORMAT = "%(levelname)s %(name)s: %(message)s"
#: ファイル用の書式（時刻とプロセス名つき）
FILE_FORMAT = "[%(asctime)s][%(processName)s][%(name)s][%(levelname)s] - %(message)s"
#: DEBUG にすると大量に出すので、既定で WARNING に上げるライブラリのロガー
NOISY_LOGGERS = ("matplotlib", "PIL", "fontTools", "numba", "urllib3", "asyncio")


class LoggingSetupError(CourseError, ValueError):
    """ログ設定の引数の誤り。"""


def _check_level(name: str, level: str) -> str:
    if not isinstance(level, str) or level.upper() not in LEVELS:
        raise LoggingSetupError(f"{name} は {list(LEVELS)} のどれかにしてください（受け取った値: {level!r}）。")
    return level.upper()


def logging_config(
    level: str = "INFO",
    *,
    log_file: str | Path | None = None,
    quiet: tuple[str, ...] = NOISY_LOGGERS,
    helpers_level: str | None = None,
    stream: str = "ext://sys.stderr",
) -> dict:
    """dictConfig 用の辞書を返す。

    root に画面のハンドラ（と log_file があればファイルのハンドラ）を付け、quiet のロガーを WARNING に上げる。
    helpers_level を与えると helpers パッケージのロガーだけその水準にする。
    """
    level = _check_level("level", level)
    handlers = {"console": {"class": "logging.StreamHandler", "formatter": "console", "stream": stream}}
    if log_file is not None:
        handlers["file"] = {
            "class": "logging.FileHandler", "formatter": "file", "filename": str(log_file), "encoding": "utf-8",
        }
    loggers = {name: {"level": "WARNING"} for name in quiet}
    if helpers_level is not None:
        loggers["helpers"] = {"level": _check_level("helpers_level", helpers_level)}
    return {
        "version": 1,
        "disable_existing_loggers": False,  # import 済みのライブラリのロガーを黙らせない
        "formatters": {"console": {"format": CONSOLE_FORMAT}, "file": {"format": FILE_FORMAT}},
        "handlers": handlers,
        "loggers": loggers,
        "root": {"level": level, "handlers": list(handlers)},
    }


def setup_logging(level: str = "INFO", *, capture_warnings: bool = True, **kwargs) -> dict:
    """`logging_config(level, **kwargs)` で設定し、warnings.warn を "py.warnings" ロガーへ流す。設定した辞書を返す。

    何度呼んでもよい（dictConfig は root の古いハンドラを外してから付け直す）。
    """
    config = logging_config(level, **kwargs)
    logging.config.dictConfig(config)
    logging.captureWarnings(capture_warnings)
    return config


class _ToLoggers(logging.Handler):
    """受け取った記録を、親プロセスの同じ名前のロガーに渡す（親の設定がそのまま効く）。"""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


@contextmanager
def queue_listener(*handlers: logging.Handler, context: str = "spawn"):
    """with の間、worker から届くログを親プロセスで処理する QueueListener を動かし、キューを返す。

    handlers を省くと、記録は親プロセスの同じ名前のロガーへ渡る（親の dictConfig が効く）。
    context はプロセスを作るときと同じ開始方式（"spawn" など）にする。抜けるとき残りを書き出して止まる。
    """
    try:
        queue = multiprocessing.get_context(context).Queue()
    except ValueError:
        methods = multiprocessing.get_all_start_methods()
        raise LoggingSetupError(f"context は {methods} のどれかにしてください（受け取った値: {context!r}）。") from None
    listener = logging.handlers.QueueListener(queue, *(handlers or (_ToLoggers(),)), respect_handler_level=True)
    listener.start()
    try:
        yield queue
    finally:
        listener.stop()
        queue.close()
        queue.join_thread()


def worker_logging(queue, level: str = "INFO") -> None:
    """プロセスプールの initializer: この worker のログを全部 queue へ送る（画面やファイルには書かない）。"""
    root = logging.getLogger()
    for handler in root.handlers[:]:  # fork で親から受け継いだハンドラは外す（二重に出さない）
        root.removeHandler(handler)
    root.addHandler(logging.handlers.QueueHandler(queue))
    root.setLevel(_check_level("level", level))
    logging.captureWarnings(True)
