"""The reference engine: transformers' `generate` with plain temperature sampling (no top-k,
no top-p), for any causal LM the hub has."""
from __future__ import annotations

import torch

from rlhfkit.engines import Generation, Sampling, finish


class Engine:
    def __init__(self) -> None:
        self.model = None

    def load_weights(self, model) -> None:
        self.model = model          # generate reads the live parameters: nothing to copy

    @torch.no_grad()
    def generate(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, sampling: Sampling) -> Generation:
        mode = ({"do_sample": False} if sampling.greedy else
                {"do_sample": True, "temperature": sampling.temperature, "top_k": 0, "top_p": 1.0})
        out = self.model.generate(input_ids=prompt_ids, attention_mask=prompt_mask,
                                  max_new_tokens=sampling.max_new_tokens, eos_token_id=sampling.eos_id,
                                  pad_token_id=sampling.pad_id, use_cache=True, output_logits=True,
                                  return_dict_in_generate=True, **mode)
        ids = out.sequences[:, prompt_ids.size(1):]
        logits = torch.stack(out.logits, dim=1).float() / sampling.temperature     # raw logits, then our T
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
        return finish(ids, logprobs, sampling)

