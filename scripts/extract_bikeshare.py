"""ISLP の wheel から Bikeshare.csv を取り出して data/bikeshare.csv に書く（一度だけ実行する）。

ISLP は実行時の依存にしない（別の深層学習スタックを引き込むため）。手順:

    pip download --no-deps islp==0.6.0 -d /tmp/islp
    uv run python scripts/extract_bikeshare.py /tmp/islp/islp-0.6.0-py3-none-any.whl

中身は一切変更せず、バイト列のまま書き出す。
"""
from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

MEMBER = "ISLP/data/Bikeshare.csv"
DEST = Path(__file__).resolve().parents[1] / "data" / "bikeshare.csv"


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as zf:
        payload = zf.read(MEMBER)
    DEST.write_bytes(payload)
    print(f"{DEST} ({len(payload)} bytes, sha256={hashlib.sha256(payload).hexdigest()})")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("使い方: python scripts/extract_bikeshare.py ISLPのwheelファイル")
    main(sys.argv[1])
