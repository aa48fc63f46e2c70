"""Liburary Docs の講座で使う共通ヘルパー。"""
