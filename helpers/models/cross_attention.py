"""講座の手法「Ours (CrossAttention)」: ラベル付きの行を記憶し、近傍を注意で読む回帰（ノートブック 04 で紹介、10 で比較）。

TabR（Gorishniy et al. 2023, "TabR: Tabular Deep Learning Meets Nearest Neighbors"）の考え方を小さくしたもの。

- 記憶 (memory) = source 行 + ラベル付き target 行。target テスト行は決して入らない。
- 各クエリ行は、学習したキー k(x) の距離 −‖k(q) − k(m)‖² / temperature に、
  ドメインの組 (クエリ, 記憶) ごとの学習可能なバイアス（2×2 表）を足したスコアで記憶を並べ、
  上位 top_m 行だけで softmax をとる。
- 値 = W_y·y_m + (記憶行のドメイン埋め込み) + T(k(q) − k(m))。読み出しをクエリの表現に足し、MLP で y を予測する。
- 学習中、バッチのクエリ行は記憶にも入っているので、自分自身の記憶行（同じ記憶番号）を必ず除外する。
  だから行は自分のラベルを決して見ない。
- 予測は FEHDA（Daumé III 流の特徴拡張 + HistGradientBoosting、source 全行 + ラベル付き target で学習）と
  混ぜる: (1 − gbdt_blend)·ネットワーク + gbdt_blend·FEHDA。既定 0.5、0 ならネットワークだけ。
- 既定値は Bikeshare（ラベル 10 %）で、ラベル付き target 行だけの交差検証で選んだ「full」設定。
  「quick」設定の例: n_epochs=15, patience=5, top_m=16。
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from helpers.env import limit_threads, progress_bar, resolve_device
from helpers.models.base import DomainRegressor
from helpers.models.fehda import FEHDA

if TYPE_CHECKING:
    from helpers.data import DomainSplit

log = logging.getLogger(__name__)

SOURCE, TARGET = 0, 1
DOMAIN_NAMES = ("source", "target")


class _Block(nn.Module):
    """前正規化の残差 MLP ブロック。"""

    def __init__(self, d: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.ReLU(), nn.Dropout(dropout), nn.Linear(2 * d, d)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class _Network(nn.Module):
    """キー・エンコーダ・値・予測器をまとめたネットワーク（記憶は外から渡す）。

    キーのネットワークは小さくしてあり、記憶全体（約 6 千行）のキーを毎バッチ計算し直しても安い。
    """

    def __init__(self, n_features: int, d: int, d_key: int, dropout: float, temperature: float) -> None:
        super().__init__()
        self.temperature = temperature
        self.key = nn.Sequential(nn.Linear(n_features, d), nn.ReLU(), nn.Linear(d, d_key))
        self.encoder = nn.Sequential(nn.Linear(n_features, d), _Block(d, dropout))
        self.query_domain = nn.Embedding(2, d)
        self.label = nn.Linear(1, d)
        self.memory_domain = nn.Embedding(2, d)
        self.diff = nn.Sequential(nn.Linear(d_key, d), nn.ReLU(), nn.Linear(d, d, bias=False))
        #: ドメインの組のバイアス: pair_bias[クエリのドメイン, 記憶のドメイン]
        self.pair_bias = nn.Parameter(torch.zeros(2, 2))
        self.head = nn.Sequential(_Block(d, dropout), nn.LayerNorm(d), nn.ReLU(), nn.Linear(d, 1))

    @torch.no_grad()
    def select(self, x_q, d_q, X_m, d_m, top_m: int, exclude=None) -> torch.Tensor:
        """記憶全体を全探索し、各クエリの上位 top_m 行の記憶番号 (b, m) を返す。

        exclude[i] >= 0 なら、その記憶行をクエリ i の候補から外す（自分のラベルを見ないため）。
        """
        # −‖k_q − k_m‖²/T + bias = 2 k_q·k_m/T − ‖k_m‖²/T + bias − ‖k_q‖²/T。最後の項は順位に効かないので省く。
        # バイアスは one-hot の内積で足す（1 回の行列積で済む）。
        k_q, k_m = self.key(x_q), self.key(X_m)
        oh_q, oh_m = F.one_hot(d_q, 2).to(k_q.dtype), F.one_hot(d_m, 2).to(k_m.dtype)
        left = torch.cat([2 * k_q / self.temperature, oh_q @ self.pair_bias], dim=1)
        s = left @ torch.cat([k_m, oh_m], dim=1).T - k_m.square().sum(1) / self.temperature
        if exclude is not None:
            rows = torch.nonzero(exclude >= 0).squeeze(1)
            s[rows, exclude[rows]] = -math.inf
        return torch.topk(s, top_m, dim=1).indices

    def forward(self, x_q, d_q, X_m, y_m, d_m, idx):
        """選ばれた記憶行 idx (b, m) だけに注意を向け、予測 (b,) と注意の重み (b, m) を返す。"""
        k_q, k_c = self.key(x_q), self.key(X_m[idx])
        diff = k_q.unsqueeze(1) - k_c
        s = -diff.square().sum(-1) / self.temperature + self.pair_bias[d_q.unsqueeze(1), d_m[idx]]
        weights = torch.softmax(s, dim=1)
        values = self.label(y_m[idx].unsqueeze(-1)) + self.memory_domain(d_m[idx]) + self.diff(diff)
        h = self.encoder(x_q) + self.query_domain(d_q) + (weights.unsqueeze(-1) * values).sum(1)
        return self.head(h).squeeze(-1), weights


class CrossAttentionRegressor(DomainRegressor):
    """各行がラベル付きの行（source + target）の記憶に注意を向けて y を予測する回帰モデル。

    学習は source 行とラベル付き target 行の両方をクエリにし、target の損失に target_weight を掛ける。
    source は最大 max_source_rows 行（seed で無作為に選ぶ。None なら全行）。多すぎると精度が下がった。
    早期終了の検証行は、ラベル付き target 行の一部 (val_fraction) だけから取る（target テスト行は使わない）。
    学習後、検証行も記憶に戻して予測する。fit は torch の大域乱数の seed も設定する。
    """

    display_name = "Ours (CrossAttention)"

    def __init__(
        self,
        *,
        d_model: int = 64,
        d_key: int = 16,
        top_m: int = 32,
        n_epochs: int = 60,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        dropout: float = 0.1,
        target_weight: float = 2.0,
        temperature: float = 1.0,
        val_fraction: float = 0.2,
        patience: int = 15,
        max_source_rows: int | None = 3000,
        gbdt_blend: float = 0.5,
        device: str = "auto",
        cpu_threads: int | None = 1,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        _check_int("d_model", d_model, 1)
        _check_int("d_key", d_key, 1)
        _check_int("top_m", top_m, 1)
        _check_int("n_epochs", n_epochs, 1)
        _check_int("batch_size", batch_size, 1)
        _check_int("patience", patience, 1)
        _check_int("seed", seed, 0)
        if max_source_rows is not None:
            _check_int("max_source_rows", max_source_rows, 1)
        if cpu_threads is not None:
            _check_int("cpu_threads", cpu_threads, 1)
        _check_float("lr", lr, 0.0, math.inf, low_open=True)
        _check_float("weight_decay", weight_decay, 0.0, math.inf)
        _check_float("dropout", dropout, 0.0, 1.0, high_open=True)
        _check_float("target_weight", target_weight, 0.0, math.inf, low_open=True)
        _check_float("temperature", temperature, 0.0, math.inf, low_open=True)
        _check_float("val_fraction", val_fraction, 0.0, 1.0, high_open=True)
        _check_float("gbdt_blend", gbdt_blend, 0.0, 1.0)
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device は 'auto', 'cpu', 'cuda' のどれかにしてください（受け取った値: {device!r}）。")
        self.d_model, self.d_key, self.top_m = d_model, d_key, top_m
        self.n_epochs, self.batch_size = n_epochs, batch_size
        self.lr, self.weight_decay, self.dropout = lr, weight_decay, dropout
        self.target_weight, self.temperature, self.val_fraction = target_weight, temperature, val_fraction
        self.patience, self.gbdt_blend, self.device, self.cpu_threads = patience, gbdt_blend, device, cpu_threads
        self.max_source_rows, self.seed, self.progress = max_source_rows, seed, progress
        #: エポックごとの記録 [{"epoch", "train_loss", "val_loss"}, ...]（MLflow に記録する用）
        self.history: list[dict] = []

    # ------------------------------------------------------------------ 学習
    def fit(self, split: DomainSplit) -> CrossAttentionRegressor:
        """source 行とラベル付き target 行で学習する（target テスト行は使わない）。"""
        self.device_ = resolve_device(self.device)
        with self._threads():
            return self._fit(split)

    def _fit(self, split: DomainSplit) -> CrossAttentionRegressor:
        X_t, y_t = np.asarray(split.X_target_train, np.float32), np.asarray(split.y_target_train, np.float32)
        X_s, y_s = np.asarray(split.X_source, np.float32), np.asarray(split.y_source, np.float32)
        if len(y_t) == 0:
            raise ValueError("ラベル付き target 行 (split.X_target_train) が 0 行です。label_fraction を大きくしてください。")
        torch.manual_seed(self.seed)
        # source は多すぎると target の近傍を押しのけるので、最大 max_source_rows 行を無作為に使う（GBDT は全行）
        self.source_index_ = np.arange(len(y_s))
        if self.max_source_rows is not None and len(y_s) > self.max_source_rows:
            chosen = np.random.default_rng([self.seed, 3]).choice(len(y_s), self.max_source_rows, replace=False)
            self.source_index_ = np.sort(chosen)
        X_s, y_s = X_s[self.source_index_], y_s[self.source_index_]
        rng = np.random.default_rng([self.seed, 2])
        n_val = round(self.val_fraction * len(y_t))
        if 0 < self.val_fraction and not 0 < n_val < len(y_t):
            log.warning("ラベル付き target が %d 行しかないので、検証なし（早期終了なし）で学習します。", len(y_t))
            n_val = 0
        perm = rng.permutation(len(y_t))
        val, fit_rows = perm[:n_val], np.sort(perm[n_val:])

        # 記憶（学習中）: source + 検証に使わない target 行。y は記憶の平均・標準偏差で標準化する。
        X_mem = np.vstack([X_s, X_t[fit_rows]])
        y_mem = np.concatenate([y_s, y_t[fit_rows]])
        d_mem = np.r_[np.full(len(y_s), SOURCE), np.full(len(fit_rows), TARGET)]
        self.y_mean_, self.y_std_ = float(y_mem.mean()), float(y_mem.std() + 1e-8)
        self.top_m_ = min(self.top_m, len(y_mem) - 1)
        if self.top_m_ < 1:
            raise ValueError("記憶が 1 行しかないため、注意を向ける近傍がありません。ラベル付きの行を増やしてください。")

        self.network_ = _Network(X_mem.shape[1], self.d_model, self.d_key, self.dropout, self.temperature)
        self.network_.to(self.device_)
        opt = torch.optim.AdamW(self.network_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        self._set_memory(X_mem, y_mem, d_mem)  # 検証行の予測に使う
        X_m, y_m, d_m = self._tensors(X_mem, y_mem, d_mem)
        w = torch.where(d_m == TARGET, self.target_weight, 1.0)
        gen = torch.Generator().manual_seed(self.seed)
        self.history, best, best_loss, waited = [], None, math.inf, 0
        bar = progress_bar(range(self.n_epochs), desc=self.display_name, enabled=self.progress, leave=False)
        for epoch in bar:
            self.network_.train()
            total, weight_sum = 0.0, 0.0
            for batch in torch.randperm(len(y_mem), generator=gen).split(self.batch_size):
                # クエリは記憶の行そのもの: 自分の記憶番号 (batch) を候補から外す
                batch = batch.to(self.device_)
                idx = self.network_.select(X_m[batch], d_m[batch], X_m, d_m, self.top_m_, exclude=batch)
                pred, _ = self.network_(X_m[batch], d_m[batch], X_m, y_m, d_m, idx)
                loss = (w[batch] * (pred - y_m[batch]).square()).sum() / w[batch].sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * float(w[batch].sum())
                weight_sum += float(w[batch].sum())
            record = {"epoch": epoch + 1, "train_loss": total / weight_sum}
            if n_val:
                pred_val = self._predict_scaled(X_t[val])
                record["val_loss"] = float(np.mean((pred_val - (y_t[val] - self.y_mean_) / self.y_std_) ** 2))
            self.history.append(record)
            bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k != "epoch"})
            current = record.get("val_loss", record["train_loss"])
            if current < best_loss:
                best, best_loss, waited, self.best_epoch_ = copy.deepcopy(self.network_.state_dict()), current, 0, epoch + 1
            else:
                waited += 1
                if n_val and waited >= self.patience:
                    log.info("早期終了: エポック %d（最良はエポック %d）", epoch + 1, self.best_epoch_)
                    break
        bar.close()
        self.network_.load_state_dict(best)
        self.network_.eval()

        # 予測用の記憶: source + ラベル付き target 全行（検証行も戻す）。テスト行は入らない。
        self._set_memory(
            np.vstack([X_s, X_t]), np.concatenate([y_s, y_t]), np.r_[np.full(len(y_s), SOURCE), np.full(len(y_t), TARGET)]
        )
        self.memory_ids_ = np.concatenate([split.source_ids[self.source_index_], split.target_train_ids])
        self.gbdt_ = FEHDA(seed=self.seed).fit(split) if self.gbdt_blend > 0 else None
        return self

    # ------------------------------------------------------------------ 記憶
    def _tensors(self, X, y, d):
        dev = self.device_
        return (
            torch.as_tensor(X, dtype=torch.float32, device=dev),
            torch.as_tensor((np.asarray(y, np.float32) - self.y_mean_) / self.y_std_, dtype=torch.float32, device=dev),
            torch.as_tensor(d, dtype=torch.long, device=dev),
        )

    def _set_memory(self, X, y, d) -> None:
        #: 記憶（numpy）: 特徴量・ラベル（元の単位）・ドメイン (0 = source, 1 = target)
        self.memory_X_, self.memory_y_, self.memory_domain_ = (
            np.asarray(X, np.float32), np.asarray(y, np.float32).copy(), np.asarray(d, np.int64),
        )

    # ------------------------------------------------------------------ 予測
    @contextlib.contextmanager
    def _threads(self):
        """CPU では計算の間だけ torch と OpenMP/BLAS（FEHDA の HistGradientBoosting）のスレッド数を cpu_threads にする。

        小さな演算ばかりなので、CPU を他の仕事と分け合うときは 1 スレッドのほうがずっと速い。
        """
        if self.cpu_threads is None or self.device_ != "cpu":
            yield
            return
        with limit_threads(self.cpu_threads):
            yield

    @torch.no_grad()
    def _attend(self, X, domain=TARGET, exclude=None, chunk: int = 1024):
        """クエリ行 X を記憶に当て、(標準化した予測, 記憶番号 (n, m), 重み (n, m)) を返す。"""
        self._check_fitted()
        X = _as_matrix(X, self.memory_X_.shape[1])
        if domain not in (SOURCE, TARGET):
            raise ValueError(f"domain は 0 (source) か 1 (target) にしてください（受け取った値: {domain!r}）。")
        if exclude is not None:
            exclude = np.asarray(exclude, dtype=np.int64)
            if exclude.shape != (len(X),) or (exclude >= len(self.memory_y_)).any():
                raise ValueError(f"exclude は X の行数 {len(X)} と同じ長さの、記憶番号か -1 の配列にしてください。")
        with self._threads():
            return self._attend_rows(X, domain, exclude, chunk)

    def _attend_rows(self, X, domain, exclude, chunk):
        self.network_.eval()
        X_m, y_m, d_m = self._tensors(self.memory_X_, self.memory_y_, self.memory_domain_)
        top_m = min(self.top_m_, len(y_m) - (exclude is not None))
        preds, idxs, weights = [], [], []
        for start in range(0, len(X), chunk):
            x_q = torch.as_tensor(X[start:start + chunk], device=self.device_)
            d_q = torch.full((len(x_q),), int(domain), dtype=torch.long, device=self.device_)
            ex = None
            if exclude is not None:
                ex = torch.as_tensor(exclude[start:start + chunk], device=self.device_)
            idx = self.network_.select(x_q, d_q, X_m, d_m, top_m, exclude=ex)
            pred, weight = self.network_(x_q, d_q, X_m, y_m, d_m, idx)
            preds.append(pred.cpu().numpy()), idxs.append(idx.cpu().numpy()), weights.append(weight.cpu().numpy())
        return np.concatenate(preds), np.concatenate(idxs), np.concatenate(weights)

    def _predict_scaled(self, X) -> np.ndarray:
        return self._attend(X)[0]

    def predict_rows(self, X: np.ndarray, domain: int = TARGET, exclude=None) -> np.ndarray:
        """ドメインを指定して予測する（ネットワークだけ。FEHDA は混ぜない）。

        exclude: 各行について候補から外す記憶番号（-1 なら外さない）。学習中の「自分を除く」と同じ処理。
        """
        return self._attend(X, domain, exclude)[0] * self.y_std_ + self.y_mean_

    def predict(self, X: np.ndarray) -> np.ndarray:
        """target ドメインの行として予測する（gbdt_blend > 0 なら FEHDA と混ぜる）。"""
        pred = self.predict_rows(X)
        if self.gbdt_ is not None:
            with self._threads():
                gbdt = self.gbdt_.predict(np.asarray(X, np.float32))
            pred = (1 - self.gbdt_blend) * pred + self.gbdt_blend * gbdt
        return pred

    def attention(self, X: np.ndarray, domain: int = TARGET, exclude=None) -> pd.DataFrame:
        """各クエリ行が注意を向けた上位 top_m 行の表（ノートブックで注意を見せる用）。

        列: query（X の行番号）, rank, memory_index, memory_id（元データの行番号）, domain, y, weight。
        """
        _, idx, weights = self._attend(X, domain, exclude)
        n, m = idx.shape
        flat = idx.ravel()
        return pd.DataFrame({
            "query": np.repeat(np.arange(n), m),
            "rank": np.tile(np.arange(1, m + 1), n),
            "memory_index": flat,
            "memory_id": self.memory_ids_[flat],
            "domain": np.asarray(DOMAIN_NAMES)[self.memory_domain_[flat]],
            "y": self.memory_y_[flat],
            "weight": weights.ravel(),
        })

    @property
    def domain_bias_(self) -> pd.DataFrame:
        """学習したドメインの組のバイアス（行 = クエリのドメイン, 列 = 記憶のドメイン）。"""
        self._check_fitted()
        b = self.network_.pair_bias.detach().cpu().numpy()
        return pd.DataFrame(b, index=[f"query={n}" for n in DOMAIN_NAMES], columns=[f"memory={n}" for n in DOMAIN_NAMES])

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise RuntimeError("まだ学習していません。先に fit(split) を呼んでください。")


def _as_matrix(X, n_features: int) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"X は (行数, {n_features}) の 2 次元配列にしてください（受け取った形: {X.shape}）。")
    return X


def _check_int(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} は {low} 以上の整数にしてください（受け取った値: {value!r}）。")


def _check_float(name: str, value, low: float, high: float, low_open: bool = False, high_open: bool = False) -> None:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        left, right = "(" if low_open else "[", ")" if high_open or high == math.inf else "]"
        raise ValueError(f"{name} は {left}{low}, {high}{right} の範囲の数にしてください（受け取った値: {value!r}）。")
