"""講座の例外の基底。Jupyter では長いトレースバックの代わりに日本語の説明だけを表示する。"""
from __future__ import annotations


class CourseError(Exception):
    """利用者が直せる誤り（設定・データ・デバイス）。メッセージに「何をすればよいか」を書く。"""

    def _render_traceback_(self) -> list[str]:
        # IPython はこのメソッドがあればトレースバックの代わりにこれを表示する
        return [f"\x1b[31m{type(self).__name__}\x1b[0m: {self}"]
