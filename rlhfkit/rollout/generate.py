"""Step 1 of the data flow: prompts -> Experience, by sampling the policy with a KV cache (one
answer per prompt; `rollout/episodes.py` loops this over the turns of a conversation).

Sampling is plain temperature sampling (no top-k / top-p) by a generation engine
(`rlhfkit/engines/`), and the log-probs kept are the sampler's own, of the logits divided by the
same temperature: the log-probs of the distribution that was actually sampled (a mismatch here
is how peers got negative KL estimates). They equal a full forward pass's to float32 rounding;
an update in bfloat16 recomputes them in its own precision (`train/rl.py`).
"""
from __future__ import annotations

import torch

from rlhfkit import runtime
from rlhfkit.engines import Generation, Sampling, get_engine
from rlhfkit.models.lm import (context_length, logits_from, pack, repeated_rows, shared_prefix_forward,
                               split_shared_prefix)
from rlhfkit.rollout.types import Experience, one_turn


def prompt_tokens(prompt: str, tokenizer, max_len: int, index: int = 0) -> list[int]:
    """A prompt's ids, BOS first as in SFT; shorter than `max_len` (else ValueError naming `index`)."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id] + ids
    if len(ids) >= max_len:
        raise ValueError(f"prompt {index} is {len(ids)} tokens; the model's context is {max_len}")
    return ids


def encode_prompts(prompts: list[str], tokenizer, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompt ids and mask, (B, P), BOS first as in SFT."""
    rows = [prompt_tokens(p, tokenizer, max_len, i) for i, p in enumerate(prompts)]
    return left_padded(rows, tokenizer.pad_token_id)


def left_padded(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ids, right-aligned: (ids, mask), (B, longest)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r):] = 1
    return ids, mask


def response_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_response: int,
                    temperature: float) -> torch.Tensor:
    """Logits / T that predict each of the last n_response tokens: (B, R, V). Rows that repeat the
    row before's prompt (k samples of one prompt) share one pass over it (`shared_prefix_forward`);
    otherwise the rows run packed (no padding). The LM head runs only from the first position that
    predicts a response token."""
    shared = shared_prompt_logits(model, input_ids, attention_mask, n_response)
    if shared is not None:
        return shared.float() / temperature
    ids, mask, where = pack(input_ids, attention_mask)
    before = where[:, -n_response - 1:-1]              # packed column of the token before each response token
    first = int(before.min())
    logits = logits_from(model, ids, mask, ids.size(1) - first)
    index = (before - first).unsqueeze(-1).expand(-1, -1, logits.size(-1))
    return logits.gather(1, index).float() / temperature


def shared_prompt_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         n_response: int) -> torch.Tensor | None:
    """`response_logits` (before the temperature) with each run of rows that share a prompt
    running it once; None when no two consecutive rows share one."""
    P = input_ids.size(1) - n_response
    prompt_len = attention_mask[:, :P].sum(dim=1)
    sizes = repeated_rows(input_ids[:, :P], attention_mask[:, :P])
    if max(sizes) == 1:
        return None
    rows = [row[m.bool()].tolist() for row, m in zip(input_ids, attention_mask)]
    batch = split_shared_prefix(rows, sizes, 0, (prompt_len - 1).tolist())     # pad id 0: masked out
    if batch is None:
        return None
    logits = shared_prefix_forward(model, batch).logits                         # (B, S, V)
    cut = batch.prefix_mask.sum(dim=1)[batch.group]
    # response token t of row i is predicted at suffix position (prompt length - 1 - cut) + t;
    # padding columns read the last position (masked out by every user)
    index = ((prompt_len - 1 - cut)[:, None] + torch.arange(n_response)[None]).clamp(max=logits.size(1) - 1)
    return logits.gather(1, index.unsqueeze(-1).expand(-1, -1, logits.size(-1)))


def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_response: int,
                   temperature: float) -> torch.Tensor:
    """log pi(token_t | tokens_<t) at temperature T, for the last n_response positions: (B, R)."""
    logits = response_logits(model, input_ids, attention_mask, n_response, temperature)
    return gather_logprobs(logits, input_ids[:, -n_response:])


def gather_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def sample(model, tokenizer, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, *, temperature: float,
           max_new_tokens: int, engine: str = "auto") -> Generation:
    """Sampled continuations of left-padded prompts by generation engine `engine`, cut after the
    first EOS: ids, mask, the sampler's log-probs and EOS flags, (B, R)."""
    settings = Sampling(temperature=temperature, max_new_tokens=max_new_tokens, eos_id=tokenizer.eos_token_id,
                        pad_id=tokenizer.pad_token_id)
    # whole weights for the engine to copy, or one all-gather per block for the batch rather than per token
    with runtime.gathered(model):
        return get_engine(engine, model).generate(prompt_ids, prompt_mask, settings)


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], *, temperature: float, max_new_tokens: int,
             seed: int, engine: str = "auto") -> Experience:
    """One answer per prompt: the one-turn episode, its only turn ending at its last token."""
    prompt_ids, prompt_mask = encode_prompts(prompts, tokenizer, context_length(model) - max_new_tokens)
    torch.manual_seed(seed)
    out = sample(model, tokenizer, prompt_ids, prompt_mask, temperature=temperature, max_new_tokens=max_new_tokens,
                 engine=engine)
    return one_turn(prompt_ids, prompt_mask, out.ids, out.mask, out.logprobs,
                    tokenizer.batch_decode(out.ids, skip_special_tokens=True), out.finished)
