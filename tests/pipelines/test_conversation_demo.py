"""`rlhfkit demo --task conversation`: episodes cut back into turns, the verdict on reason 2 from
hand-made numbers, and the whole experiment end to end on a tiny budget, as a user runs it."""
import json
import os
import subprocess
import sys

import pytest

from rlhfkit.data.records import Span
from rlhfkit.models.lm import load_causal_lm
from rlhfkit.pipelines.conversation import spans_of
from rlhfkit.pipelines.conversation_report import cumulative_reward, rl_beats_sl


def test_an_episode_is_cut_into_the_policy_turns_and_the_observations(tiny_model_dir):
    _, tok = load_causal_lm(tiny_model_dir)
    pieces = [(" What happened?", 1), ("\nUSER: Sam left.\nASSISTANT:", 0), (" TL;DR: Sam left.", 1)]
    tokens, actions = [], []
    for text, action in pieces:
        ids = tok(text, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if action else [])
        tokens += ids
        actions += [action] * len(ids)
    assert spans_of(tok, tokens, actions) == tuple(Span(t, bool(a)) for t, a in pieces)   # EOS dropped


def _m(mean, half=0.1):
    return {"gold_return": {"mean": mean, "ci_low": mean - half, "ci_high": mean + half}}


def _dose(rows):
    return {e: {"methods": {"turn_dpo": _m(t), "conv_rsft": _m(c), "ppo": _m(p)}} for e, (t, c, p) in rows.items()}


def test_reason_2_is_supported_only_by_the_predicted_order_with_a_growing_lead():
    claim = cumulative_reward(_dose({"1": (0.5, 1.0, 1.3), "3": (0.3, 0.8, 1.6)}))
    assert claim["supported"] is True and claim["lead"] == pytest.approx({"1": 0.3, "3": 0.8})
    shrinking = cumulative_reward(_dose({"1": (0.5, 1.0, 1.8), "3": (0.3, 0.8, 1.1)}))
    assert shrinking["supported"] is False and "does not grow" in shrinking["finding"]
    refuted = cumulative_reward(_dose({"1": (0.5, 1.0, 1.05), "3": (0.3, 0.9, 0.8)}))
    assert refuted["supported"] is False and refuted["finding"].startswith("refuted")
    one_dose = cumulative_reward(_dose({"2": (0.5, 1.0, 1.3)}))
    assert one_dose["supported"] is None and "needs the sweep" in one_dose["finding"]
    per_turn_on_top = cumulative_reward(_dose({"1": (1.2, 1.0, 1.5), "3": (1.2, 0.8, 1.6)}))
    assert per_turn_on_top["supported"] is False and "fails at E = 1, 3" in per_turn_on_top["finding"]


def test_reason_4_needs_ppo_above_the_best_supervised_method_at_every_dose():
    assert rl_beats_sl(_dose({"1": (0.5, 1.0, 1.3), "3": (0.3, 0.8, 1.6)}))["supported"] is True
    behind = rl_beats_sl(_dose({"1": (0.5, 1.0, 0.7), "3": (0.3, 0.8, 0.5)}))
    assert behind["supported"] is False and behind["evidence"]["1"]["best_sl"] == "conv_rsft"


def test_the_conversation_demo_runs_end_to_end_at_equal_budgets(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "rlhfkit.cli", "demo", "--task", "conversation", "--out", str(out),
         "--task.n_train", "64", "--task.n_valid", "8", "--episodes", "64", "--label_budget", "60", "--n_prompts", "16",
         "--ceiling_prompts", "8", "--ceiling_n", "4", "--rl.prompts_per_step", "16", "--rl.k", "2",
         "--sft.epochs", "0.5"],
        capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "2"}, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "conversation" and list(results["dose"]) == ["2"]
    methods = results["methods"]
    assert list(methods) == ["sft", "turn_bon", "turn_rsft", "turn_dpo", "conv_rsft", "conv_dpo", "ppo", "rloo"]
    for name, row in methods.items():
        for key in ("gold_return", "winrate_vs_reference"):
            assert row[key]["ci_low"] <= row[key]["mean"] <= row[key]["ci_high"], (name, key)
        assert row["n_prompts"] == 16
    # equal sampled conversations: 64 for RL and conversation RSFT; turn RSFT 64 / 4 with 4 per turn
    assert [methods[m]["episodes"] for m in ("ppo", "rloo", "conv_rsft")] == [64, 64, 64]
    assert (methods["turn_rsft"]["episodes"], methods["turn_rsft"]["turn_candidates"]) == (16, 4)
    # equal label budgets: each method names the comparisons it learned from, of one kind
    assert methods["turn_dpo"]["labels"].keys() == {"turn_comparisons"}
    assert methods["ppo"]["labels"] == methods["conv_dpo"]["labels"] and "conversation_comparisons" in methods["ppo"]["labels"]
    assert set(results["claims"]["cumulative_reward"]) >= {"supported", "evidence", "finding"}
    ceiling = results["dose"]["2"]["ceiling"]
    assert [c["n"] for c in ceiling] == [1, 2, 4]
    assert all(a["gold_return"] <= b["gold_return"] for a, b in zip(ceiling, ceiling[1:]))   # best of more is no worse
    assert "## E = 2" in (out / "report.md").read_text()
    # ppo and rloo: the same 4 updates of 16 conversations each; every iteration logs the gold
    # return beside the proxy
    for algo in ("ppo", "rloo"):
        log = [json.loads(line) for line in (out / "E2" / "seed0" / algo / "log.jsonl").read_text().splitlines()]
        assert len(log) == 4 and all("gold" in row for row in log), algo
