"""Multi-turn episodes against an environment: the record's tokens, masks, turns and rewards,
and that the environment's turns receive no gradient."""
import pytest
import torch

from rlhfkit.algorithms.registry import RL_ALGORITHMS, algorithm
from rlhfkit.config import GRPOOptions, PPOOptions, RLAlgoConfig, TaskConfig
from rlhfkit.models.heads import scalar_model_from_lm
from rlhfkit.models.lm import load_causal_lm
from rlhfkit.rollout.episodes import play_episodes
from rlhfkit.rollout.generate import gather_logprobs, response_logits, token_logprobs
from rlhfkit.rollout.score import score
from rlhfkit.tasks.echo import TURNS, EchoTask, ask, letters_of

TASK = EchoTask(TaskConfig(n_train=6))
OWN = {"ppo": PPOOptions(), "grpo": GRPOOptions()}


def _play(model_dir, max_turns=TURNS, seed=0):
    model, tok = load_causal_lm(model_dir)
    prompts = TASK.prompts("train")
    exp = play_episodes(model.eval(), tok, TASK.environment(), prompts, temperature=1.0, max_new_tokens=4,
                        max_turns=max_turns, seed=seed)
    return model, tok, prompts, exp


def test_an_episode_is_the_policys_turns_between_the_environments(tiny_model_dir):
    model, tok, prompts, exp = _play(tiny_model_dir)
    for i, p in enumerate(prompts):
        n = int(exp.response_mask[i].sum())
        ids, act = exp.response_ids[i, :n].tolist(), exp.action_mask[i, :n].tolist()
        ends = exp.turn_ends[i].nonzero().squeeze(1).tolist()
        assert len(ends) == TURNS and ends[-1] == max(t for t in range(n) if act[t])
        # between two turns of the policy: exactly the tokens of the user's next question, none of them actions
        for turn, (end, letter) in enumerate(zip(ends[:-1], letters_of(p)[1:])):
            question = tok(ask(letter), add_special_tokens=False)["input_ids"]
            assert ids[end + 1:end + 1 + len(question)] == question
            assert act[end + 1:end + 1 + len(question)] == [0.0] * len(question)
            assert act[end + 1 + len(question)] == 1.0            # the next turn starts right after it
        # the reward comes at the end only, and is the game's return of the episode's text
        assert exp.rewards[i].nonzero().squeeze(1).tolist() in ([ends[-1]], [])
        assert exp.rewards[i, ends[-1]].item() == pytest.approx(TASK.gold([p], [exp.texts[i]])[0])
    assert (exp.logprobs[exp.action_mask == 0] == 0).all()
    # the sampler's log-probs are the policy's log-probs of the recorded tokens, on action tokens
    again = token_logprobs(model, exp.input_ids, exp.attention_mask, exp.response_ids.size(1), 1.0)
    torch.testing.assert_close(again * exp.action_mask, exp.logprobs)


def test_episodes_are_seeded_and_stop_at_the_turn_limit(tiny_model_dir):
    _, _, _, a = _play(tiny_model_dir)
    _, _, _, b = _play(tiny_model_dir)
    assert torch.equal(a.response_ids, b.response_ids) and a.texts == b.texts
    _, _, _, short = _play(tiny_model_dir, max_turns=2)
    assert short.turn_ends.sum(1).tolist() == [2] * 6 and (short.rewards == 0).all()   # cut before the reward


@pytest.mark.parametrize("name", list(RL_ALGORITHMS))
def test_the_users_turns_receive_no_gradient(tiny_model_dir, name):
    model, tok, prompts, exp = _play(tiny_model_dir)
    value_model = scalar_model_from_lm(tiny_model_dir)[0] if RL_ALGORITHMS[name].critic else None
    batch = prompts[:6]
    exp = score(exp, batch, None, model, value_model, 1.0, None)
    exp = algorithm(name).advantages(exp, 0.1, RLAlgoConfig(k=2), OWN.get(name))
    model.train()
    logits = response_logits(model, exp.input_ids, exp.attention_mask, exp.response_ids.size(1), 1.0)
    logits.retain_grad()
    values = None
    if value_model is not None:
        from rlhfkit.rollout.score import response_values
        values = response_values(value_model, exp.input_ids, exp.attention_mask, exp.action_mask)
    loss, _ = algorithm(name).loss(exp, gather_logprobs(logits, exp.response_ids), values, 0.1, RLAlgoConfig(k=2),
                                OWN.get(name))
    loss.backward()
    user = (exp.response_mask == 1) & (exp.action_mask == 0)
    assert user.any() and (logits.grad[user] == 0).all()
    assert logits.grad[exp.action_mask == 1].abs().sum() > 0


def test_conversation_episodes_earn_the_gold_return_of_their_text(tiny_model_dir):
    # the environment's reward (replayed turn by turn) equals the gold judge's R read back from the
    # episode's decoded text, as evaluation will read it
    from rlhfkit.tasks.conversation import ConversationTask
    task = ConversationTask(TaskConfig(n_train=8, events=1))
    model, tok = load_causal_lm(tiny_model_dir)
    prompts = task.prompts("train")
    exp = play_episodes(model.eval(), tok, task.environment(), prompts, temperature=1.0, max_new_tokens=12,
                        max_turns=4, seed=0)
    assert exp.turn_ends.sum(1).max().item() == 4 and (exp.logprobs[exp.action_mask == 0] == 0).all()
    ended = exp.rewards.ne(0).any(1)       # episodes the environment ended (an answer), not the turn limit
    gold = torch.tensor(task.gold(prompts, exp.texts))
    torch.testing.assert_close(exp.rewards.sum(1)[ended], gold[ended])


@pytest.mark.parametrize("env_reward", [True, False])
def test_with_env_reward_off_the_environment_only_answers(tiny_model_dir, env_reward):
    """RLHF on a learned conversation reward: the environment's replies stay, its rewards go."""
    from rlhfkit.config import RLConfig
    from rlhfkit.rollout.score import python_reward_fn
    from rlhfkit.train.rl import rollouts, score_rollouts
    model, tok = load_causal_lm(tiny_model_dir)
    ref, _ = load_causal_lm(tiny_model_dir)
    cfg = RLConfig(prompts="echo", env_reward=env_reward, task=TaskConfig(n_train=6))
    cfg.sample.max_new_tokens, cfg.sample.max_turns, cfg.rl.eos_trick = 4, TURNS, False
    prompts = TASK.prompts("train")
    exp = rollouts(cfg, model, tok, TASK.environment(), prompts, 0)
    exp = score_rollouts(cfg, exp, model, ref, None, python_reward_fn(lambda p, c: [0.25] * len(p)), prompts)
    assert exp.turn_ends.sum(1).tolist() == [TURNS] * len(prompts)        # the environment answered either way
    gold = torch.tensor(TASK.gold(prompts, exp.texts))
    torch.testing.assert_close(exp.raw_scores, 0.25 + (gold if env_reward else torch.zeros_like(gold)))
    assert exp.rewards.sum(1).tolist() == pytest.approx(exp.raw_scores.tolist())


def test_a_task_reward_needs_env_reward_on():
    from rlhfkit.config import ConfigError, RLConfig
    RLConfig(prompts="echo").validate()
    with pytest.raises(ConfigError, match="rl needs --reward_model DIR"):
        RLConfig(prompts="echo", env_reward=False).validate()
