"""The KL coefficient beta: fixed, or adapted toward a target KL (Ziegler et al. 2019, eq. 2)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class KLController:
    beta: float
    target: float | None = None    # None: fixed beta
    horizon: int = 10000           # episodes over which beta may change by e-fold

    def update(self, kl: float, n_episodes: int) -> float:
        """After a batch of n_episodes with mean sequence KL `kl`, return the new beta."""
        if self.target is not None:
            error = min(max(kl / self.target - 1, -0.2), 0.2)
            self.beta *= 1 + error * n_episodes / self.horizon
        return self.beta

    def state_dict(self) -> dict:
        return {"beta": self.beta}

    def load_state_dict(self, state: dict) -> None:
        self.beta = state["beta"]
