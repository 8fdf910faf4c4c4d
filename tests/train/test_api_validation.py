"""The Python API validates as the command line does, before anything is written."""
import json
import math

import pytest

from rlhfkit.config import ConfigError, DPOConfig, RLConfig, RMConfig, SFTConfig, TrainConfig
from rlhfkit.train import preference, reward_model, rl, sft


@pytest.fixture()
def demos(tmp_path):
    path = tmp_path / "demos.jsonl"
    path.write_text(json.dumps({"prompt": "POST: a\nTL;DR:", "completion": " b"}) + "\n")
    return path


@pytest.mark.parametrize("run, cfg, field", [
    (sft.run, lambda m, d, o: SFTConfig(model=m, data=d, out=o, train=TrainConfig(lr=math.nan)), "train.lr"),
    (sft.run, lambda m, d, o: SFTConfig(model=m, data=d, out=o, train=TrainConfig(warmup_steps=-1)),
     "train.warmup_steps"),
    (reward_model.run, lambda m, d, o: RMConfig(model=m, data=d, out=o, train=TrainConfig(batch_size=0)),
     "train.batch_size"),
    (preference.run_dpo, lambda m, d, o: DPOConfig(model=m, data=d, out=o, beta=math.inf), "beta"),
    (rl.run, lambda m, d, o: RLConfig(policy=m, reward="x:y", reward_model="runs/rm", out=o), "reward_model"),
])
def test_run_refuses_a_bad_config_before_writing(tiny_model_dir, demos, tmp_path, run, cfg, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        run(cfg(str(tiny_model_dir), str(demos), str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()


def test_max_len_above_the_models_context_is_refused(tiny_model_dir, demos, tmp_path):
    with pytest.raises(ConfigError, match=r"max_len \(100000\) is above the model's context length \(512\)"):
        sft.run(SFTConfig(model=str(tiny_model_dir), data=str(demos), out=str(tmp_path / "out"), max_len=100000))
    assert not (tmp_path / "out" / "model").exists()
