"""The RL algorithms `rlhfkit rl --algo` knows: one line each.

Each module named here has the same two entry points, which `train/rl.py` calls in order:

    advantages(exp: Experience, beta, hp, own) -> Experience    # 3: fills exp.advantages (and returns)
    loss(exp: Experience, logprobs, values, beta, hp, own) -> (loss, stats)   # 4: one minibatch
    units(exp: Experience, hp, own) -> float    # what loss() averages over (action tokens, sequences)

`hp` is the shared `rl` config section; `own` the algorithm's own section, the RLConfig field named
after it (`ppo: PPOOptions`, `--ppo.lam`), or None if it has none. A new algorithm is one file in
`algorithms/` and one line below (and, for options of its own, a section in `config/sections.py`
and a field of RLConfig). This module imports nothing heavy, so the configs can list the names
and check `critic` / `grouped` without loading torch.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Entry:
    module: str      # where advantages() and loss() live
    critic: bool     # learns a value model (and takes --value_model)
    grouped: bool    # samples rl.k answers per prompt and baselines each by its group (needs k >= 2)


RL_ALGORITHMS: dict[str, Entry] = {
    "ppo": Entry("rlhfkit.algorithms.ppo", critic=True, grouped=False),
    "rloo": Entry("rlhfkit.algorithms.rloo", critic=False, grouped=True),
    "grpo": Entry("rlhfkit.algorithms.grpo", critic=False, grouped=True),
    "reinforce_pp": Entry("rlhfkit.algorithms.reinforce_pp", critic=False, grouped=False),
}


def algorithm(name: str) -> ModuleType:
    """The module of algorithm `name` (its advantages() and loss())."""
    return importlib.import_module(RL_ALGORITHMS[name].module)
