"""コマンド `uv run course`: 講座ノートブックの一括実行 (run)、保存出力の作成 (store)、
解答なしの配布用コピー (strip-solutions)。

中身は helpers/runner.py と helpers/handout.py。papermill によるバッチ実行はノートブック 08 で紹介する。
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

from helpers import handout, runner
from helpers.errors import CourseError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
EXIT_CODES = "終了コード: 0 = すべて成功、1 = 失敗したノートブックがある、2 = 引数の誤り（ノートブックは実行しない）。"


class _Parser(argparse.ArgumentParser):
    """引数の誤りを日本語の 1 行で伝え、終了コード 2 で終わる。"""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: 引数の誤り: {message}（`{self.prog} --help` で使い方を表示）\n")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--only", metavar="01,03", help="実行するノートブックの番号（カンマ区切り）。既定は全部")
    common.add_argument("--fail-fast", action="store_true", help="最初の失敗で止める（残りは「未実行」と記録）")
    common.add_argument(
        "--cell-timeout", type=float, metavar="SEC",
        help=f"1 セルの制限時間。既定は環境変数 {runner.CELL_TIMEOUT_ENV}、なければ {runner.DEFAULT_CELL_TIMEOUT_S:.0f} 秒",
    )
    common.add_argument("--notebooks-dir", type=Path, metavar="DIR", help="ノートブックのフォルダ（既定: リポジトリの notebooks/）")

    parser = _Parser(prog="course", description="講座ノートブック（notebooks/NN_*.ipynb）を papermill で実行する。")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,store,strip-solutions}")
    run = sub.add_parser(
        "run", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="番号順に実行し、実行済みコピーと summary.csv / summary.json を書く",
        description=(
            "ノートブックを番号順に papermill で実行する（カーネル python3、作業フォルダは notebooks/）。\n"
            "parameters セルにある profile / device / seed だけを注入し、実行済みコピーと summary.csv /\n"
            "summary.json を --out に書く。失敗したノートブックはセルとエラーを記録して次へ進む。"
        ),
        epilog=EXIT_CODES,
    )
    run.add_argument("--profile", choices=runner.PROFILES, default="quick", help="quick（CPU で数十秒）か full（GPU 向け）。既定 quick")
    run.add_argument(
        "--device", choices=DEVICES, default="auto",
        help="auto（GPU があれば使う）/ cpu / cuda。cuda で GPU が使えないときは、最初に torch.cuda.is_available() で"
        "一度だけ確かめ、どのノートブックも実行する前に終了コード 2 で止まる",
    )
    run.add_argument("--seed", type=int, default=0, help="乱数の種（既定 0）")
    run.add_argument("--out", type=Path, metavar="DIR", help="出力先（既定: runs/notebooks/<日時>/）")
    sub.add_parser(
        "store", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="既定のパラメータで実行し、出力を notebooks/ のファイルそのものに保存する",
        description=(
            "ノートブックの保存出力を作る唯一の方法。既定のパラメータ（quick）で上から順に実行し、\n"
            "papermill のメタデータと実行時刻を消して、その場に書き戻す。カーネルには TQDM_DISABLE=1、\n"
            "PYTHONHASHSEED=0、図のインライン表示を渡すので、変わらないノートブックを再び store しても差分は出ない。\n"
            "失敗したノートブックのファイルは書き換えない。"
        ),
        epilog=EXIT_CODES,
    )
    strip = sub.add_parser(
        "strip-solutions", help="演習の解答例を消した配布用コピーを --out に書く",
        description="解答例のセル（タグ solution）を「# 解答を書いてください」にし、出力を消したコピーを --out に書く。"
        "元のノートブックは書き換えない。",
    )
    strip.add_argument("--out", type=Path, required=True, metavar="DIR", help="配布用コピーの出力先（notebooks/ とは別のフォルダ）")
    strip.add_argument("--only", metavar="01,03", help="対象のノートブックの番号（カンマ区切り）。既定は全部")
    strip.add_argument("--notebooks-dir", type=Path, metavar="DIR", help="ノートブックのフォルダ（既定: リポジトリの notebooks/）")
    return parser


@contextlib.contextmanager
def _log_to_stderr():
    """コマンドの間だけ helpers のログ（進捗の 1 行ずつ）を標準エラーに出す。"""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("helpers")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "strip-solutions":
        return _strip_solutions(args)
    with _log_to_stderr():
        try:
            folder = args.notebooks_dir or runner.default_notebooks_dir()
            notebooks = runner.select_notebooks(folder, args.only)
            timeout = runner.cell_timeout(args.cell_timeout)
            if args.command == "run":
                runner.check_device(args.device)
        except CourseError as exc:
            log.error("エラー: %s（ノートブックは実行していません）", exc)
            return 2
        if args.command == "run":
            out = args.out or runner.default_out_dir()
            results = runner.run_notebooks(
                notebooks, out, profile=args.profile, device=args.device, seed=args.seed,
                timeout=timeout, fail_fast=args.fail_fast,
            )
        else:
            results = runner.store_notebooks(notebooks, timeout=timeout, fail_fast=args.fail_fast)
        sys.stdout.write(runner.format_table(results) + "\n")
        if args.command == "run":
            log.info("実行済みコピーと summary.csv / summary.json: %s", out)
    return 0 if all(r.passed for r in results) else 1


def _strip_solutions(args) -> int:
    with _log_to_stderr():
        try:
            notebooks = runner.select_notebooks(args.notebooks_dir or runner.default_notebooks_dir(), args.only)
            counts = handout.write_handouts(notebooks, args.out)
        except CourseError as exc:
            log.error("エラー: %s", exc)
            return 2
        log.info("配布用コピー %d 本（解答例 %d セルを空欄に）: %s", len(counts), sum(counts.values()), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
