"""講座ノートブックの一括実行 (`uv run course run`) と、保存出力の作成 (`uv run course store`)。

コマンドの入口は helpers/cli.py。papermill によるバッチ実行の考え方はノートブック 08 で紹介する。
テストは notebooks フォルダを引数で差し替えて、小さなノートブックで動作を確かめる。
"""
from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import re
import tempfile
import time
import unicodedata
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import nbformat

from helpers.errors import CourseError

log = logging.getLogger(__name__)

KERNEL_NAME = "python3"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
PROFILES = ("quick", "full")
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
#: quick プロファイルの時間予算（秒、2 コア CPU で）。tests/test_notebooks.py がこの 3 倍までを許す
BUDGETS_S = {"01": 30, "02": 30, "03": 30, "04": 45, "05": 30, "06": 30, "07": 60, "08": 45, "09": 20, "10": 60}
CELL_TIMEOUT_ENV = "COURSE_CELL_TIMEOUT"
DEFAULT_CELL_TIMEOUT_S = 600.0
#: 起動するカーネルの環境変数。matplotlib は JupyterLab と同じインライン表示にする
#: （CI などが MPLBACKEND=Agg を設定していても、図が出力に残る）
KERNEL_ENV = {"MPLBACKEND": "module://matplotlib_inline.backend_inline"}
#: store と nbval のカーネルにはさらに、進捗バーを消し文字列のハッシュ順を固定して、保存出力を毎回同じにする
STORE_ENV = {**KERNEL_ENV, "TQDM_DISABLE": "1", "PYTHONHASHSEED": "0"}
#: カーネルに受け継がせない環境変数。mlflow.set_experiment は子プロセスのために MLFLOW_EXPERIMENT_ID を書く
#: （mlflow/tracking/fluent.py）ので、同じプロセスで MLflow を使った後に起動したカーネルが別の保存先で
#: 「その実験はない」と失敗する。ノートブックはそれぞれ自分で実験を選ぶ
KERNEL_UNSET = ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")
#: papermill が足すセル（元のノートブックにはない）
PAPERMILL_TAGS = {"injected-parameters", "papermill-error-cell-tag"}
STATUS_JA = {"passed": "成功", "failed": "失敗", "skipped": "未実行"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class RunnerArgumentError(CourseError, ValueError):
    """コマンドの引数の誤り（終了コード 2）。"""


@dataclass
class NotebookResult:
    """ノートブック 1 本の実行結果（summary.csv / summary.json の 1 行）。

    cell は失敗したセルの位置で、元のノートブックの先頭から 1 始まりで数える（Markdown セルも数える）。
    execution_count は実行済みコピーに表示される In [N] の N。
    """

    notebook: str
    status: str  # passed | failed | skipped
    seconds: float | None = None
    cell: int | None = None
    execution_count: int | None = None
    error: str = ""
    output: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def default_notebooks_dir() -> Path:
    """リポジトリの notebooks/。"""
    from helpers.env import project_root

    return project_root() / "notebooks"


def default_out_dir() -> Path:
    """run の既定の出力先: runs/notebooks/<日時>/（runs/ は git が無視する）。"""
    from helpers.env import project_root

    return project_root() / "runs" / "notebooks" / datetime.now().strftime("%Y%m%d-%H%M%S")


def list_notebooks(folder: Path) -> list[Path]:
    """folder の講座ノートブック（NN_名前.ipynb）を番号順に返す。"""
    return sorted(Path(folder).glob(NOTEBOOK_GLOB))


def select_notebooks(folder: Path, only: str | None = None) -> list[Path]:
    """`--only 01,03` で選んだノートブック（None なら全部）を番号順に返す。"""
    notebooks = list_notebooks(folder)
    if not notebooks:
        raise RunnerArgumentError(f"{folder} に講座ノートブック（NN_名前.ipynb）がありません。")
    if only is None:
        return notebooks
    by_number = {p.name[:2]: p for p in notebooks}
    chosen = set()
    for token in only.split(","):
        if not re.fullmatch(r"\d{1,2}", token.strip()):
            raise RunnerArgumentError(
                f"--only にはノートブックの番号を 01,03 のようにカンマ区切りで指定してください（受け取った値: {only!r}）。"
            )
        number = f"{int(token):02d}"
        if number not in by_number:
            raise RunnerArgumentError(
                f"--only のノートブック {number} は {folder} にありません。指定できる番号: {', '.join(by_number)}。"
            )
        chosen.add(by_number[number])
    return sorted(chosen)


def cell_timeout(value: float | None = None) -> float:
    """1 セルの制限時間（秒）: 引数、なければ環境変数 COURSE_CELL_TIMEOUT、なければ 600 秒。"""
    raw = value if value is not None else os.environ.get(CELL_TIMEOUT_ENV, DEFAULT_CELL_TIMEOUT_S)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:
        raise RunnerArgumentError(
            f"--cell-timeout（または環境変数 {CELL_TIMEOUT_ENV}）は正の秒数にしてください（受け取った値: {raw!r}）。"
        )
    return seconds


def check_device(device: str) -> None:
    """device=cuda なのに GPU がなければ、ノートブックを実行する前に DeviceError を送出する。"""
    if device == "cuda":
        from helpers.env import resolve_device  # torch の import はこの場合だけ

        resolve_device("cuda")


@contextlib.contextmanager
def kernel_env(env: dict[str, str] = STORE_ENV):
    """with の間だけ環境変数を設定し、KERNEL_UNSET を消す。その間に起動したカーネルがこれを受け継ぐ（既定は STORE_ENV）。"""
    saved = {key: os.environ.get(key) for key in (*env, *KERNEL_UNSET)}
    for key in KERNEL_UNSET:
        os.environ.pop(key, None)
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute_notebook(
    path: Path, output_path: Path, parameters: dict | None, *, timeout: float, progress: bool = True
) -> NotebookResult:
    """papermill で 1 本実行し、実行済みコピーを output_path に書く。失敗しても例外にせず結果に記録する。

    parameters のうち、ノートブックの parameters セルにある名前だけを渡す。None なら注入セルを作らない。
    作業フォルダはノートブックのあるフォルダ（JupyterLab で開いたときと同じ相対パスになる）。
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    start = time.perf_counter()
    try:
        if parameters:
            defined = papermill.inspect_notebook(str(path))
            parameters = {key: value for key, value in parameters.items() if key in defined}
        papermill.execute_notebook(
            str(path),
            str(output_path),
            parameters=parameters or None,
            kernel_name=KERNEL_NAME,
            cwd=str(path.parent),
            progress_bar=progress,
            execution_timeout=timeout,
        )
    except Exception as exc:  # noqa: BLE001  どんな失敗も表に載せて次のノートブックへ進む
        seconds = time.perf_counter() - start
        if isinstance(exc, PapermillExecutionError):
            ename, evalue = exc.ename, exc.evalue
        else:  # セルの時間切れ、カーネルの異常終了、読めないノートブックなど
            ename, evalue = type(exc).__name__, str(exc)
        cell, count = _failed_cell(output_path)
        return NotebookResult(path.name, "failed", round(seconds, 1), cell, count, _one_line(ename, evalue), str(output_path))
    return NotebookResult(path.name, "passed", round(time.perf_counter() - start, 1), output=str(output_path))


def _failed_cell(executed: Path) -> tuple[int | None, int | None]:
    """実行済みコピーで最後に実行を始めたセルの、元のノートブックでの位置（1 始まり）と In [N] の N。"""
    try:
        nb = nbformat.read(executed, as_version=4)
    except (OSError, ValueError):
        return None, None
    cells = [c for c in nb.cells if not PAPERMILL_TAGS & set(c.metadata.get("tags", []))]
    started = [i for i, c in enumerate(cells) if c.metadata.get("papermill", {}).get("start_time")]
    if not started:
        return None, None
    return started[-1] + 1, cells[started[-1]].get("execution_count")


def _one_line(ename: str, evalue: str) -> str:
    """`ename: evalue` の 1 行目だけ（色コードを除く）。1 行目が「…:」で終わるなら理由の次の行もつなげる。"""
    lines = [line.strip() for line in _ANSI.sub("", str(evalue)).splitlines() if line.strip()]
    if not lines:
        return ename
    first = lines[0]
    if first.endswith((":", "：")) and len(lines) > 1:
        first = f"{first} {lines[1]}"
    return f"{ename}: {first}"


def run_notebooks(
    notebooks: list[Path],
    out_dir: Path,
    *,
    profile: str = "quick",
    device: str = "auto",
    seed: int = 0,
    timeout: float = DEFAULT_CELL_TIMEOUT_S,
    fail_fast: bool = False,
    progress: bool = True,
) -> list[NotebookResult]:
    """ノートブックを順に実行し、実行済みコピーと summary.csv / summary.json を out_dir に書く。

    summary は 1 本終わるごとに書き直すので、途中で止まってもそこまでの結果は残る。
    fail_fast なら最初の失敗のあとは実行せず skipped として記録する。
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    requested = {"profile": profile, "device": device, "seed": seed}
    results: list[NotebookResult] = []
    with kernel_env(KERNEL_ENV):
        for i, path in enumerate(notebooks, 1):
            if fail_fast and any(not r.passed for r in results):
                results.append(NotebookResult(path.name, "skipped"))
            else:
                log.info("[%d/%d] %s を実行します（profile=%s, device=%s, seed=%s）", i, len(notebooks), path.name, profile, device, seed)
                results.append(execute_notebook(path, out_dir / path.name, requested, timeout=timeout, progress=progress))
                log.info("[%d/%d] %s", i, len(notebooks), _describe(results[-1]))
            write_summary(results, out_dir, requested)
    return results


def store_notebooks(
    notebooks: list[Path], *, timeout: float = DEFAULT_CELL_TIMEOUT_S, fail_fast: bool = False
) -> list[NotebookResult]:
    """ノートブックを既定のパラメータで実行し、出力を正規化してその場に保存する。

    カーネルには STORE_ENV（TQDM_DISABLE=1 など）を渡す。失敗したノートブックのファイルは書き換えない。
    """
    results: list[NotebookResult] = []
    with tempfile.TemporaryDirectory(prefix="course-store-") as tmp, kernel_env():
        for i, path in enumerate(notebooks, 1):
            if fail_fast and any(not r.passed for r in results):
                results.append(NotebookResult(path.name, "skipped"))
                continue
            log.info("[%d/%d] %s を実行して出力を保存します", i, len(notebooks), path.name)
            executed = Path(tmp) / path.name
            result = execute_notebook(path, executed, None, timeout=timeout, progress=False)
            if result.passed:
                _write_atomic(normalize(nbformat.read(executed, as_version=4)), path)
                result.output = str(path)
            else:
                result.output = ""
            log.info("[%d/%d] %s", i, len(notebooks), _describe(result))
            if not result.passed:
                log.info(
                    "  %s は書き換えていません。トレースバックは `uv run course run --only %s` の実行済みコピーで確かめられます。",
                    path.name, path.name[:2],
                )
            results.append(result)
    return results


def normalize(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """保存前の正規化: papermill と実行時刻のメタデータ（と空のタグ）を消し、kernelspec と language_info を
    固定し、ソース末尾の空白を落とす。同じ出力なら何度 store しても同じバイト列になる。"""
    nb.metadata.pop("papermill", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    info = nb.metadata.get("language_info")
    if info and "version" in info:  # 3.11.9 → 3.11（パッチ番号の違いで差分を出さない）
        info["version"] = ".".join(str(info["version"]).split(".")[:2])
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.metadata.get("tags") == []:  # papermill が足す空のタグ
            del cell.metadata["tags"]
        lines = cell.source.split("\n")
        if cell.cell_type == "code":  # Markdown の行末 2 空白（改行）は残す
            lines = [line.rstrip() for line in lines]
        cell.source = "\n".join(lines).rstrip()
        if cell.cell_type == "code":
            cell.outputs = coalesce_streams(cell.outputs)
    return nb


def coalesce_streams(outputs: list) -> list:
    """続けて出た同じストリーム（stdout / stderr）の出力を 1 つにまとめる。

    カーネルが出力を送る区切りは実行のたびに変わるので、まとめないと同じ出力でも差分が出る
    （Jupyter の画面でも続いたストリームは 1 つに見える）。
    """
    merged: list = []
    for out in outputs:
        previous = merged[-1] if merged else None
        if (out.get("output_type") == "stream" and previous is not None
                and previous.get("output_type") == "stream" and previous.get("name") == out.get("name")):
            previous["text"] = "".join(previous["text"]) + "".join(out["text"])
        else:
            if out.get("output_type") == "stream":
                out["text"] = "".join(out["text"])
            merged.append(out)
    return merged


def _write_atomic(nb: nbformat.NotebookNode, path: Path) -> None:
    """一時ファイルに書いてから置き換える（書き込み中に止まっても元のファイルは壊れない）。"""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        nbformat.write(nb, f)  # Jupyter と同じ形式（indent 1、キー順固定、末尾改行）
    os.replace(tmp, path)


def write_summary(results: list[NotebookResult], out_dir: Path, parameters: dict) -> None:
    """summary.csv と summary.json を書く。"""
    rows = [asdict(r) for r in results]
    with open(Path(out_dir) / "summary.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(NotebookResult("", "")).keys()))
        writer.writeheader()
        writer.writerows(rows)
    from helpers.env import machine_info

    measured_at = datetime.now().astimezone().isoformat(timespec="seconds")
    payload = {"parameters": parameters, "measured_at": measured_at, "machine": machine_info(), "results": rows}
    (Path(out_dir) / "summary.json").write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _describe(result: NotebookResult) -> str:
    """ログの 1 行: 名前、結果、秒数、失敗ならセルとエラー。"""
    text = f"{result.notebook}: {STATUS_JA[result.status]}"
    if result.seconds is not None:
        text += f"（{result.seconds:.1f} 秒）"
    if result.status == "failed":
        where = f"セル {result.cell}" if result.cell is not None else "セル不明"
        text += f" {where}: {result.error}"
    return text


def format_table(results: list[NotebookResult]) -> str:
    """最後に表示する表（トレースバックは載せず、エラーは 1 行だけ）。"""
    header = ("ノートブック", "結果", "秒", "セル", "エラー")
    rows = [
        (
            r.notebook,
            STATUS_JA[r.status],
            "" if r.seconds is None else f"{r.seconds:.1f}",
            "" if r.cell is None else str(r.cell),
            r.error if len(r.error) <= 160 else r.error[:157] + "...",
        )
        for r in results
    ]
    widths = [max(_width(row[i]) for row in (header, *rows)) for i in range(4)]
    lines = ["  ".join([*(_pad(c, w) for c, w in zip(row[:4], widths)), row[4]]).rstrip() for row in (header, *rows)]
    counts = {status: sum(r.status == status for r in results) for status in STATUS_JA}
    lines.append(
        f"成功 {counts['passed']} / 失敗 {counts['failed']} / 未実行 {counts['skipped']}（全 {len(results)} 本）"
    )
    return "\n".join(lines)


def _width(text: str) -> int:
    """端末での表示幅（全角は 2）。"""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))
