"""TabDDPM の部品: cosine ノイズスケジュールと、ノイズ ε を予測する MLP（ノートブック 04 で紹介）。

Kotelnikov et al., "TabDDPM: Modelling Tabular Data with Diffusion Models" (ICML 2023) の数値特徴量部分と、
Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic Models" (ICML 2021) の cosine スケジュールに従う。
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def cosine_alphas_cumprod(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """cosine スケジュールの累積積 ᾱ_t（長さ timesteps, float64）。

    ᾱ(t) = f(t)/f(0), f(t) = cos²(((t/T) + s)/(1 + s) · π/2)。β_t は max_beta で頭打ちにする（Nichol & Dhariwal 式 17）。
    """
    t = np.arange(timesteps + 1, dtype=np.float64) / timesteps
    f = np.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = np.minimum(1 - f[1:] / f[:-1], max_beta)
    return np.cumprod(1 - betas)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """整数の時刻 t (batch,) を sin/cos の埋め込み (batch, dim) にする（Transformer の位置埋め込みと同じ形）。"""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class MLPDenoiser(nn.Module):
    """x_t と時刻 t（と任意でドメイン）から ε を予測する MLP。

    TabDDPM の MLPDiffusion と同じ形: 入力を dim_t 次元へ射影し、時刻の埋め込み（とドメインの埋め込み）を
    足してから、hidden 次元の全結合層を n_layers 層重ねる。活性化は SiLU。
    """

    def __init__(
        self,
        d_in: int,
        hidden: int = 256,
        n_layers: int = 3,
        dim_t: int = 128,
        dropout: float = 0.0,
        n_domains: int = 0,
    ) -> None:
        super().__init__()
        self.dim_t = dim_t
        self.proj = nn.Linear(d_in, dim_t)
        self.time_mlp = nn.Sequential(nn.Linear(dim_t, dim_t), nn.SiLU(), nn.Linear(dim_t, dim_t))
        # n_domains=2 なら source (0) と target (1) を 1 つのモデルで学び、生成時にドメインを選べる
        self.domain_emb = nn.Embedding(n_domains, dim_t) if n_domains else None
        layers: list[nn.Module] = []
        width = dim_t
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden), nn.SiLU(), nn.Dropout(dropout)]
            width = hidden
        self.mlp = nn.Sequential(*layers)
        self.head = nn.Linear(width, d_in)

    def forward(self, x: torch.Tensor, t: torch.Tensor, domain: torch.Tensor | None = None) -> torch.Tensor:
        h = self.proj(x) + self.time_mlp(timestep_embedding(t, self.dim_t))
        if self.domain_emb is not None:
            if domain is None:
                raise ValueError("このモデルはドメイン付きで作られています。domain (0 か 1 の整数テンソル) を渡してください。")
            h = h + self.domain_emb(domain)
        return self.head(self.mlp(h))
