"""講座の小さな CLI アプリ（`python -m helpers.apps.<名前>` で実行する）。"""
