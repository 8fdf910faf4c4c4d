"""The reference engine: transformers' `generate` with plain temperature sampling (no top-k,
no top-p), for any causal LM the hub has."""
from __future__ import annotations

import torch
from transformers import GenerationConfig

from rlhfkit.engines import Generation, Sampling, finish


class Engine:
    def __init__(self) -> None:
        self.model = None

    def load_weights(self, model) -> None:
        self.model = model          # generate reads the live parameters: nothing to copy

    @torch.no_grad()
    def generate(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, sampling: Sampling) -> Generation:
        # the model's own generation config is set aside for the call (generate fills unset fields
        # from it): settings saved with a hub model (a repetition penalty, banned n-grams) would
        # change what is sampled but not the log-probs kept
        config = GenerationConfig(do_sample=not sampling.greedy, max_new_tokens=sampling.max_new_tokens,
                                  eos_token_id=sampling.eos_id, pad_token_id=sampling.pad_id, use_cache=True,
                                  output_logits=True, return_dict_in_generate=True,
                                  **({} if sampling.greedy else {"temperature": sampling.temperature,
                                                                 "top_k": 0, "top_p": 1.0}))
        saved, self.model.generation_config = self.model.generation_config, config
        try:
            out = self.model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, generation_config=config)
        finally:
            self.model.generation_config = saved
        ids = out.sequences[:, prompt_ids.size(1):]
        logits = torch.stack(out.logits, dim=1).float() / sampling.temperature     # raw logits, then our T
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
        return finish(ids, logprobs, sampling)

