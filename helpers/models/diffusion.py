"""TabDDPM: 表データのガウス拡散モデルと、その合成 target 行で学ぶ回帰器（ノートブック 04 で紹介）。

Kotelnikov et al., "TabDDPM: Modelling Tabular Data with Diffusion Models" (ICML 2023) の数値特徴量部分に従う。
- 入力は QuantileTransformer(output_distribution="normal") で正規分布に揃え、y も 1 列として X と一緒に拡散する。
- cosine スケジュール、ε を予測する MLP（`helpers.models.denoiser`）、MSE 損失、AdamW、重みの EMA（生成は EMA で行う）。
- GPU では bf16 autocast と大きなバッチ、CPU では float32。
- チェックポイント（モデル・EMA・optimizer・step・乱数状態・変換器）を原子的に保存し、同じ設定なら続きから学習する。
  CPU では、途中で止めて再開しても止めずに学習したのとビット単位で同じ重みになる。
"""
from __future__ import annotations

import copy
import hashlib
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.preprocessing import QuantileTransformer

from helpers.env import DEVICES, limit_threads, progress_bar, resolve_device
from helpers.models.base import DomainRegressor
from helpers.models.denoiser import MLPDenoiser, cosine_alphas_cumprod

log = logging.getLogger(__name__)

#: checkpoint_dir の中のファイル名
CHECKPOINT_NAME = "tabddpm.pt"
#: QuantileTransformer(normal) の出力は約 ±5.2 に収まる。生成時に予測した x0 もこの範囲に切る
X0_CLIP = 5.2
#: チェックポイントの一致を確かめる設定（steps は含めない: 同じ学習を先へ延ばせるように）
SIGNATURE_KEYS = (
    "timesteps", "hidden", "n_layers", "dim_t", "dropout", "lr", "weight_decay", "ema_decay", "grad_clip", "seed",
)


class CheckpointMismatchError(ValueError):
    """checkpoint_dir にあるチェックポイントが今の設定・データと合わないときの例外。"""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


class TabDDPM:
    """表データ (X と任意の y) を学び、新しい行を生成するガウス拡散モデル。

    `fit(X, y=None, domain=None)` で学習し、`sample(n, domain=None, seed=0)` で (X, y) を生成する。
    domain (0 = source, 1 = target) を渡すと 1 つのモデルが両ドメインを学び、生成時にドメインを選べる。
    """

    def __init__(
        self,
        *,
        timesteps: int = 1000,
        hidden: int = 256,
        n_layers: int = 3,
        dim_t: int = 128,
        dropout: float = 0.0,
        steps: int = 2000,
        batch_size: int | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        ema_decay: float = 0.999,
        grad_clip: float | None = 1.0,
        snap_unique: int = 32,
        device: str = "auto",
        compile: bool = False,
        num_threads: int | None = None,
        seed: int = 0,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int = 500,
        log_every: int = 50,
        progress: bool = True,
    ) -> None:
        for name, value, low in (
            ("timesteps", timesteps, 2), ("hidden", hidden, 1), ("n_layers", n_layers, 1), ("dim_t", dim_t, 2),
            ("steps", steps, 1), ("snap_unique", snap_unique, 0), ("seed", seed, 0),
            ("checkpoint_every", checkpoint_every, 1), ("log_every", log_every, 1),
        ):
            _require(_is_int(value) and value >= low, f"{name} は {low} 以上の整数にしてください（受け取った値: {value!r}）。")
        for name, value, default in (("batch_size", batch_size, "CPU 1024 / CUDA 4096"), ("num_threads", num_threads, "PyTorch の既定")):
            _require(
                value is None or (_is_int(value) and value >= 1),
                f"{name} は 1 以上の整数か None（{default}）にしてください（受け取った値: {value!r}）。",
            )
        _require(_is_number(lr) and lr > 0, f"lr は正の数にしてください（受け取った値: {lr!r}）。")
        _require(_is_number(weight_decay) and weight_decay >= 0, f"weight_decay は 0 以上の数にしてください（受け取った値: {weight_decay!r}）。")
        _require(_is_number(dropout) and 0 <= dropout < 1, f"dropout は [0, 1) の範囲にしてください（受け取った値: {dropout!r}）。")
        _require(_is_number(ema_decay) and 0 <= ema_decay < 1, f"ema_decay は [0, 1) の範囲にしてください（受け取った値: {ema_decay!r}）。")
        _require(
            grad_clip is None or (_is_number(grad_clip) and grad_clip > 0),
            f"grad_clip は正の数か None（切らない）にしてください（受け取った値: {grad_clip!r}）。",
        )
        _require(device in DEVICES, f"device は {list(DEVICES)} のどれかにしてください（受け取った値: {device!r}）。")
        self.timesteps, self.hidden, self.n_layers, self.dim_t, self.dropout = timesteps, hidden, n_layers, dim_t, dropout
        self.steps, self.batch_size, self.lr, self.weight_decay = steps, batch_size, lr, weight_decay
        self.ema_decay, self.grad_clip, self.snap_unique = ema_decay, grad_clip, snap_unique
        self.device, self.compile, self.num_threads, self.seed = device, compile, num_threads, seed
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.checkpoint_every, self.log_every, self.progress = checkpoint_every, log_every, progress
        #: 学習損失の履歴 [(step, log_every ステップの平均損失), ...]（MLflow に記録する用）
        self.history_: list[tuple[int, float]] = []

    # ------------------------------------------------------------------ 準備
    def _setup(self, d_in: int, n_domains: int, device: torch.device) -> None:
        """スケジュール・モデル・EMA・optimizer・乱数生成器を作る（モデルの初期値は呼び出し側の乱数状態で決まる）。"""
        self.device_ = device
        self.d_in_, self.n_domains_ = d_in, n_domains
        self.batch_size_ = self.batch_size or (4096 if device.type == "cuda" else 1024)
        ac = cosine_alphas_cumprod(self.timesteps)
        ac_prev = np.append(1.0, ac[:-1])
        alphas = ac / ac_prev
        table = {
            "sqrt_ac": np.sqrt(ac),
            "sqrt_1m_ac": np.sqrt(1 - ac),
            # 事後分布 q(x_{t-1} | x_t, x_0) の平均の係数と分散（Ho et al. 2020 式 7）
            "coef_x0": (1 - alphas) * np.sqrt(ac_prev) / (1 - ac),
            "coef_xt": (1 - ac_prev) * np.sqrt(alphas) / (1 - ac),
            "post_std": np.sqrt((1 - alphas) * (1 - ac_prev) / (1 - ac)),
        }
        self._sched = {k: torch.tensor(v, dtype=torch.float32, device=device) for k, v in table.items()}
        self.model_ = MLPDenoiser(d_in, self.hidden, self.n_layers, self.dim_t, self.dropout, n_domains).to(device)
        self.ema_ = copy.deepcopy(self.model_).eval().requires_grad_(False)
        self._params, self._ema_params = list(self.model_.parameters()), list(self.ema_.parameters())
        # foreach=True: 全パラメータをまとめて更新する実装（CPU でも小さなモデルで速い。CUDA では既定）
        self.optimizer_ = torch.optim.AdamW(self._params, lr=self.lr, weight_decay=self.weight_decay, foreach=True)
        self.generator_ = torch.Generator(device=device).manual_seed(self.seed)
        use_compile = self.compile and device.type == "cuda"
        self._net = torch.compile(self.model_) if use_compile else self.model_

    def _train_step(self, data: torch.Tensor, domain: torch.Tensor | None, step: int) -> torch.Tensor:
        """1 ステップ: 行・時刻・ノイズを専用の生成器で引き、ε の MSE を下げ、EMA を更新する。"""
        g, dev, batch = self.generator_, self.device_, self.batch_size_
        idx = torch.randint(len(data), (batch,), generator=g, device=dev)
        t = torch.randint(self.timesteps, (batch,), generator=g, device=dev)
        noise = torch.randn((batch, data.shape[1]), generator=g, device=dev)
        x_t = self._sched["sqrt_ac"][t, None] * data[idx] + self._sched["sqrt_1m_ac"][t, None] * noise
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            pred = self._net(x_t, t, None if domain is None else domain[idx])
        loss = F.mse_loss(pred.float(), noise)
        self.optimizer_.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self._params, self.grad_clip)
        self.optimizer_.step()
        # 学習初期は EMA が古い重みに引きずられないよう、減衰率を (1+k)/(10+k) で抑える
        decay = min(self.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(self._ema_params, self._params):
                e.lerp_(p, 1 - decay)
        return loss.detach()

    # ------------------------------------------------------------------ 学習
    def fit(self, X: np.ndarray, y: np.ndarray | None = None, domain: np.ndarray | None = None) -> "TabDDPM":
        """X (n, d)（と y (n,)、domain (n,)）を学ぶ。checkpoint_dir に同じ設定のチェックポイントがあれば続きから。"""
        with limit_threads(self.num_threads):
            return self._fit(X, y, domain)

    def _fit(self, X, y, domain) -> "TabDDPM":
        raw, domain = self._validate(X, y, domain)
        dev = torch.device(resolve_device(self.device))
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        self.has_y_ = y is not None
        self._snap_values = [
            np.unique(col) if self.snap_unique and len(np.unique(col)) <= self.snap_unique else None for col in raw.T
        ]
        signature = self._signature(raw, domain, dev)
        ckpt = self._load_checkpoint(signature)
        if ckpt is not None:
            self.transformer_ = ckpt["transformer"]
        else:
            n_q = min(1000, len(raw))
            self.transformer_ = QuantileTransformer(output_distribution="normal", n_quantiles=n_q, random_state=self.seed)
            self.transformer_.fit(raw)
        data = torch.tensor(self.transformer_.transform(raw), dtype=torch.float32, device=dev)
        dom = None if domain is None else torch.tensor(domain, dtype=torch.long, device=dev)

        # 大域の乱数状態を汚さないよう、モデルの初期化と学習（dropout）は fork した乱数の中で行う
        with torch.random.fork_rng(devices=[dev.index] if dev.type == "cuda" else []):
            torch.manual_seed(self.seed)
            self._setup(raw.shape[1], 0 if domain is None else 2, dev)
            start, self.history_, loss_sum, loss_count = 0, [], torch.zeros((), device=dev), 0
            if ckpt is not None:
                start, loss_sum, loss_count = self._restore(ckpt)
                log.info("チェックポイントから再開します: step %d / %d (%s)", start, self.steps, self._checkpoint_path())
            log.info(
                "TabDDPM 学習: %d 行 × %d 列, device=%s, batch=%d, steps=%d", len(raw), raw.shape[1], dev, self.batch_size_, self.steps
            )
            self.model_.train()
            t0 = time.perf_counter()
            bar = progress_bar(total=self.steps, initial=start, desc="TabDDPM 学習", enabled=self.progress, mininterval=1.0)
            for step in range(start, self.steps):
                loss_sum = loss_sum + self._train_step(data, dom, step)
                loss_count += 1
                done = step + 1
                if done % self.log_every == 0:
                    loss_sum, loss_count = self._record(done, loss_sum, loss_count, bar)
                if self.checkpoint_dir is not None and (done % self.checkpoint_every == 0 or done == self.steps):
                    self._save_checkpoint(signature, done, loss_sum, loss_count)
                bar.update(1)
            bar.close()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            self.fit_seconds_ = time.perf_counter() - t0
        if loss_count:  # log_every で割り切れない最後の区間
            self._record(self.steps, loss_sum, loss_count, None)
        self.model_.eval()
        ran = self.steps - start
        if ran:
            log.info("TabDDPM 学習完了: %d ステップ, %.1f 秒 (%.1f steps/s)", ran, self.fit_seconds_, ran / self.fit_seconds_)
        return self

    def _record(self, step: int, loss_sum: torch.Tensor, count: int, bar) -> tuple[torch.Tensor, int]:
        value = float(loss_sum) / count  # GPU ではここで同期する（毎ステップではなく log_every ごと）
        self.history_.append((step, value))
        if bar is not None:
            bar.set_postfix(loss=f"{value:.4f}")
        return torch.zeros_like(loss_sum), 0

    def _validate(self, X, y, domain) -> tuple[np.ndarray, np.ndarray | None]:
        X = np.asarray(X, dtype=np.float64)
        _require(X.ndim == 2 and len(X) >= 2 and X.shape[1] >= 1, f"X は 2 行以上の 2 次元配列 (n, d) にしてください（受け取った形: {X.shape}）。")
        _require(np.isfinite(X).all(), "X に NaN か inf があります。補完するか、その行を除いてから渡してください。")
        columns = [X]
        if y is not None:
            y = np.asarray(y, dtype=np.float64)
            _require(y.shape == (len(X),), f"y の形 {y.shape} が X の行数 {len(X)} と合いません。")
            _require(np.isfinite(y).all(), "y に NaN か inf があります。その行を除いてから渡してください。")
            columns.append(y[:, None])
        if domain is not None:
            domain = np.asarray(domain)
            _require(
                domain.shape == (len(X),) and np.isin(domain, (0, 1)).all(),
                "domain は X と同じ長さで、0 (source) か 1 (target) だけを含む配列にしてください。",
            )
            domain = domain.astype(np.int64)
        return np.hstack(columns), domain

    # ------------------------------------------------------------------ チェックポイント
    def _checkpoint_path(self) -> Path | None:
        return None if self.checkpoint_dir is None else self.checkpoint_dir / CHECKPOINT_NAME

    def _signature(self, raw: np.ndarray, domain: np.ndarray | None, dev: torch.device) -> dict:
        digest = hashlib.sha256(np.ascontiguousarray(raw).tobytes())
        if domain is not None:
            digest.update(domain.tobytes())
        sig = {k: getattr(self, k) for k in SIGNATURE_KEYS}
        batch = self.batch_size or (4096 if dev.type == "cuda" else 1024)
        sig.update(batch_size=batch, device=dev.type, has_y=self.has_y_, data=f"{raw.shape} sha256:{digest.hexdigest()[:16]}")
        return sig

    def _load_checkpoint(self, signature: dict) -> dict | None:
        path = self._checkpoint_path()
        if path is None or not path.exists():
            return None
        # 自分で書いたファイルだけを読む（sklearn の変換器を含むので weights_only=False）
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        diff = [f"{k}: {ckpt['signature'].get(k)!r} → {v!r}" for k, v in signature.items() if ckpt["signature"].get(k) != v]
        if diff:
            raise CheckpointMismatchError(
                f"チェックポイント {path} は別の設定かデータで作られています（違い: {'; '.join(diff)}）。"
                "同じ設定で呼び直すか、別の checkpoint_dir を指定するか、古いチェックポイントを削除してください。"
            )
        if ckpt["step"] > self.steps:
            raise CheckpointMismatchError(
                f"チェックポイント {path} は step {ckpt['step']} まで進んでいて、steps={self.steps} を超えています。"
                f"steps を {ckpt['step']} 以上にするか、別の checkpoint_dir を指定してください。"
            )
        return ckpt

    def _restore(self, ckpt: dict) -> tuple[int, torch.Tensor, int]:
        dev = self.device_
        self.model_.load_state_dict(ckpt["model"])
        self.ema_.load_state_dict(ckpt["ema"])
        self.optimizer_.load_state_dict(ckpt["optimizer"])
        self.generator_.set_state(ckpt["generator"])
        torch.set_rng_state(ckpt["torch_rng"])
        if dev.type == "cuda" and ckpt["cuda_rng"] is not None:
            torch.cuda.set_rng_state(ckpt["cuda_rng"], dev)
        np.random.set_state(ckpt["numpy_rng"])
        self.history_ = list(ckpt["history"])
        loss_sum, loss_count = ckpt["loss_window"]
        return ckpt["step"], loss_sum.to(dev), loss_count

    def _save_checkpoint(self, signature: dict, step: int, loss_sum: torch.Tensor, loss_count: int) -> None:
        """一時ファイルに書いてから os.replace で置き換える（書き込み中に落ちても前のファイルが残る）。"""
        path = self._checkpoint_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "signature": signature,
            "step": step,
            "model": self.model_.state_dict(),
            "ema": self.ema_.state_dict(),
            "optimizer": self.optimizer_.state_dict(),
            "generator": self.generator_.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device_) if self.device_.type == "cuda" else None,
            "numpy_rng": np.random.get_state(),
            "transformer": self.transformer_,
            "history": list(self.history_),
            "loss_window": (loss_sum.detach().cpu(), loss_count),
        }
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        log.debug("チェックポイントを保存しました: step %d → %s", step, path)

    # ------------------------------------------------------------------ 生成
    def sample(self, n: int, *, domain: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
        """EMA の重みで n 行を生成し、元の尺度に戻して (X, y) を返す（y なしで学習したなら y は None）。

        domain: ドメイン付きで学習したモデルで生成するドメイン（None なら 1 = target）。
        """
        with limit_threads(self.num_threads):
            return self._sample(n, domain, seed)

    @torch.no_grad()
    def _sample(self, n: int, domain: int | None, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
        if not hasattr(self, "ema_"):
            raise RuntimeError("TabDDPM はまだ学習されていません。先に fit(X, y, domain) を呼んでください。")
        _require(_is_int(n) and n >= 1, f"n は 1 以上の整数にしてください（受け取った値: {n!r}）。")
        dev, s = self.device_, self._sched
        dom = None
        if self.n_domains_:
            domain = 1 if domain is None else domain
            _require(domain in (0, 1), f"domain は 0 (source) か 1 (target) にしてください（受け取った値: {domain!r}）。")
            dom = torch.full((n,), domain, dtype=torch.long, device=dev)
        else:
            _require(domain is None, "このモデルはドメインなしで学習されています。domain は指定しないでください。")
        g = torch.Generator(device=dev).manual_seed(seed)
        x = torch.randn((n, self.d_in_), generator=g, device=dev)
        steps = progress_bar(reversed(range(self.timesteps)), total=self.timesteps, desc="TabDDPM 生成",
                             enabled=self.progress, mininterval=1.0)
        for t in steps:
            tt = torch.full((n,), t, dtype=torch.long, device=dev)
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                eps = self.ema_(x, tt, dom).float()
            x0 = ((x - s["sqrt_1m_ac"][t] * eps) / s["sqrt_ac"][t]).clamp(-X0_CLIP, X0_CLIP)
            x = s["coef_x0"][t] * x0 + s["coef_xt"][t] * x
            if t > 0:
                x = x + s["post_std"][t] * torch.randn(x.shape, generator=g, device=dev)
        out = self.transformer_.inverse_transform(x.cpu().numpy().astype(np.float64))
        out = self._snap(out)
        if self.has_y_:
            return out[:, :-1], out[:, -1]
        return out, None

    def _snap(self, out: np.ndarray) -> np.ndarray:
        """学習データで値の種類が snap_unique 個以下の列（時刻・月など）を、最も近い観測値に丸める（TabDDPM と同じ扱い）。"""
        out = out.copy()
        for j, values in enumerate(self._snap_values):
            if values is None:
                continue
            pos = np.clip(np.searchsorted(values, out[:, j]), 0, len(values) - 1)
            lower, upper = values[np.maximum(pos - 1, 0)], values[pos]
            out[:, j] = np.where(np.abs(out[:, j] - lower) <= np.abs(upper - out[:, j]), lower, upper)
        return out


class TabDDPMRegressor(DomainRegressor):
    """TabDDPM で合成した target 行と、本物のラベル付き target 行で HistGradientBoosting を学ぶ回帰器。

    既定 (use_source=False) では拡散モデルをラベル付き target 行だけで学び、n_synthetic 行を生成して
    重み synthetic_weight で本物の行に足す。use_source=True なら source 全行とラベル付き target 行で
    1 つのモデルを学び（ドメイン埋め込み付き）、target (domain=1) を生成する。Bikeshare では、ラベル付き
    target 行から取り分けた検証行で比べると False の方がよかった（ノートブック 04）。
    ラベルのない target 行は y を持たないので使わない。
    """

    display_name = "TabDDPM"

    def __init__(
        self,
        *,
        timesteps: int = 1000,
        hidden: int = 256,
        n_layers: int = 3,
        steps: int = 2000,
        batch_size: int | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        ema_decay: float = 0.999,
        dropout: float = 0.0,
        n_synthetic: int = 2000,
        synthetic_weight: float = 0.1,
        use_source: bool = False,
        device: str = "auto",
        num_threads: int | None = None,
        seed: int = 0,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int = 500,
        progress: bool = True,
    ) -> None:
        _require(_is_int(n_synthetic) and n_synthetic >= 1, f"n_synthetic は 1 以上の整数にしてください（受け取った値: {n_synthetic!r}）。")
        _require(_is_number(synthetic_weight) and synthetic_weight > 0, f"synthetic_weight は正の数にしてください（受け取った値: {synthetic_weight!r}）。")
        self.diffusion = TabDDPM(
            timesteps=timesteps, hidden=hidden, n_layers=n_layers, steps=steps, batch_size=batch_size, lr=lr,
            weight_decay=weight_decay, ema_decay=ema_decay, dropout=dropout, device=device, num_threads=num_threads, seed=seed,
            checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, progress=progress,
        )
        self.n_synthetic, self.synthetic_weight, self.use_source = n_synthetic, synthetic_weight, use_source
        self.num_threads, self.seed = num_threads, seed

    def fit(self, split) -> "TabDDPMRegressor":
        Xt, yt = split.X_target_train, split.y_target_train
        if self.use_source:
            X = np.vstack([split.X_source, Xt])
            y = np.concatenate([split.y_source, yt])
            domain = np.r_[np.zeros(len(split.y_source), int), np.ones(len(yt), int)]
            self.diffusion.fit(X, y, domain)
            X_syn, y_syn = self.diffusion.sample(self.n_synthetic, domain=1, seed=self.seed)
        else:
            self.diffusion.fit(Xt, yt)
            X_syn, y_syn = self.diffusion.sample(self.n_synthetic, seed=self.seed)
        self.X_synthetic_, self.y_synthetic_ = X_syn, y_syn
        weights = np.r_[np.ones(len(yt)), np.full(len(y_syn), self.synthetic_weight)]
        self.regressor_ = HistGradientBoostingRegressor(random_state=self.seed)
        # num_threads は勾配ブースティング（OpenMP）のスレッド数にも使う（None なら制限しない）
        with limit_threads(self.num_threads):
            self.regressor_.fit(np.vstack([Xt, X_syn]), np.concatenate([yt, y_syn]), sample_weight=weights)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "regressor_"):
            raise RuntimeError("TabDDPMRegressor はまだ学習されていません。先に fit(split) を呼んでください。")
        with limit_threads(self.num_threads):
            return self.regressor_.predict(np.asarray(X))


def measure_throughput(
    device: str = "cpu",
    batch_size: int = 1024,
    steps: int = 50,
    d: int = 12,
    hidden: int = 256,
    n_layers: int = 3,
    timesteps: int = 1000,
    warmup: int = 5,
    num_threads: int | None = None,
) -> float:
    """学習の速さ (steps/s) を測る。最初の warmup ステップは数えず、CUDA では計測の前後で同期する。"""
    _require(_is_int(steps) and steps >= 1, f"steps は 1 以上の整数にしてください（受け取った値: {steps!r}）。")
    _require(_is_int(warmup) and warmup >= 0, f"warmup は 0 以上の整数にしてください（受け取った値: {warmup!r}）。")
    dev = torch.device(resolve_device(device))
    model = TabDDPM(timesteps=timesteps, hidden=hidden, n_layers=n_layers, batch_size=batch_size, steps=steps, progress=False)
    with limit_threads(num_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model._setup(d, 0, dev)
        data = torch.randn((4096, d), generator=model.generator_, device=dev)
        for k in range(warmup):
            model._train_step(data, None, k)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        for k in range(steps):
            model._train_step(data, None, warmup + k)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    return steps / (time.perf_counter() - t0)
