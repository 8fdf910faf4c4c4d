"""Step 2 of the data flow: score an Experience (what generation filled), adding

    raw_scores   (B,)    the episode's reward: the environment's turn rewards, plus a reward
                         model read at the final EOS (an episode cut at the token limit is read at
                         an EOS appended to it, as the model was trained) or a plain Python reward
                         function (prompts, completions) -> list[float]
    rewards      (B, R)  the environment's rewards where it placed them, plus the score on the last
                         action token; with the EOS trick an episode whose turns did not all emit
                         EOS gets `eos_penalty` there instead of the score
    ref_logprobs (B, R)  log pi_ref of the sampled tokens, at the sampling temperature
    values       (B, R)  V(s_t) from the value model, the state before each token
"""
from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from rlhfkit.errors import InputError, RunError
from rlhfkit.models.heads import (group_rewards, last_token_index, load_reward_model, sequence_rewards,
                                  token_values)
from rlhfkit.models.lm import repeated_rows
from rlhfkit.rollout.generate import token_logprobs
from rlhfkit.rollout.types import Experience, last_action_token

RewardFn = Callable[[list[str], list[str]], list[float]]      # the user's: (prompts, completions) -> scores
ScoreFn = Callable[[Experience, list[str]], torch.Tensor]     # rlhfkit's: (episodes, prompts) -> (B,) scores


def with_final_eos(rollout: Experience, eos_id: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) with EOS appended to each answer that did not end, (B, P+R+1):
    a reward model learns to read finished answers, so a cut-off one is read the same way."""
    ids = torch.nn.functional.pad(rollout.input_ids, (0, 1), value=pad_id)
    attn = torch.nn.functional.pad(rollout.attention_mask, (0, 1), value=0)
    rows = (~rollout.ended).nonzero().squeeze(1)
    after = last_token_index(attn)[rows] + 1            # responses are right-padded: a free slot
    ids[rows, after] = eos_id
    attn[rows, after] = 1
    return ids, attn


def answer_tokens(rollout: Experience, attn: torch.Tensor) -> torch.Tensor:
    """1 at the policy's own tokens and an EOS `with_final_eos` appended, 0 at the prompt's and the
    environment's: what a reward model's answer read-outs read, (B, P+R+1)."""
    P, R = rollout.prompt_ids.size(1), rollout.action_mask.size(1)
    answer = attn.clone()
    answer[:, :P] = 0
    answer[:, P:P + R] *= (rollout.action_mask > 0).long() | (attn[:, P:P + R] * (1 - rollout.response_mask))
    return answer


def reward_model_fn(model, tokenizer) -> ScoreFn:
    """Score with a reward model on the rollout's own tokens (no re-tokenisation). The samples of
    one prompt in consecutive rows (best-of-n, RSFT, RLOO, GRPO) share one pass over the prompt."""
    def score(rollout: Experience, prompts: list[str]) -> torch.Tensor:
        ids, attn = with_final_eos(rollout, tokenizer.eos_token_id, tokenizer.pad_token_id)
        answer = answer_tokens(rollout, attn)
        sizes = repeated_rows(rollout.prompt_ids, rollout.prompt_mask)
        if max(sizes) == 1:
            return sequence_rewards(model, ids, attn, answer)
        return group_rewards(model, [row[m.bool()].tolist() for row, m in zip(ids, attn)], sizes,
                             tokenizer.pad_token_id, [a[m.bool()].tolist() for a, m in zip(answer, attn)])
    return score


# ---- A plain Python reward function --------------------------------------------------------
def load_reward_fn(spec: str) -> RewardFn:
    """The function `spec` names: `path/to/file.py:fn` (relative to the working directory, or
    absolute) or `package.module:fn` (installed, or in the working directory). Each way of not
    finding it (no file, no module, an import that fails, no such name, not callable) is one
    InputError that says where."""
    target, _, name = spec.rpartition(":")
    if not target or not name:
        raise InputError(f"reward {spec!r}: expected FILE.py:FUNCTION or MODULE:FUNCTION")
    module = _import_file(spec, Path(target)) if target.endswith(".py") else _import_module(spec, target)
    fn = getattr(module, name, None)
    if fn is None:
        own = sorted(k for k, v in vars(module).items()
                     if callable(v) and not k.startswith("_") and getattr(v, "__module__", None) == module.__name__)
        raise InputError(f"reward {spec!r}: {target} defines no {name!r} (it defines: {', '.join(own) or 'nothing'})")
    if not callable(fn):
        raise InputError(f"reward {spec!r}: {name!r} in {target} is a {type(fn).__name__}, not a function")
    return fn


def _import_file(spec: str, path: Path):
    if not path.is_file():
        raise InputError(f"reward {spec!r}: no such file {path} (a relative path starts at {os.getcwd()})")
    # named by the path as written, so the function reads `rewards.py:brevity` in messages
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(str(path), path))
    if str(path.resolve().parent) not in sys.path:     # so it can import the files beside it
        sys.path.append(str(path.resolve().parent))
    sys.modules[module.__name__] = module              # dataclasses in it look themselves up there
    try:
        module.__spec__.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 -- whatever the user's module raises while it loads
        del sys.modules[module.__name__]
        raise _import_failed(spec, e) from None
    return module


def _import_module(spec: str, name: str):
    # a console script's sys.path lacks the working directory: after the installed packages, so a
    # file there never shadows one of them
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is not None and (name == e.name or name.startswith(e.name + ".")):
            raise InputError(f"reward {spec!r}: no module {name!r} in the working directory ({os.getcwd()}) "
                             "or the installed packages") from None
        raise _import_failed(spec, e) from None
    except Exception as e:  # noqa: BLE001 -- whatever the user's module raises while it loads
        raise _import_failed(spec, e) from None


def _import_failed(spec: str, e: Exception) -> InputError:
    return InputError(f"reward {spec!r}: importing it failed at {_where(e)}: {type(e).__name__}: {e}")


def _where(e: BaseException) -> str:
    """file:line where `e` was raised (for a SyntaxError, the offending line), past importlib's frames."""
    if isinstance(e, SyntaxError):
        return f"{e.filename}:{e.lineno}"
    frames = [f for f in traceback.extract_tb(e.__traceback__) if not f.filename.startswith("<frozen")]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


def load_reward(reward_model: str, reward: str, reward_fn: RewardFn | None, tokenizer) -> ScoreFn | None:
    """A stage's reward as rlhfkit scores with it: the Python function handed in, else the one
    `reward` names, else the reward model in `reward_model` (None if none is given)."""
    if reward_fn is not None or reward:
        return python_reward_fn(reward_fn or load_reward_fn(reward))
    if reward_model:
        return reward_model_fn(load_reward_model(reward_model, tokenizer), tokenizer)
    return None


def reward_identity(reward: str, reward_fn: RewardFn | None) -> tuple[dict[str, str], dict | None]:
    """What identifies a reward function in a job's fingerprint: (data entries, extra entries):
    the file a --reward spec's code lives in is hashed; a function from Python is known by name."""
    return {"reward_code": reward_code_file(reward)}, ({"reward_fn": callable_name(reward_fn)} if reward_fn else None)


def reward_code_file(spec: str) -> str:
    """The file a `--reward` spec's code lives in ('' if none can be found), for the job's
    fingerprint: `FILE.py:fn` names it; `module:fn` is looked up in the working directory, then on
    the import path, without importing it."""
    source = spec.rpartition(":")[0]
    if not source or source.endswith(".py"):
        return source
    local = Path(*source.split(".")).with_suffix(".py")
    if local.is_file():
        return str(local)
    try:
        found = importlib.util.find_spec(source)
    except (ImportError, ValueError):
        return ""
    return found.origin if found is not None and str(found.origin).endswith(".py") else ""


def callable_name(fn: Callable) -> str:
    """How a reward function handed in from Python is known to the job's fingerprint: its name
    (its code is not hashed), for plain functions, partials and callable objects alike."""
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{getattr(fn, '__module__', None) or type(fn).__module__}:{name}"


def python_reward_fn(fn: RewardFn) -> ScoreFn:
    """Score with a plain function of text. What it returns is checked, one finite number per
    completion; anything else stops the run (RunError) naming the function and the index."""
    name = f"{getattr(fn, '__module__', None)}:{getattr(fn, '__qualname__', type(fn).__name__)}"

    def score(rollout: Experience, prompts: list[str]) -> torch.Tensor:
        try:
            values = fn(prompts, rollout.texts)
        except Exception as e:  # noqa: BLE001 -- the user's code; reported in one line with its place
            raise RunError(f"reward {name} raised {type(e).__name__}: {e} (at {_where(e)})") from None
        try:
            n = len(values) if not isinstance(values, (str, bytes)) else None
        except TypeError:   # a scalar, or a 0-d tensor / array
            n = None
        if n is None:
            raise RunError(f"reward {name} returned a {type(values).__name__}; expected a list of "
                           f"{len(prompts)} numbers, one per completion")
        if n != len(prompts):
            raise RunError(f"reward {name} returned {len(values)} values for {len(prompts)} completions")
        scores = [_number(v) for v in values]
        for i, (v, x) in enumerate(zip(values, scores)):
            if x is None or not math.isfinite(x):
                raise RunError(f"reward {name} returned {_short(v)} for prompt {i} of the batch "
                               f"({_short(prompts[i])}); expected a finite number")
        return torch.tensor(scores)
    return score


def _number(v: object) -> float | None:
    if isinstance(v, (str, bytes)):
        return None
    try:
        return float(v)
    except (TypeError, ValueError, RuntimeError):   # RuntimeError: a tensor of several elements
        return None


def _short(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def response_values(value_model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    response_mask: torch.Tensor) -> torch.Tensor:
    """V(s_t) for each response token: the head at the position just before the token, (B, R),
    minus the model's `reward_offset`, as `sequence_rewards` reads rewards: a value model that
    starts from the reward model then starts on the scale of the rewards it must predict."""
    values = token_values(value_model, input_ids, attention_mask)                    # (B, P+R)
    P, R = input_ids.size(1) - response_mask.size(1), response_mask.size(1)
    offset = float(getattr(value_model.config, "reward_offset", 0.0))
    return (values[:, P - 1:P - 1 + R] - offset) * response_mask


@torch.no_grad()
def score(exp: Experience, prompts: list[str], reward: ScoreFn | None, ref_model, value_model,
          temperature: float, eos_penalty: float | None) -> Experience:
    """`reward` None: the environment's rewards are the whole reward."""
    proxy = reward(exp, prompts).float() if reward is not None else torch.zeros(len(prompts))
    final = proxy if eos_penalty is None else torch.where(exp.ended, proxy, torch.full_like(proxy, eos_penalty))
    ref = token_logprobs(ref_model, exp.input_ids, exp.attention_mask, exp.response_ids.size(1),
                         temperature) * exp.action_mask
    values = (response_values(value_model, exp.input_ids, exp.attention_mask, exp.action_mask)
              if value_model is not None else None)
    return replace(exp, raw_scores=exp.episode_returns + proxy, ref_logprobs=ref, values=values,
                   rewards=exp.rewards + last_action_token(exp.action_mask) * final.unsqueeze(1))
