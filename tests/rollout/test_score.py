import math
import re
import sys

import pytest
import torch

from rlhfkit.errors import InputError, RunError
from rlhfkit.rollout.score import load_reward_fn, python_reward_fn, reward_model_fn, with_final_eos
from rlhfkit.rollout.types import Experience, one_turn

EOS, PAD = 2, 0


def test_eos_is_appended_only_to_answers_that_were_cut_off():
    # row 0 ended with EOS after 2 tokens; row 1 used the whole limit of 3 without one
    r = one_turn(prompt_ids=torch.tensor([[0, 5, 6], [7, 8, 9]]), prompt_mask=torch.tensor([[0, 1, 1], [1, 1, 1]]),
                 response_ids=torch.tensor([[11, EOS, PAD], [12, 13, 14]]),
                 response_mask=torch.tensor([[1, 1, 0], [1, 1, 1]]),
                 logprobs=torch.zeros(2, 3), texts=["a", "bcd"], ended=torch.tensor([True, False]))
    ids, attn = with_final_eos(r, EOS, PAD)
    assert ids.tolist() == [[0, 5, 6, 11, EOS, PAD, PAD], [7, 8, 9, 12, 13, 14, EOS]]
    assert attn.tolist() == [[0, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]]


# ---- a reward function the user wrote: found by file or module, its output checked
REWARDS = "def brevity(prompts, completions):\n    return [-len(c) for c in completions]\n\nLIMIT = 3\n"


@pytest.fixture
def workdir(tmp_path, monkeypatch, request):
    """A working directory of the user's, with sys.path and imported modules restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    request.addfinalizer(lambda: [sys.modules.pop(name) for name, m in list(sys.modules.items())
                                  if str(getattr(m, "__file__", None)).startswith(str(tmp_path))])
    return tmp_path


def test_reward_from_a_file_relative_or_absolute(workdir):
    (workdir / "sub").mkdir()
    (workdir / "sub" / "helper.py").write_text("def length(c):\n    return len(c)\n")
    (workdir / "sub" / "r.py").write_text("from helper import length\n\ndef brevity(p, c):\n"
                                          "    return [-length(x) for x in c]\n")
    for spec in ("sub/r.py:brevity", f"{workdir}/sub/r.py:brevity"):
        assert load_reward_fn(spec)(["p", "p"], ["ab", "abcd"]) == [-2, -4]


def test_reward_from_a_module_in_the_working_directory(workdir):
    (workdir / "my_rewards_cwd.py").write_text(REWARDS)
    sys.path.remove("") if "" in sys.path else None    # as under the `rlhfkit` console script
    assert load_reward_fn("my_rewards_cwd:brevity")(["p"], ["abc"]) == [-3]


@pytest.mark.parametrize("files, spec, message", [
    ({}, "nope.py:f", r"reward 'nope.py:f': no such file nope.py \(a relative path starts at "),
    ({}, "no_such_reward_module:f", r"reward 'no_such_reward_module:f': no module 'no_such_reward_module' in the "
                                     r"working directory"),
    ({"r1.py": REWARDS}, "r1.py:length", r"reward 'r1.py:length': r1.py defines no 'length' \(it defines: brevity\)"),
    ({"r2.py": REWARDS}, "r2.py:LIMIT", r"reward 'r2.py:LIMIT': 'LIMIT' in r2.py is a int, not a function"),
    ({"r3.py": "def f(p, c):\n    return [0.0 for x in c\n"}, "r3.py:f",
     r"reward 'r3.py:f': importing it failed at .*r3.py:2: SyntaxError: "),
    ({"r4_mod.py": "import os\nraise RuntimeError('no key')\n"}, "r4_mod:f",
     r"reward 'r4_mod:f': importing it failed at .*r4_mod.py:2: RuntimeError: no key"),
    ({"r5_mod.py": "import not_installed_dependency\n"}, "r5_mod:f",
     r"reward 'r5_mod:f': importing it failed at .*r5_mod.py:1: ModuleNotFoundError: No module named "
     r"'not_installed_dependency'"),
    ({}, "brevity", r"reward 'brevity': expected FILE.py:FUNCTION or MODULE:FUNCTION"),
])
def test_a_reward_that_cannot_be_found_says_why(workdir, files, spec, message):
    for name, text in files.items():
        (workdir / name).write_text(text)
    with pytest.raises(InputError, match=message):
        load_reward_fn(spec)


def rollout_of(texts: list[str]) -> Experience:
    n = len(texts)
    return one_turn(prompt_ids=torch.zeros(n, 1, dtype=torch.long), prompt_mask=torch.ones(n, 1, dtype=torch.long),
                    response_ids=torch.zeros(n, 1, dtype=torch.long), response_mask=torch.ones(n, 1, dtype=torch.long),
                    logprobs=torch.zeros(n, 1), texts=texts, ended=torch.ones(n, dtype=torch.bool))


def bad_at_2(value):
    def reward(prompts, completions):
        return [1.0, 2.0, value, 4.0]
    return reward


@pytest.mark.parametrize("value, shown", [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf"), ("0.5", "'0.5'"),
                                          (None, "None")])
def test_a_reward_that_is_not_a_finite_number_stops_at_its_index(value, shown):
    score = python_reward_fn(bad_at_2(value))
    with pytest.raises(RunError, match=rf"reward .*test_score:bad_at_2\.<locals>\.reward returned {re.escape(shown)} "
                                       r"for prompt 2 of the batch \('p2'\); expected a finite number"):
        score(rollout_of(["a", "b", "c", "d"]), ["p0", "p1", "p2", "p3"])


def test_a_reward_checked_for_count_and_errors_and_passed_through_when_good():
    prompts = ["p0", "p1", "p2"]
    with pytest.raises(RunError, match=r"reward .*:.*<lambda> returned 2 values for 3 completions"):
        python_reward_fn(lambda p, c: [0.0, 1.0])(rollout_of(["a", "b", "c"]), prompts)
    with pytest.raises(RunError, match=r"reward .*:.*<lambda> returned a float; expected a list of 3 numbers"):
        python_reward_fn(lambda p, c: 1.0)(rollout_of(["a", "b", "c"]), prompts)
    with pytest.raises(RunError, match=r"reward .*<lambda> returned a Tensor; expected a list of 3 numbers"):
        python_reward_fn(lambda p, c: torch.tensor(1.0))(rollout_of(["a", "b", "c"]), prompts)
    with pytest.raises(RunError, match=r"reward .*<lambda> raised ZeroDivisionError: division by zero "
                                       r"\(at .*test_score.py:\d+\)"):
        python_reward_fn(lambda p, c: [1 / 0])(rollout_of(["a", "b", "c"]), prompts)
    scores = python_reward_fn(lambda p, c: [len(x) for x in c])(rollout_of(["a", "bb", ""]), prompts)
    assert scores.tolist() == [1.0, 2.0, 0.0]


def test_values_are_read_on_the_rewards_scale(tiny_model_dir):
    from rlhfkit.models.heads import scalar_model_from_lm, token_values
    from rlhfkit.rollout.score import response_values
    model, _ = scalar_model_from_lm(tiny_model_dir)
    ids, attn = torch.randint(5, 300, (2, 6)), torch.ones(2, 6, dtype=torch.long)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    with torch.no_grad():
        raw = token_values(model, ids, attn)[:, 2:5]              # the states before the 3 response tokens
        model.config.reward_offset = 0.75                          # as `rlhfkit rm` leaves it
        values = response_values(model, ids, attn, mask)
    torch.testing.assert_close(values, (raw - 0.75) * mask)


def test_samples_of_one_prompt_are_scored_as_alone(tiny_model_dir):
    # rows 0-2 answer one prompt, row 3 another (left-padded): the shared-prompt pass reads what each row alone gives
    from rlhfkit.models.heads import scalar_model_from_lm, sequence_rewards
    model, tok = scalar_model_from_lm(tiny_model_dir)
    model.eval()
    r = one_turn(prompt_ids=torch.tensor([[5, 6, 7]] * 3 + [[PAD, 8, 9]]),
                 prompt_mask=torch.tensor([[1, 1, 1]] * 3 + [[0, 1, 1]]),
                 response_ids=torch.tensor([[11, EOS, PAD], [12, 13, 14], [15, EOS, PAD], [16, 17, EOS]]),
                 response_mask=torch.tensor([[1, 1, 0], [1, 1, 1], [1, 1, 0], [1, 1, 1]]),
                 logprobs=torch.zeros(4, 3), texts=["", "", "", ""], ended=torch.tensor([True, False, True, True]))
    with torch.no_grad():
        shared = reward_model_fn(model, tok)(r, ["p", "p", "p", "q"])
        ids, attn = with_final_eos(r, tok.eos_token_id, tok.pad_token_id)
        alone = torch.cat([sequence_rewards(model, ids[i:i + 1], attn[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(shared, alone, atol=1e-5, rtol=0)
