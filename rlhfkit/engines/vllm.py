"""vLLM as a generation engine (`--sample.engine vllm`; `pip install 'rlhfkit[vllm]'`, CUDA only).

The engine runs in the training process (colocated, as TRL's colocate mode and veRL's hybrid
engine do): one vLLM instance per process, built once from the first policy it is given and
kept for the rest of the run. `load_weights` copies the policy's current weights into it
(merged with their LoRA adapters, if any) before each batch, so a rollout always samples the
policy being trained. Prompts go in as token ids and samples come back as token ids with
vLLM's log-prob of each, taken after the temperature (`logprobs_mode="processed_logprobs"`).

vLLM computes in its own kernels and precision, so its log-probs are not the trainer's: the
trainer recomputes log pi_old itself and corrects for the difference with truncated importance
sampling (`EXTERNAL`; `train/rl.py`, `--rl.tis_cap`).

Settings from the environment, as this engine is optional and the interface takes none:
RLHFKIT_VLLM_GPU_MEMORY (share of the GPU's memory for vLLM's weights and KV cache, default 0.3,
the rest left to training) and RLHFKIT_VLLM_DTYPE (default bfloat16).
"""
from __future__ import annotations

import os
import tempfile

import torch

from rlhfkit import runtime
from rlhfkit.engines import Generation, Sampling, finish
from rlhfkit.errors import ModelError
from rlhfkit.models import lora

EXTERNAL = True        # log-probs from other kernels: the trainer recomputes log pi_old and corrects
_llm = None            # the process's one vLLM instance (a second would claim GPU memory again)
_weights_dir = None    # where its first weights were written (vLLM builds from a directory)
_architecture: tuple = ()   # the shape of the model it was built for (`architecture`)


def unsupported(config) -> str | None:
    return None if torch.cuda.is_available() else "vLLM needs a CUDA GPU"


def policy_weights(model) -> dict[str, torch.Tensor]:
    """What vLLM loads: the policy's whole weights under their plain names, adapters merged in."""
    if lora.has_adapters(model):
        return lora.merged_state_dict(model)
    whole = runtime.full_state_dict(model)           # gathered where FSDP2 shards them (every process calls)
    return whole if whole is not None else model.state_dict()


SHAPE = ("model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
         "num_key_value_heads", "tie_word_embeddings")


def architecture(model) -> tuple:
    """What must match for a model's weights to load into a built engine: the shape of its config."""
    return tuple(getattr(model.config, name, None) for name in SHAPE)


def _start(model):
    """vLLM built from `model`'s config and current weights (written once to a temporary directory)."""
    global _llm, _weights_dir, _architecture
    # in-process engine core, so the model object is reachable for weight updates
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from vllm import LLM
    _weights_dir = tempfile.TemporaryDirectory(prefix="rlhfkit-vllm-")
    model.save_pretrained(_weights_dir.name, state_dict=policy_weights(model), safe_serialization=True)
    # one engine per torchrun process, each on its own GPU: vLLM is told not to start processes of its own
    launcher = {"distributed_executor_backend": "external_launcher"} if runtime.current().world_size > 1 else {}
    _architecture = architecture(model)
    # generation_config="vllm": the saved generation_config.json's settings (extra stop tokens) set aside, as hf does
    _llm = LLM(model=_weights_dir.name, skip_tokenizer_init=True, generation_config="vllm",
               dtype=os.environ.get("RLHFKIT_VLLM_DTYPE", "bfloat16"),
               gpu_memory_utilization=float(os.environ.get("RLHFKIT_VLLM_GPU_MEMORY", "0.3")),
               logprobs_mode="processed_logprobs", enable_prefix_caching=True, seed=0, **launcher)
    return _llm


def _vllm_model(llm):
    try:
        return llm.llm_engine.model_executor.driver_worker.worker.model_runner.model
    except AttributeError as e:
        raise RuntimeError("this vLLM version keeps its model elsewhere (or in another process): rlhfkit loads "
                           "weights through llm.llm_engine.model_executor.driver_worker.worker.model_runner.model "
                           "with VLLM_ENABLE_V1_MULTIPROCESSING=0") from e


class Engine:
    def __init__(self) -> None:
        self.llm = None

    def load_weights(self, model) -> None:
        if _llm is None:
            self.llm = _start(model)
            return
        if architecture(model) != _architecture:
            raise ModelError("the vllm engine of this process was built for another model architecture; one "
                             "process samples one architecture with vllm")
        self.llm = _llm
        _vllm_model(self.llm).load_weights(weights=policy_weights(model).items())
        self.llm.reset_prefix_cache()       # cached prompt states were computed by the old weights

    @torch.no_grad()
    def generate(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, sampling: Sampling) -> Generation:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        prompts = [TokensPrompt(prompt_token_ids=row[m.bool()].tolist()) for row, m in zip(prompt_ids, prompt_mask)]
        # one seed per row, drawn from the torch RNG the caller seeded: runs repeat, rows differ
        seeds = torch.randint(0, 2**31 - 1, (len(prompts),)).tolist()
        params = [SamplingParams(temperature=0.0 if sampling.greedy else sampling.temperature, top_p=1.0, top_k=0,
                                 max_tokens=sampling.max_new_tokens, stop_token_ids=[sampling.eos_id], logprobs=0,
                                 seed=s, detokenize=False) for s in seeds]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return finish(*sampled_rows([o.outputs[0] for o in outputs], sampling), sampling)


def sampled_rows(completions, sampling: Sampling) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, log-probs), (B, R) right-padded, from vLLM's completions (token_ids, and logprobs as one
    {token id: Logprob} dict per position holding the sampled token)."""
    ids = torch.full((len(completions), sampling.max_new_tokens), sampling.pad_id, dtype=torch.long)
    logprobs = torch.zeros(ids.shape)
    for i, c in enumerate(completions):
        tokens = list(c.token_ids)
        ids[i, :len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        logprobs[i, :len(tokens)] = torch.tensor([step[t].logprob for t, step in zip(tokens, c.logprobs)])
    return ids, logprobs
