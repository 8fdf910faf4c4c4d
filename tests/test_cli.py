"""Each stage run as a user runs it: the `rlhfkit` command in a subprocess, on a tiny world."""
import hashlib
import importlib.metadata
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlhfkit.algorithms.registry import RL_ALGORITHMS
from rlhfkit.cli import DATA_TASKS, STAGES
from rlhfkit.evaluate.probes import oracle_share
from rlhfkit.tasks.tldr.world import make_split

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false"}
TINY_TASK = ["--task.n_train", "64", "--task.n_valid", "16", "--task.n_test", "16"]


def rlhfkit(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "rlhfkit.cli", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"rlhfkit {' '.join(map(str, args))} failed:\n{proc.stderr[-3000:]}")
    return proc


@pytest.mark.parametrize("stage", [*STAGES, *(f"data {t}" for t in DATA_TASKS)])
def test_every_stage_has_help(stage):
    out = rlhfkit(*stage.split(), "--help").stdout
    assert "--config" in out and "default:" in out


def test_demo_names_its_world_with_task():
    conversation = rlhfkit("demo", "--task", "conversation", "--help").stdout
    assert "--events" in conversation and "--episodes" in conversation and "--bon_n" not in conversation
    tldr = rlhfkit("demo", "--help").stdout
    assert "--bon_n" in tldr and "--events" not in tldr and "--task {tldr,conversation}" in tldr
    bad = rlhfkit("demo", "--task", "conversation", "--events", "5", "--out", "x", check=False)
    assert bad.returncode == 2 and "events: expected distinct integers 1-4" in bad.stderr


def test_stats_json_is_one_object_on_stdout():
    proc = rlhfkit("data", "tldr", "--stats", "--json", "--task.n_stats", "200")
    stats = json.loads(proc.stdout)
    assert {"labeler_gold_agreement", "labeler_labeler_agreement", "oracle_winrate_vs_reference",
            "flip_loses_rate"} <= set(stats)


def test_data_tldr_writes_common_formats(tmp_path):
    rlhfkit("data", "tldr", "--out", tmp_path, *TINY_TASK)
    first = lambda name: json.loads((tmp_path / name).read_text().splitlines()[0])  # noqa: E731
    assert set(first("sft_train.jsonl")) == {"prompt", "completion"}
    assert set(first("comparisons.jsonl")) == {"prompt", "chosen", "rejected", "labeler"}
    assert len(first("rankings.jsonl")["completions"]) == 4
    assert "reference" in first("prompts_test.jsonl")
    assert len((tmp_path / "prompts_train.jsonl").read_text().splitlines()) == 64


def test_sft_then_eval(tiny_model_dir, tmp_path):
    rlhfkit("sft", "--model", tiny_model_dir, "--out", tmp_path / "sft", "--train.batch_size", "8",
            "--train.lr", "3e-3", *TINY_TASK)
    assert (tmp_path / "sft" / "model" / "model.safetensors").is_file()
    from transformers import AutoModelForCausalLM
    AutoModelForCausalLM.from_pretrained(tmp_path / "sft" / "model")
    rlhfkit("eval", "--policies", f"base={tiny_model_dir},sft={tmp_path / 'sft'}", "--kl_ref", tmp_path / "sft",
            "--out", tmp_path / "eval", "--n_prompts", "16", "--sample.max_new_tokens", "16",
            "--bootstrap", "200", *TINY_TASK)
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    sft = results["methods"]["sft"]
    assert sft["n_prompts"] == 16 and abs(sft["kl_to_sft"]) < 1e-4   # KL of a policy to itself is 0
    w = sft["winrate_vs_reference"]
    assert 0 <= w["ci_low"] <= w["mean"] <= w["ci_high"] <= 1
    assert {"omission", "contradiction", "invention", "no_eos"} == set(sft["failure_rates"])
    assert "| sft |" in (tmp_path / "eval" / "report.md").read_text()


def test_bad_data_is_reported_with_file_and_line(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n')
    proc = rlhfkit("sft", "--model", tiny_model_dir, "--data", bad, "--out", tmp_path / "o", check=False)
    assert proc.returncode == 2
    assert proc.stderr == f"rlhfkit sft: error: {bad}:2: missing field 'completion' (fields: ['prompt'])\n"
    assert not (tmp_path / "o").exists()


def test_the_console_script_finds_a_reward_module_in_the_working_directory(tiny_model_dir, tmp_path):
    """`rlhfkit` (not `python -m`) runs without the working directory on sys.path; `--reward
    module:fn` still finds the user's module there. It returns NaN, so the run stops at once."""
    (tmp_path / "my_reward.py").write_text("def nan(prompts, completions):\n    return [float('nan')] * len(prompts)\n")
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "rlhfkit"), "rl", "--algo", "grpo",
                           "--policy", str(tiny_model_dir), "--reward", "my_reward:nan", "--out", "run", "--rl.k", "2",
                           "--rl.prompts_per_step", "2", "--sample.max_new_tokens", "4", *TINY_TASK],
                          capture_output=True, text=True, env={**ENV, "PYTHONPATH": ""}, cwd=tmp_path, timeout=600)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("rlhfkit rl: error: reward my_reward:nan returned nan for prompt 0 ")
    assert not (tmp_path / "run").exists()      # a failed run leaves no empty --out


def test_config_errors_exit_2():
    proc = rlhfkit("sft", "--train.lr", "-1", check=False)
    assert proc.returncode == 2 and "train.lr must be > 0" in proc.stderr


def test_rm_trains_on_comparisons(tiny_model_dir, tmp_path):
    rlhfkit("data", "tldr", "--out", tmp_path / "data", *TINY_TASK)
    rlhfkit("rm", "--model", tiny_model_dir, "--data", tmp_path / "data" / "rankings.jsonl", "--valid_data",
            tmp_path / "data" / "comparisons.jsonl", "--out", tmp_path / "rm", "--train.batch_size", "8")
    from transformers import AutoModelForSequenceClassification
    rm = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm" / "model")
    assert rm.config.num_labels == 1 and isinstance(rm.config.reward_offset, float)
    assert rm.config.reward_readout == "eos"
    # another read-out is kept in the model's config, where every stage that scores reads it
    out = json.loads(rlhfkit("rm", "--model", tiny_model_dir, "--data", tmp_path / "data" / "rankings.jsonl",
                             "--out", tmp_path / "rm_lik", "--train.batch_size", "8", "--readout", "likelihood",
                             "--likelihood_weight", "0.5").stdout)
    rm = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm_lik" / "model")
    assert (rm.config.reward_readout, rm.config.likelihood_weight) == ("likelihood", 0.5)
    assert out["reward_offset"] < 0      # the log-probability term pulls every score below 0


def test_rm_verdict_readout_asks_in_one_token_words(tiny_model_dir, tmp_path):
    rlhfkit("data", "tldr", "--out", tmp_path / "data", *TINY_TASK)
    args = ("rm", "--model", tiny_model_dir, "--data", tmp_path / "data" / "rankings.jsonl", "--out", tmp_path / "rm",
            "--train.batch_size", "8", "--readout", "verdict", "--verdict_prompt", "\nThe TL;DR is")
    proc = rlhfkit(*args, check=False)          # " yes" is two tokens in the world's tokenizer
    assert proc.returncode == 2 and "rm.verdict_yes: ' yes' is 2 tokens" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "rm").exists()
    out = json.loads(rlhfkit(*args, "--verdict_yes", " did", "--verdict_no", " not",
                             "--valid_data", tmp_path / "data" / "comparisons.jsonl").stdout)
    from rlhfkit.models.heads import load_scalar_model
    rm, tok = load_scalar_model(tmp_path / "rm" / "model")
    assert rm.config.reward_readout == "verdict"
    assert rm.config.verdict_prompt_ids == tok.encode("\nThe TL;DR is", add_special_tokens=False)
    assert rm.config.verdict_token_ids == [tok.convert_tokens_to_ids("Ġdid"), tok.convert_tokens_to_ids("Ġnot")]
    assert 0.0 <= out["valid_accuracy"] <= 1.0 and out["comparisons"] > 0


# GRPO's variants: DAPO's token-level mean with clip-higher; Dr.GRPO's unscaled advantages and constant length with
# GSPO's sequence-level ratio
GRPO_VARIANTS = {"dapo": ["--grpo.loss_agg", "token_mean", "--grpo.clip_high", "0.28"],
                 "drgrpo_gspo": ["--grpo.scale_advantages", "false", "--grpo.loss_agg", "seq_mean_token_sum_norm",
                                 "--grpo.norm_length", "12", "--grpo.importance_level", "sequence"]}


@pytest.mark.parametrize("algo,variant", [("ppo", ""), ("rloo", ""), ("grpo", ""), ("reinforce_pp", ""),
                                          ("grpo", "dapo"), ("grpo", "drgrpo_gspo")])
def test_rl_raises_a_python_reward(tiny_model_dir, tmp_path, algo, variant):
    """A few iterations against a dense reward on a tiny model: the reward must go up."""
    env_path = os.path.dirname(__file__)
    ENV["PYTHONPATH"] = env_path + os.pathsep + ENV.get("PYTHONPATH", "")
    prompts = 8 if RL_ALGORITHMS[algo].grouped else 32   # 32 rollouts per iteration either way
    rlhfkit("rl", "--algo", algo, "--policy", tiny_model_dir, "--reward", "fixture_rewards:letter_e_share",
            "--out", tmp_path / algo, "--rl.steps", "16", "--rl.prompts_per_step", prompts, "--rl.k", "4",
            "--rl.lr", "1e-2", "--rl.warmup_steps", "0", "--rl.beta", "0.0", "--rl.eos_trick", "false",
            "--rl.minibatch_size", "16",
            "--rl.epochs", "2", "--sample.max_new_tokens", "12", "--sample.temperature", "1.0",
            *GRPO_VARIANTS.get(variant, []), *TINY_TASK)
    log = [json.loads(line) for line in (tmp_path / algo / "log.jsonl").read_text().splitlines()]
    assert len(log) == 16 and {"score", "kl", "rlhf_reward", "entropy", "clipfrac", "approx_kl", "length"} <= set(log[0])
    first, last = sum(r["score"] for r in log[:3]) / 3, sum(r["score"] for r in log[-3:]) / 3
    assert last > first + 0.1, (first, last)   # seen: ~0.09 -> 0.3-0.4
    assert log[0]["kl"] == pytest.approx(0.0, abs=1e-5)   # the first rollouts come from the reference itself


def check_budgets(results: dict, seed_dir) -> None:
    """What each method of the tiny demo spent: labels through the reward model or directly,
    samples, steps, tokens; the gold upper bounds' reward is the judge."""
    budget = {m: results["methods"][m]["budget"] for m in ("sft", "bon", "rsft", "dpo", "ppo", "grpo")}
    comparisons = results["reward_model"]["comparisons"]
    assert budget["sft"]["comparisons"] == 0 and budget["sft"]["samples"] == 0 and budget["sft"]["optimizer_steps"] > 0
    assert all(budget[m]["comparisons"] == comparisons for m in ("bon", "rsft", "dpo", "ppo", "grpo"))
    bon_spent = {k: budget["bon"][k] for k in ("samples", "reward_calls", "optimizer_steps", "answer_tokens")}
    assert bon_spent == {"samples": 16 * 4, "reward_calls": 16 * 4, "optimizer_steps": 0, "answer_tokens": 0}
    assert budget["bon"]["inference_time"]
    assert all(results["methods"][m]["budget"]["samples"] == results["methods"][m]["budget"]["reward_calls"] == 32
               for m in ("rsft", "rwsft", "ppo", "grpo", "gold_rsft", "gold_ppo"))
    # the gold upper bounds learn from the judge, not from labels: PPO's reward is the gold score itself
    assert all(results["methods"][m]["budget"]["comparisons"] == 0 for m in ("gold_rsft", "gold_ppo"))
    gold_log = [json.loads(line) for line in (seed_dir / "gold_ppo" / "log.jsonl").open()]
    assert len(gold_log) == 4 and all(row["score"] == pytest.approx(row["gold"], abs=1e-5) for row in gold_log)
    assert budget["dpo"]["samples"] == 0 and budget["dpo"]["answer_tokens"] > 0
    assert budget["ppo"]["optimizer_steps"] == 4 * 2                                        # iterations x epochs
    action_tokens = sum(line["length"] * 8 for line in results["curves"]["ppo"][0])
    assert budget["ppo"]["answer_tokens"] == pytest.approx(2 * action_tokens)              # each epoch trains them
    assert all(b["seconds"] > 0 and b["kl_to_sft"] is not None for b in budget.values())


def test_demo_end_to_end_on_a_tiny_world(tiny_model_dir, tmp_path):
    # every sampling method at 32 reward-scored samples: ppo 4 iterations of 8, grpo 2 of 8 x 2, rsft 2 rounds
    # of 8 prompts x 2, rwsft 16 prompts x 2
    methods = "all,grpo,gold_rsft,gold_ppo"
    args = ["demo", "--out", tmp_path / "demo", "--base_model", tiny_model_dir, "--methods", methods,
            "--n_prompts", "16", "--label_budget", "60", "--samples", "32", "--rl.prompts_per_step", "8",
            "--rl.k", "2", "--eval.max_new_tokens", "16", "--sft.epochs", "0.5", "--rm.epochs", "0.5",
            "--bon_n", "4", "--sample_n", "2", "--rsft_rounds", "2", "--pref.epochs", "0.5", "--sl.epochs", "0.5",
            *TINY_TASK]
    rlhfkit(*args)
    results = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert list(results["methods"]) == ["base", "sft", "bon", "rsft", "rwsft", "slic", "dpo", "ipo", "ppo", "grpo",
                                        "gold_rsft", "gold_ppo"]
    assert results["methods"]["bon"]["kl_to_sft"] == pytest.approx(math.log(4) - 3 / 4)
    assert {"accuracy_vs_labels", "accuracy_vs_gold", "labeler_agreement"} <= set(results["reward_model"])
    by_difference = results["reward_model"]["accuracy_vs_gold_by_difference"]
    assert set(by_difference) == {"contradiction", "coverage", "invention", "other"}
    assert sum(c["n"] for c in by_difference.values()) >= 1    # every pair the judge tells apart counts somewhere
    assert len(results["curves"]["ppo"][0]) == 4 and "gold" in results["curves"]["ppo"][0][0]
    claims = results["claims"]
    assert set(claims) == {"scoring_vs_generating", "constrained_sl", "negation", "rl_beats_sl"}
    assert all(isinstance(c["supported"], bool) and c["evidence"] for c in claims.values())
    assert [p["n"] for p in results["gold_vs_kl"]["bon"]["points"]] == [1, 2, 4]
    # the selection ceiling: the gold judge's own pick of n is at least the reward model's, and grows with n
    ceiling = [(p["gold"], p["gold_selected"]) for p in results["gold_vs_kl"]["bon"]["points"]]
    assert all(picked >= rm_pick - 1e-9 for rm_pick, picked in ceiling) and ceiling[0][0] == ceiling[0][1]
    assert all(b[1] >= a[1] - 1e-9 for a, b in zip(ceiling, ceiling[1:]))
    check_budgets(results, tmp_path / "demo" / "seed0")
    html = (tmp_path / "demo" / "report.html").read_text()
    md = (tmp_path / "demo" / "report.md").read_text()
    assert html.count("<img src='data:image/png;base64,") >= 5 and "| dpo |" in md and "Why RL" in md
    assert "## Budgets" in md and "| bon (inference time) |" in md and "<h2>Budgets</h2>" in html
    assert "## Selection ceiling" in md and "<h2>Selection ceiling</h2>" in html
    records = [json.loads(line) for line in (tmp_path / "demo" / "seed0" / "bon" / "completions.jsonl").open()]
    test_posts = make_split(0, "test", 16)
    assert results["oracle_share"] == oracle_share(records, test_posts)
    assert f"{100 * results['oracle_share']:.1f}% of these SFT samples reach the oracle summary's gold score" in md
    assert "| gold_ppo | gold judge | 32 |" in md and "<h2>Gold against gold</h2>" in html
    assert "pairs that differ in contradictions" in md
    assert "verdicts hold for this run's regime" in md and "32 reward-scored samples per method" in md
    assert "With the gold judge as the reward (the upper bounds)" in md
    seed_md = (tmp_path / "demo" / "seed0" / "report.md").read_text()
    assert "## Reward model" in seed_md and "## RL training" in seed_md
    seed_results = json.loads((tmp_path / "demo" / "seed0" / "results.json").read_text())
    assert seed_results["reward_model"]["accuracy_vs_labels"] == results["reward_model"]["accuracy_vs_labels"]
    # started again, the demo skips every finished stage (no weights written again) and reports the same figures
    weights = [tmp_path / "demo" / "seed0" / k / "model" / "model.safetensors" for k in ("sft", "rm", "dpo", "ppo")]
    written = [w.stat().st_mtime_ns for w in weights]
    rlhfkit(*args)
    again = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert again["methods"] == results["methods"]
    assert [w.stat().st_mtime_ns for w in weights] == written
    # another learning rate for slic, dpo and ipo makes the same --out another job: refused in one line
    proc = rlhfkit(*args, "--pref.lr", "3e-4", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "seed0/slic belongs to another job (config.train.lr differ)" in proc.stderr.strip().splitlines()[-1]


def test_sweep_over_budgets_from_a_finished_demo(tiny_model_dir, tmp_path):
    demo = tmp_path / "demo"
    # the demo's reward model reads its rewards as the mean over the answer: every sampler scores through it
    rlhfkit("demo", "--out", demo, "--base_model", tiny_model_dir, "--methods", "dpo", "--n_prompts", "16",
            "--label_budget", "60", "--eval.max_new_tokens", "16", "--sft.epochs", "0.5", "--rm.epochs", "0.5",
            "--pref.epochs", "0.5", "--rm_readout", "mean", *TINY_TASK)
    assert json.loads((demo / "seed0" / "rm" / "model" / "config.json").read_text())["reward_readout"] == "mean"
    args = ["sweep", "--demo", demo, "--out", tmp_path / "sweep", "--seeds", "1", "--samples", "16,32",
            "--rl.prompts_per_step", "8", "--rl.minibatch_size", "4", "--rl.warmup_steps", "1", "--bon_n", "4",
            "--sample_n", "2", "--rsft_rounds", "2", "--sl.epochs", "0.5"]
    # gold_ppo in a sweep of its own, then joined to the others' report seed by seed
    rlhfkit(*args[:4], tmp_path / "gold", *args[5:], "--methods", "gold_ppo")
    args += ["--methods", "bon,rsft,ppo", "--join", tmp_path / "gold"]
    rlhfkit(*args)
    results = json.loads((tmp_path / "sweep" / "results.json").read_text())
    rows = {(r["method"], r["samples"]) for r in results["rows"]}
    assert rows == {("sft", 0)} | {(m, n) for m in ("ppo", "gold_ppo", "rsft") for n in (16, 32)}
    gold_alone = json.loads((tmp_path / "gold" / "results.json").read_text())
    assert [r for r in results["rows"] if r["method"] == "gold_ppo"] == \
        [r for r in gold_alone["rows"] if r["method"] == "gold_ppo"]
    assert {(d["a"], d["b"]) for d in results["differences"]} == {("rsft", "ppo"), ("gold_ppo", "ppo"),
                                                                  ("gold_ppo", "rsft")}
    seed0 = tmp_path / "sweep" / "seed0"
    # one PPO run per reward, kept after 2 and 4 iterations of 8 episodes; the gold run's reward is the judge's score
    assert (seed0 / "ppo" / "at2" / "model").is_dir() and (seed0 / "ppo" / "at4" / "model").is_dir()
    gold_log = [json.loads(line) for line in (tmp_path / "gold" / "seed0" / "gold_ppo" / "log.jsonl").open()]
    assert len(gold_log) == 4 and all(row["score"] == pytest.approx(row["gold"], abs=1e-5) for row in gold_log)
    assert {json.loads(line)["lr"] for line in (seed0 / "ppo" / "log.jsonl").open()} == {5e-4}   # no decay
    kept = [json.loads(line) for line in (seed0 / "rsft32" / "round1" / "selected.jsonl").open()]
    assert len(kept) == 32 // (2 * 2)
    assert [c["n"] for c in results["bon_curve"]] == [1, 2, 4] and results["fits"]["bon"]["points"] >= 2
    records = [json.loads(line) for line in (seed0 / "bon" / "completions.jsonl").open()]
    assert len(records[0]["candidates"]) == 4
    assert results["oracle_share"] == oracle_share(records, make_split(0, "test", 16))
    report = (tmp_path / "sweep" / "report.md").read_text()
    assert "| gold_ppo | 32 |" in report and "## Gao et al." in report and (tmp_path / "sweep" / "sweep.png").is_file()
    # started again, the seed is found finished as a whole
    assert rlhfkit(*args).stderr.count("already holds this finished job") == 1
    # a seed finished elsewhere (here: seed0's record, passed off as seed 1's with other win rates) joins the report
    record = json.loads((seed0 / "job.json").read_text())
    record["fingerprint"]["seed"] = 1
    for m in record["result"]["methods"].values():
        m["winrate_vs_reference"]["mean"] += 0.1
    (tmp_path / "sweep" / "seed1").mkdir()
    (tmp_path / "sweep" / "seed1" / "job.json").write_text(json.dumps(record))
    # the joined sweep has no seed 1: refused in one line, then reported without it
    proc = rlhfkit(*args[:5], "--seeds", "2", "--only_seed", "0", *args[7:], check=False)
    assert proc.returncode == 2 and "seed 1 is not finished there" in proc.stderr.strip().splitlines()[-1]
    rlhfkit(*args[:5], "--seeds", "2", "--only_seed", "0", *args[7:-2])
    both = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert both["seeds"] == 2 and both["seed_list"] == [0, 1]
    ppo16 = next(r for r in both["rows"] if (r["method"], r["samples"]) == ("ppo", 16))
    one = next(r for r in results["rows"] if (r["method"], r["samples"]) == ("ppo", 16))
    assert ppo16["winrate"]["mean"] == pytest.approx(one["winrate"]["mean"] + 0.05)
    assert "(seed0, seed1)" in (tmp_path / "sweep" / "report.md").read_text()
    # seed 1's methods all moved by the same amount: their paired difference is seed 0's, with no width
    rsft_ppo = next(d["winrate"] for d in both["differences"] if (d["a"], d["b"], d["samples"]) == ("rsft", "ppo", 32))
    at32 = {r["method"]: r["winrate"]["mean"] for r in results["rows"] if r["samples"] == 32}
    assert rsft_ppo["mean"] == pytest.approx(at32["rsft"] - at32["ppo"])
    assert rsft_ppo["ci_high"] - rsft_ppo["ci_low"] == pytest.approx(0, abs=1e-9)
    assert "| rsft - ppo | 32 |" in (tmp_path / "sweep" / "report.md").read_text()
    # another option is another job: refused in one line before anything trains
    proc = rlhfkit(*args, "--bon_n", "2", check=False)
    assert proc.returncode == 2 and "belongs to another job (config.bon_n differ)" in proc.stderr
    # rsft past the world's prompts is refused before anything trains
    proc = rlhfkit("sweep", "--demo", demo, "--out", tmp_path / "s3", "--seeds", "1", "--samples", "512",
                   "--rl.prompts_per_step", "8", "--sample_n", "2", "--rsft_rounds", "2", check=False)
    assert proc.returncode == 2 and "needs 128 prompts a round; the demo's world has 64" in proc.stderr
    # a demo that never finished is named in one line
    proc = rlhfkit("sweep", "--demo", tmp_path / "nothing", "--out", tmp_path / "s2", check=False)
    assert proc.returncode != 0 and "holds no finished `rlhfkit demo`" in proc.stderr.strip().splitlines()[-1]


def test_supervised_stages_from_the_command_line(tiny_model_dir, tmp_path):
    data, rm = tmp_path / "data", tmp_path / "rm"
    rlhfkit("data", "tldr", "--out", data, *TINY_TASK)
    rlhfkit("rm", "--model", tiny_model_dir, "--data", data / "rankings.jsonl", "--out", rm, "--train.batch_size", "8")
    # the saved model's card: what it started from, the data with its hash, the command, the config, the metrics
    card = (rm / "model" / "README.md").read_text()
    head = yaml.safe_load(card.split("---")[1])
    assert head["base_model"] == str(Path(tiny_model_dir).resolve()) and "rm" in head["tags"]
    digest = hashlib.sha256(hashlib.sha256((data / "rankings.jsonl").read_bytes()).hexdigest().encode()).hexdigest()
    assert f"sha256 {digest}" in card and f"rlhfkit rm --model {tiny_model_dir}" in card
    assert f"made by rlhfkit {importlib.metadata.version('rlhfkit')}" in card and "  batch_size: 8" in card
    result = json.loads((rm / "job.json").read_text())["result"]
    numbers = {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert "seconds" in numbers and all(f"| {k} | {v:.6g} |" in card for k, v in numbers.items())
    small = ["--sample.max_new_tokens", "12", *TINY_TASK]
    # best-of-n: the kept answer is the best-scored candidate; eval reads the file as a policy
    rlhfkit("bon", "--policy", tiny_model_dir, "--reward_model", rm, "--n", "3", "--n_prompts", "16",
            "--out", tmp_path / "bon", *small)
    records = [json.loads(line) for line in (tmp_path / "bon" / "completions.jsonl").read_text().splitlines()]
    assert len(records) == 16 and all(len(r["candidates"]) == 3 for r in records)
    assert all(r["completion"] == r["candidates"][max(range(3), key=r["scores"].__getitem__)] for r in records)
    rlhfkit("eval", "--policies", f"bon={tmp_path / 'bon' / 'completions.jsonl'}", "--kl_ref", tiny_model_dir,
            "--out", tmp_path / "eval", "--n_prompts", "16", "--bootstrap", "100", *TINY_TASK)
    bon = json.loads((tmp_path / "eval" / "results.json").read_text())["methods"]["bon"]
    assert bon["kl_to_sft"] == pytest.approx(math.log(3) - 2 / 3) and bon["n_prompts"] == 16
    # rejection sampling: one directory per round, each with the answers it kept
    rlhfkit("rsft", "--policy", tiny_model_dir, "--reward_model", rm, "--n", "2", "--rounds", "2",
            "--prompts_per_round", "8", "--out", tmp_path / "rsft", *small)
    assert all(len((tmp_path / "rsft" / f"round{r}" / "selected.jsonl").read_text().splitlines()) == 8 for r in (1, 2))
    assert (tmp_path / "rsft" / "model" / "model.safetensors").is_file()
    rlhfkit("rwsft", "--policy", tiny_model_dir, "--reward_model", rm, "--n", "2", "--n_prompts", "8",
            "--out", tmp_path / "rwsft", *small)
    assert (tmp_path / "rwsft" / "model" / "model.safetensors").is_file()
    # a Python reward in place of the reward model, as in `rlhfkit rl`: it scores and it picks
    (tmp_path / "rewards.py").write_text("def vowels(prompts, completions):\n"
                                         "    return [sum(c in 'aeiou' for c in t) for t in completions]\n")
    vowels = f"{tmp_path / 'rewards.py'}:vowels"
    rlhfkit("bon", "--policy", tiny_model_dir, "--reward", vowels, "--n", "3", "--n_prompts", "16",
            "--eos_trick", "false", "--out", tmp_path / "bon_fn", *small)
    records = [json.loads(line) for line in (tmp_path / "bon_fn" / "completions.jsonl").read_text().splitlines()]
    assert all(r["scores"] == [sum(c in "aeiou" for c in t) for t in r["candidates"]] for r in records)
    assert all(sum(c in "aeiou" for c in r["completion"]) == max(r["scores"]) for r in records)
    rlhfkit("rsft", "--policy", tiny_model_dir, "--reward", vowels, "--n", "2", "--rounds", "1",
            "--prompts_per_round", "8", "--out", tmp_path / "rsft_fn", *small)
    kept = [json.loads(line) for line in (tmp_path / "rsft_fn" / "round1" / "selected.jsonl").read_text().splitlines()]
    assert len(kept) == 8 and all(k["score"] in (-1.0, sum(c in "aeiou" for c in k["completion"])) for k in kept)
    # dpo and ipo learn the training rankings (measured on the same file); slic runs (its learning:
    # tests/train/test_preference.py)
    for stage, extra in (("dpo", ["--loss", "ipo", "--beta", "0.5"]), ("dpo", []), ("slic", [])):
        out_dir = tmp_path / f"{stage}{len(extra)}"
        out = rlhfkit(stage, *extra, "--model", tiny_model_dir, "--data", data / "rankings.jsonl", "--valid_data",
                      data / "rankings.jsonl", "--out", out_dir, "--train.lr", "3e-3", "--train.epochs", "6" if stage == "dpo" else "1",
                      "--train.batch_size", "8").stdout
        if stage == "dpo":
            assert json.loads(out)["valid_accuracy"] > 0.7, (extra, out)
        else:
            assert 0 <= json.loads(out)["valid_accuracy"] <= 1 and (out_dir / "model" / "model.safetensors").is_file()


def test_formats_users_bring(tiny_model_dir, tmp_path):
    """TRL's conversational and implicit-prompt pairs train DPO; a labeling campaign starts from a
    summarize-from-feedback file's train split."""
    user, answer = {"role": "user", "content": "Is it red?"}, {"role": "assistant", "content": " Yes."}
    pairs = [{"prompt": [user], "chosen": [answer], "rejected": [{"role": "assistant", "content": " No."}]},
             {"chosen": [user, answer], "rejected": [user, {"role": "assistant", "content": " Blue."}]},
             {"chosen": "Q: is it red?\nA: yes", "rejected": "Q: is it red?\nA: no"}]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    out = json.loads(rlhfkit("dpo", "--model", tiny_model_dir, "--data", tmp_path / "pairs.jsonl", "--out",
                             tmp_path / "dpo", "--train.batch_size", "3").stdout)
    assert out["comparisons"] == 3
    sff = [{"info": {"post": f"post {i}", "title": "T", "subreddit": "r"}, "split": split, "choice": i % 2,
            "summaries": [{"text": f" a{i}"}, {"text": f" b{i}"}]}
           for i, split in enumerate(["train", "valid1", "train"])]
    (tmp_path / "sff.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sff))
    created = json.loads(rlhfkit("label", "campaign", "create", "--from", f"{tmp_path / 'sff.jsonl'}:train",
                                 "--db", f"sqlite:///{tmp_path / 'labels.db'}").stdout)
    assert created["items"] == 2
