"""helpers.logging_setup のテスト（dictConfig の辞書、警告の取り込み、worker プロセスからのログ）。"""
from __future__ import annotations

import logging
import multiprocessing
import os
import queue as queue_module
import warnings
from concurrent.futures import ProcessPoolExecutor

import pytest

from helpers.logging_setup import (
    LoggingSetupError,
    logging_config,
    queue_listener,
    setup_logging,
    worker_logging,
)


@pytest.fixture(autouse=True)
def restore_logging():
    """テストが変えた root のハンドラ・レベルと警告の取り込みを元に戻す。"""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    helpers_level = logging.getLogger("helpers").level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("helpers").setLevel(helpers_level)
    logging.captureWarnings(False)


class Keep(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_logging_config_builds_console_file_and_quiet_loggers(tmp_path):
    config = logging_config("info", log_file=tmp_path / "a.log", quiet=("matplotlib",), helpers_level="DEBUG")
    assert config["version"] == 1 and config["disable_existing_loggers"] is False
    assert config["root"] == {"level": "INFO", "handlers": ["console", "file"]}
    assert config["handlers"]["file"]["filename"] == str(tmp_path / "a.log")
    assert config["loggers"] == {"matplotlib": {"level": "WARNING"}, "helpers": {"level": "DEBUG"}}
    assert "file" not in logging_config()["handlers"]


@pytest.mark.parametrize("kwargs", [{"level": "LOUD"}, {"level": 20}, {"helpers_level": "verbose"}])
def test_bad_level_is_a_japanese_error_naming_the_parameter(kwargs):
    with pytest.raises(LoggingSetupError) as info:
        logging_config(**kwargs)
    name = next(iter(kwargs))
    assert f"{name} は" in str(info.value) and "WARNING" in str(info.value)


def test_setup_logging_writes_file_keeps_existing_loggers_and_captures_warnings(tmp_path):
    existing = logging.getLogger("course_test.existing")  # dictConfig より前に作られたロガー
    log_file = tmp_path / "run.log"
    setup_logging("INFO", log_file=log_file, quiet=("noisy",))
    existing.info("既存のロガーの INFO")
    logging.getLogger("noisy.sub").info("ほかの INFO は捨てられる")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("本物の警告", UserWarning)
    text = log_file.read_text(encoding="utf-8")
    assert not existing.disabled
    assert "[course_test.existing][INFO] - 既存のロガーの INFO" in text
    assert "ほかの INFO" not in text
    assert "[py.warnings][WARNING]" in text and "UserWarning: 本物の警告" in text


def test_setup_logging_can_be_called_again_without_duplicating_handlers():
    setup_logging("INFO")
    setup_logging("INFO")
    assert len(logging.getLogger().handlers) == 1


def test_worker_logging_replaces_handlers_with_one_queue_handler():
    root = logging.getLogger()
    root.addHandler(logging.NullHandler())
    q = queue_module.Queue()
    worker_logging(q, "debug")
    assert [type(h).__name__ for h in root.handlers] == ["QueueHandler"]
    logging.getLogger("helpers.test_worker").debug("worker から %d", 1)
    record = q.get_nowait()
    assert (record.name, record.levelname, record.getMessage()) == ("helpers.test_worker", "DEBUG", "worker から 1")


def test_records_from_spawned_workers_reach_parent_loggers():
    setup_logging("WARNING")
    keep = Keep()
    logging.getLogger().addHandler(keep)
    spawn = multiprocessing.get_context("spawn")
    task = logging.getLogger("helpers.test_worker").info  # import できる関数（spawn の worker で動く）
    with queue_listener(context="spawn") as q:
        with ProcessPoolExecutor(2, mp_context=spawn, initializer=worker_logging, initargs=(q, "INFO")) as pool:
            list(pool.map(task, ["a", "b", "c"]))
    got = sorted(r.getMessage() for r in keep.records if r.name == "helpers.test_worker")
    assert got == ["a", "b", "c"]
    assert all(r.process != os.getpid() for r in keep.records if r.name == "helpers.test_worker")


def test_queue_listener_with_handlers_and_bad_context():
    keep = Keep()
    with queue_listener(keep, context="spawn") as q:
        q.put(logging.makeLogRecord({"name": "x", "msg": "届く", "levelno": logging.INFO, "levelname": "INFO"}))
    assert [r.getMessage() for r in keep.records] == ["届く"]
    with pytest.raises(LoggingSetupError, match="context は"):
        with queue_listener(context="threads"):
            pass
