"""A whole conversation for SFT is token for token the episode RL plays: the same ids as
`rollout/episodes.py` builds when the policy samples the transcript's turns, the loss on the
assistant's turns and their EOS only."""
import pytest
import torch

from rlhfkit.config.sections import TaskConfig
from rlhfkit.data.collate import IGNORE, conversation_tokens, encode_conversation, encode_record
from rlhfkit.data.records import Conversation, DataError, Demonstration, Span
from rlhfkit.engines import Generation
from rlhfkit.models.lm import context_length, load_causal_lm
from rlhfkit.rollout import episodes
from rlhfkit.rollout.generate import prompt_tokens
from rlhfkit.tasks.conversation import ConversationTask
from rlhfkit.tasks.conversation.template import as_conversation, observation, render
from rlhfkit.tasks.conversation.world import chat_id

CFG = TaskConfig(seed=3, n_train=12, n_valid=6, events=2)
MAX_NEW = 16


def assistant_texts(messages):
    return [m["content"] for m in messages if m["role"] == "assistant"]


def scripted_sampler(turns_by_chat, tokenizer):
    """Stands in for `rollout.generate.sample`: each episode's next turn is the transcript's, as the
    ids a policy that wrote it would sample (the text after the header's space, then EOS)."""
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id

    def sample(model, tok, ids, mask, *, temperature, max_new_tokens, engine):
        rows = []
        for row, row_mask in zip(ids, mask):
            so_far = row[row_mask > 0].tolist()
            chat = chat_id(tok.decode(so_far, skip_special_tokens=True))
            turn = so_far.count(eos)                 # every finished turn of the episode ended in EOS
            rows.append(tok(" " + turns_by_chat[chat][turn], add_special_tokens=False)["input_ids"] + [eos])
        width = max(map(len, rows))
        out = torch.full((len(rows), width), pad, dtype=torch.long)
        out_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, :len(r)], out_mask[i, :len(r)] = torch.tensor(r), 1
        return Generation(ids=out, mask=out_mask, logprobs=torch.zeros(out.shape),
                          finished=torch.ones(len(rows), dtype=torch.bool))
    return sample


ASSISTANTS = ("thorough", "partial", "vague", "hasty")   # several turns, several, one, one


def test_the_encoding_is_the_episode_rl_plays(tiny_model_dir, monkeypatch):
    model, tok = load_causal_lm(tiny_model_dir)
    task = ConversationTask(CFG)
    context = context_length(model)
    for name in ASSISTANTS:      # one batch of episodes per scripted assistant
        group = task.transcripts("valid", name)[:3]
        group_openings = [render(m[:2]) for m in group]
        turns = {chat_id(o): assistant_texts(m) for o, m in zip(group_openings, group)}
        monkeypatch.setattr(episodes, "sample", scripted_sampler(turns, tok))
        exp = episodes.play_episodes(model.eval(), tok, task.environment(), group_openings, temperature=1.0,
                                     max_new_tokens=MAX_NEW, max_turns=8, seed=0)
        for i, (opening, messages) in enumerate(zip(group_openings, group)):
            ex = encode_conversation(as_conversation(messages), tok, context)
            assert len(ex.input_ids) < context - MAX_NEW, "the episode must end by the environment, not the context"
            start = prompt_tokens(opening, tok, context - MAX_NEW)
            response = exp.response_ids[i][exp.response_mask[i] > 0].tolist()
            actions = exp.action_mask[i][exp.response_mask[i] > 0].tolist()
            assert exp.prompt_ids[i][exp.prompt_mask[i] > 0].tolist() == start
            # the same ids, token for token
            assert ex.input_ids == start + response
            # labels: -100 on the opening and on every observation token; the action tokens themselves elsewhere
            assert ex.labels == [IGNORE] * len(start) + [t if a else IGNORE for t, a in zip(response, actions)]
            # the environment answered the turns with the transcript's user turns, and scored the same conversation
            assert int(exp.turn_ends[i].sum()) == len(assistant_texts(messages))
            assert exp.rewards[i].sum().item() == pytest.approx(task.episode_return(opening, messages))


def test_labels_cover_each_assistant_turn_and_its_eos(tiny_tokenizer):
    tok = tiny_tokenizer
    messages = ConversationTask(CFG).transcripts("train", "thorough")[0]
    conv = as_conversation(messages)
    assert conv.opening + "".join(s.text for s in conv.spans) == render(messages)
    assert [s.action for s in conv.spans] == [m["role"] == "assistant" for m in messages[2:]]
    ids, labels = conversation_tokens(conv, tok)
    assert ids[0] == tok.bos_token_id and ids.count(tok.eos_token_id) == len(assistant_texts(messages))
    targets = [t for t in labels if t != IGNORE]
    expected = [t for a in assistant_texts(messages)
                for t in tok(" " + a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]]
    assert targets == expected
    # each user turn is tokenised on its own, as the environment's observation text
    user_ids = [t for m in messages[2:] if m["role"] == "user"
                for t in tok(observation(m["content"]), add_special_tokens=False)["input_ids"]]
    assert [t for t, lab in zip(ids, labels) if lab == IGNORE][len(prompt_tokens(conv.opening, tok, 10**6)):] == user_ids


def test_an_earlier_turn_can_be_context_only(tiny_tokenizer):
    """loss=False keeps a turn and its EOS in the ids (as the episode holds them) without training on it."""
    tok = tiny_tokenizer
    conv = Conversation("chat 1\nUSER: Hi\nASSISTANT:", (Span(" What happened?", True, loss=False),
                                                          Span(observation("Sam left."), False),
                                                          Span(" TL;DR: Sam left.", True)))
    ids, labels = conversation_tokens(conv, tok)
    last = tok(" TL;DR: Sam left.", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert ids.count(tok.eos_token_id) == 2
    assert [t for t in labels if t != IGNORE] == last and ids[-len(last):] == last


def test_a_conversation_longer_than_the_context_is_refused_by_name(tiny_tokenizer):
    conv = ConversationTask(CFG).demonstrations("train")[0]
    with pytest.raises(DataError, match=r"conversation train:1: the conversation is \d+ tokens, longer than the "
                                        r"model's 20"):
        encode_conversation(conv, tiny_tokenizer, 20)


def test_a_demonstration_is_encoded_as_before(tiny_tokenizer):
    from rlhfkit.data.collate import encode_demonstration
    demo = Demonstration("POST: hi\nTL;DR:", " ok")
    assert encode_record(demo, tiny_tokenizer, 64) == encode_demonstration(demo, tiny_tokenizer, 64)


def test_the_task_gives_one_record_per_transcript():
    task = ConversationTask(CFG)
    convs = task.demonstrations("train")
    assert len(convs) == CFG.n_train
    assert [as_conversation(m).spans for m in task.transcripts("train")] == [c.spans for c in convs]
    assert [c.opening for c in convs] == task.prompts("train")
    with pytest.raises(ValueError, match="needs a user turn, then an assistant turn"):
        as_conversation([{"role": "system", "content": "chat 1"}, {"role": "user", "content": "Hi"}])
