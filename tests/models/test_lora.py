"""LoRA adapters (`--lora.r`): injected in place, only they (and a scalar head) train, the reference is
the model with them off, and a finished model is saved merged (plain names) with its adapter beside it."""
import json

import pytest
import torch
from safetensors.torch import load_file

from rlhfkit.config import LoRAConfig, SFTConfig, TrainConfig
from rlhfkit.engines.static_kv import read_weights
from rlhfkit.errors import ModelError
from rlhfkit.models import lora
from rlhfkit.models.heads import scalar_model_from_lm, score_head
from rlhfkit.models.lm import load_causal_lm, save_model
from rlhfkit.train import sft

IDS = torch.tensor([[1, 40, 41, 42, 43, 44, 45]])


def adapted(path, r=4):
    torch.manual_seed(0)
    model, tok = load_causal_lm(path)
    return lora.add_adapters(model, r, 8.0, "all-linear"), tok


def nudge(model):
    """Give every adapter a non-zero B, as training would."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.05)


@torch.no_grad()
def test_adapters_start_as_the_identity_and_only_they_train(tiny_model_dir):
    base, _ = load_causal_lm(tiny_model_dir)
    model, _ = adapted(tiny_model_dir)
    torch.testing.assert_close(model(IDS).logits, base(IDS).logits)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n for n in trainable)
    targets = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable}
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}   # not lm_head
    rm, _ = scalar_model_from_lm(tiny_model_dir)
    lora.add_adapters(rm, 4, 8.0, "q_proj,v_proj", train_beside=(score_head(rm),))
    assert {n for n, p in rm.named_parameters() if p.requires_grad and ".lora_" not in n} == {"score.weight"}


def test_an_unknown_target_module_is_refused_in_one_line(tiny_model_dir):
    model, _ = load_causal_lm(tiny_model_dir)
    with pytest.raises(ModelError, match="no linear layer named qkv for --lora.target_modules; it has .*q_proj"):
        lora.add_adapters(model, 4, 8.0, "qkv")


@torch.no_grad()
def test_disabled_is_the_base_and_the_engine_reads_the_adapted_weights(tiny_model_dir):
    base, _ = load_causal_lm(tiny_model_dir)
    model, _ = adapted(tiny_model_dir)
    nudge(model)
    assert (model(IDS).logits - base(IDS).logits).abs().max() > 1e-3
    with lora.disabled(model):
        torch.testing.assert_close(model(IDS).logits, base(IDS).logits)
    assert (model(IDS).logits - base(IDS).logits).abs().max() > 1e-3            # switched back on
    att = model.model.layers[0].self_attn
    expected = att.q_proj.base_layer.weight + att.q_proj.get_delta_weight("default")
    q_rows = expected.size(0)
    torch.testing.assert_close(read_weights(model, torch.float32).layers[0].wqkv[:q_rows], expected)


@torch.no_grad()
def test_saved_merged_with_plain_names_and_the_adapter_beside_it(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    model, tok = adapted(tiny_model_dir)
    nudge(model)
    save_model(tmp_path / "model", model, tok)
    keys = load_file(tmp_path / "model" / "model.safetensors").keys()
    assert not any(".lora_" in k or ".base_layer." in k for k in keys)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    torch.testing.assert_close(merged(IDS).logits, model(IDS).logits, rtol=1e-4, atol=1e-5)
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (4, 8.0)
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / "adapter")
    torch.testing.assert_close(peft(IDS).logits, model(IDS).logits, rtol=1e-4, atol=1e-5)


def _demos(path, n=12):
    path.write_text("".join(json.dumps({"prompt": f"POST: story {i}\nTL;DR:", "completion": f" yes {i}"}) + "\n"
                            for i in range(n)))
    return path


def test_sft_with_adapters_resumes_a_killed_run_exactly(tiny_model_dir, tmp_path, kill_at_step):
    def cfg(out):
        return SFTConfig(model=str(tiny_model_dir), data=str(_demos(tmp_path / "demos.jsonl")), out=str(out),
                         train=TrainConfig(lr=1e-2, batch_size=4, epochs=2, warmup_steps=1, checkpoint_every=2),
                         lora=LoRAConfig(r=4, alpha=8.0))
    sft.run(cfg(tmp_path / "whole"))
    kill_at_step(lambda: sft.run(cfg(tmp_path / "killed")), 4)
    checkpoint = tmp_path / "killed" / "checkpoint"
    assert set(load_file(checkpoint / "trainable.safetensors")) == \
        {n for n, p in adapted(tiny_model_dir)[0].named_parameters() if p.requires_grad}     # the adapters alone
    sft.run(cfg(tmp_path / "killed"))
    whole, killed = (load_file(tmp_path / d / "model" / "model.safetensors") for d in ("whole", "killed"))
    base = load_file(tiny_model_dir / "model.safetensors")
    assert max((whole[k] - killed[k]).abs().max().item() for k in whole) < 1e-6
    assert max((whole[k] - base[k]).abs().max().item() for k in base) > 1e-3          # it trained
    torch.testing.assert_close(whole["model.norm.weight"], base["model.norm.weight"])  # what has no adapter did not


def test_what_trains_is_kept_by_name_through_a_freeze_and_a_switch_off(tiny_model_dir):
    """A value warm-up freezes the policy's adapters for a while: a checkpoint then still holds them,
    and switching the adapters off for a reference pass leaves the frozen ones frozen."""
    model, _ = adapted(tiny_model_dir)
    adapters = {n for n, p in model.named_parameters() if p.requires_grad}
    for p in model.parameters():
        p.requires_grad_(False)
    assert set(lora.trainable_state(model)) == adapters
    with lora.disabled(model):
        pass
    assert not any(p.requires_grad for p in model.parameters())
    lora.load_trainable_state(model, lora.trainable_state(model), "here")
    with pytest.raises(ModelError, match="here: its adapter weights do not fit the model"):
        lora.load_trainable_state(model, {}, "here")
