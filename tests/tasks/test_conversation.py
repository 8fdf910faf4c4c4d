"""The conversation world: a user who tells facts only when asked, the two gold measures that rank
policies differently, the dose knob, scripted assistants, labelers, and the task interface."""
import random
import statistics

import pytest

from rlhfkit.config import TaskConfig
from rlhfkit.tasks.base import TASKS, load_task
from rlhfkit.tasks.conversation import ConversationTask
from rlhfkit.tasks.conversation.assistants import ASSISTANT_BY_NAME, ASSISTANTS, converse
from rlhfkit.tasks.conversation.gold import (COST_PER_TURN, R_ADVICE, R_ANSWER, R_FEELING, R_PER_DETAIL, R_PERSON,
                                             R_QUESTION, W_ADVICE, W_ADVICE_BAD, W_NO_ANSWER, W_SELF, episode_return,
                                             episode_verdict, split_final, turn_reward, turn_rewards)
from rlhfkit.tasks.conversation.labelers import (CONVERSATION_LABELERS, TURN_LABELERS, rank_conversations,
                                                 rank_turns)
from rlhfkit.tasks.conversation.simulator import CONFUSED, NOTHING_ELSE, play
from rlhfkit.tasks.conversation.template import messages_of, observation, render
from rlhfkit.tasks.conversation.world import (MAX_EVENTS, POST_INDEX_BASE, ConversationWorld, chat_id,
                                              conversation_ids, post_facts, request)
from rlhfkit.tasks.tldr.judge import ACTION_KEYS, judge, words
from rlhfkit.tasks.tldr.world import ACTION_BY_KEY, event_phrase, make_post, make_split

CFG = TaskConfig(seed=3, n_train=40, n_valid=10, n_test=200)
ORDER = ("thorough", "partial", "vague", "hasty")     # intended order on R, best first


def user(content):
    return {"role": "user", "content": content}


def assistant(content):
    return {"role": "assistant", "content": content}


def conversation(world, chat, turns):
    """Messages of a conversation: the assistant's `turns`, each answered by the simulator."""
    messages = [{"role": "system", "content": f"chat {chat}"}, user(request(world.seed, chat))]
    for t in play(world, chat, turns):
        messages.append(assistant(t.message))
        if t.reply is not None:
            messages.append(user(t.reply))
    return messages


def correct_answer(world, chat):
    """A TL;DR stating every event the right way round, the feeling and the question; advice on the first event."""
    facts = world.facts(chat)
    events = ", ".join(f"{facts.people[e.who].relation} {event_phrase(ACTION_BY_KEY[e.action], e.done)}"
                       for e in facts.events)
    first = facts.events[0]
    verb = "thank them because they" if first.done else "ask them why they"
    return (f"TL;DR: {events}. i feel {facts.feeling}. Advice: {verb} "
            f"{event_phrase(ACTION_BY_KEY[first.action], first.done)}.")


def invented_answer(world, chat):
    """A confident answer at once: three events the user never mentioned, a feeling, advice on one."""
    facts = world.facts(chat)
    keys = [k for k in sorted(ACTION_KEYS) if k not in {e.action for e in facts.events}][:3]
    events = ", ".join(f"my {facts.people[0].relation} {ACTION_BY_KEY[k].past}" for k in keys)
    return f"TL;DR: {events}. i feel hurt. Advice: thank them because they {ACTION_BY_KEY[keys[0]].past}."


# ---- Registry, template, environment -------------------------------------------------------------
def test_registered_as_a_multi_turn_task():
    assert TASKS["conversation"].environment is True
    task = load_task("conversation", CFG)
    assert isinstance(task, ConversationTask) and task.name == "conversation"
    assert task.world.events == 2 and task.labelers() == CONVERSATION_LABELERS
    assert task.environment() is not None


def test_the_template_renders_what_the_environment_appends():
    messages = [{"role": "system", "content": "chat 7"}, user("Help?"), assistant("What happened?"), user("Sam left.")]
    assert render(messages) == "chat 7\nUSER: Help?\nASSISTANT: What happened?\nUSER: Sam left.\nASSISTANT:"
    # the observation after a turn is exactly the next user turn rendered, header included
    assert render(messages) == render(messages[:3]) + observation("Sam left.")
    assert render(messages + [assistant("TL;DR: x")]).endswith("ASSISTANT: TL;DR: x")
    history = [user(render(messages[:2])), assistant(" What happened?"), user(observation("Sam left."))]
    assert messages_of(history) == messages


def test_the_environment_rewards_only_the_last_turn():
    task = ConversationTask(CFG)
    world, env, opening = task.world, task.environment(), task.prompts("test")[0]
    assert env.reset(opening) == opening and opening.endswith("\nASSISTANT:")
    history = [user(opening)]
    for turn in (" What happened?", " What else happened?", " How do you feel?"):
        step = env.step(history, turn)
        assert step.reward == 0.0 and not step.done and step.observation.startswith("\nUSER: ")
        assert step.observation.endswith("\nASSISTANT:")
        history += [assistant(turn), user(step.observation)]
    final = " " + correct_answer(world, chat_id(opening))
    step = env.step(history, final)
    assert step.done and step.observation == ""
    assert step.reward == episode_return(world, opening, messages_of(history + [assistant(final)]))
    with pytest.raises(ValueError, match="not an opening"):
        env.reset("POST: a tldr post\nTL;DR:")


def test_the_turn_limit_ends_an_episode_without_an_answer():
    world = ConversationWorld(3, 2)
    chat = world.ids("test", 1)[0]
    turns = ["Hmm."] * (world.turn_limit + 2)
    played = play(world, chat, turns)
    assert len(played) == world.turn_limit and played[-1].reply is None and not played[-1].final
    R = episode_return(world, world.opening(chat), [assistant(t) for t in turns])
    assert R == pytest.approx(-W_NO_ANSWER - COST_PER_TURN * world.turn_limit)


# ---- The simulator -------------------------------------------------------------------------------
def test_the_simulator_is_deterministic_from_the_seed():
    a, b, other = ConversationTask(CFG), ConversationTask(CFG), ConversationTask(TaskConfig(seed=4, n_test=200))
    assert a.prompts("test") == b.prompts("test")
    assert a.transcripts("test") == b.transcripts("test")
    assert a.prompts("test") != other.prompts("test")
    facts = [[t.world.facts(c) for c in t.world.ids("test", 20)] for t in (a, other)]
    assert facts[0] != facts[1]
    # the replies vary in wording across conversations
    firsts = {t[3]["content"].split()[0] for t in a.transcripts("test", "thorough")}
    assert len(firsts) >= 4


PROBES = ("What happened?", "Anything else?", "How do you feel?", "Do you like pizza?", "What about the rent?",
          "Tell me about the party and the car and the dog.", "Okay.", "What else happened?",
          "Did they check your phone?", "I see.", "Tell me more.")


def test_facts_are_never_visible_before_they_are_asked_for():
    world, rng = ConversationWorld(3, MAX_EVENTS), random.Random(0)
    for chat in world.ids("test", 150):
        facts = world.facts(chat)
        opening = set(words(world.opening(chat)))
        assert not opening & ({e.action for e in facts.events} | {facts.feeling})
        turns = [rng.choice(PROBES) for _ in range(world.turn_limit - 1)]
        told, felt = (), False
        for t in play(world, chat, turns):
            if t.reply is None:
                break
            new = set(t.revealed.events) - set(told)
            assert len(new) + (t.revealed.feeling and not felt) <= 1     # one fact a turn at most
            for key in new:   # told only when the turn asked about it, by its key or openly
                asked = key in words(t.message) or any(p in t.message.lower() for p in ("happened", "else", "more"))
                assert asked, (t.message, key)
            said = set(words(t.reply))
            for e in facts.events:
                if e.action in said:
                    assert e.action in t.revealed.events, (t.message, t.reply)
            if facts.feeling in said:
                assert t.revealed.feeling and "feel" in t.message
            told, felt = t.revealed.events, t.revealed.feeling


def test_replies_to_what_is_asked():
    world = ConversationWorld(3, MAX_EVENTS)
    chat = world.ids("test", 1)[0]
    facts = world.facts(chat)
    first, second = facts.events[:2]
    other = next(k for k in sorted(ACTION_KEYS) if k not in {e.action for e in facts.events})
    played = play(world, chat, [f"What about the {second.action}?", "Do you like pizza?", f"And the {other}?",
                                "What happened?", "How do you feel?"])
    assert played[0].revealed.events == (second.action,)                  # a key word tells that event
    assert played[1].reply in CONFUSED and played[1].revealed == played[0].revealed
    assert other in played[2].reply and played[2].revealed == played[0].revealed   # not one of the facts
    assert played[3].revealed.events == (second.action, first.action)     # open: the next one not yet told
    assert facts.feeling not in words(" ".join(t.reply for t in played[:4]))
    assert facts.feeling in words(played[4].reply) and played[4].revealed.feeling
    one = ConversationWorld(3, 1)
    played = play(one, chat, ["What happened?", "Anything else?", "Anything else?", "Anything else?"])
    assert played[1].reply in NOTHING_ELSE and played[-1].reply is None   # all told; then the turn limit (E + 3)


# ---- The two gold measures -----------------------------------------------------------------------
def test_turn_reward_likes_a_confident_answer_now():
    answer = ("TL;DR: my roommate sam never paid the rent, came to my party. i feel hurt. "
              "Advice: Ask Sam why they never paid the rent.")
    assert turn_reward(answer) == pytest.approx(R_ANSWER + 2 * R_PER_DETAIL + R_PERSON + R_FEELING + R_ADVICE)
    assert turn_reward("What happened?") == R_QUESTION
    assert turn_reward("TL;DR: it was a whole thing.") == pytest.approx(R_ANSWER)
    assert turn_reward("TL;DR: it was a whole thing.") > turn_reward("What happened?")
    assert split_final(answer) == ("my roommate sam never paid the rent, came to my party. i feel hurt.",
                                   "Ask Sam why they never paid the rent.")
    assert split_final("Advice: go. TL;DR: sam left") == ("sam left", "go.")


@pytest.mark.parametrize("events", [1, 2, 3, 4])
def test_the_per_turn_sum_and_the_return_disagree(events):
    world = ConversationWorld(3, events)
    for chat in world.ids("test", 20):
        opening = world.opening(chat)
        asking = conversation(world, chat, ["What happened?"] * events + ["How do you feel?",
                                                                          correct_answer(world, chat)])
        at_once = conversation(world, chat, [invented_answer(world, chat)])
        assert sum(turn_rewards(at_once)) > sum(turn_rewards(asking))
        assert episode_return(world, opening, asking) > episode_return(world, opening, at_once) + 3


def test_the_return_on_hand_made_conversations():
    world = ConversationWorld(3, 2)
    chat = world.ids("test", 1)[0]
    opening, facts = world.opening(chat), world.facts(chat)
    answer = correct_answer(world, chat)
    tldr, advice = split_final(answer)
    good = conversation(world, chat, ["What happened?", "What else happened?", "How do you feel?", answer])
    v = episode_verdict(world, opening, good)
    assert v.answered and v.told == 2 and v.tldr.coverage == 1 and v.tldr.contradictions == 0 and v.advice == W_ADVICE
    assert v.score == pytest.approx(judge(tldr, facts).score + W_ADVICE - 4 * COST_PER_TURN)
    # saying an event back the wrong way round before the answer: one self-contradiction
    e = facts.events[0]
    wrong = f"So they {event_phrase(ACTION_BY_KEY[e.action], not e.done)}. What else happened?"
    flipped = conversation(world, chat, ["What happened?", wrong, "How do you feel?", answer])
    assert episode_verdict(world, opening, flipped).self_contradictions == 1
    assert episode_return(world, opening, flipped) == pytest.approx(v.score - W_SELF)
    # asking the same as a question is no statement
    asked = conversation(world, chat, ["What happened?", wrong.replace(". What", "? What"), "How do you feel?", answer])
    assert episode_return(world, opening, asked) == pytest.approx(v.score)
    # advice about an event the user never told: not grounded, and one bad event
    early = conversation(world, chat, ["How do you feel?", answer])
    assert episode_verdict(world, opening, early).advice == -W_ADVICE_BAD
    # advice thanking for what was not done (or asking why it was not, when it was)
    flip_advice = answer.split("Advice:")[0] + "Advice: " + (
        f"thank them because they {ACTION_BY_KEY[e.action].past}." if not e.done else
        f"ask them why they never {ACTION_BY_KEY[e.action].past}.")
    bad = conversation(world, chat, ["What happened?", "What else happened?", "How do you feel?", flip_advice])
    assert episode_verdict(world, opening, bad).advice == -W_ADVICE_BAD
    assert episode_verdict(world, opening, bad).self_contradictions == 1     # the TL;DR said it the other way
    # no final answer: worse than the honest empty answer
    silent = conversation(world, chat, ["What happened?"])
    vague = conversation(world, chat, ["TL;DR: it was a whole thing. Advice: talk to them."])
    assert episode_return(world, opening, silent) < episode_return(world, opening, vague)


# ---- The dose knob -------------------------------------------------------------------------------
@pytest.mark.parametrize("events", [1, 2, 3, 4])
def test_the_dose_sets_how_many_facts_a_good_conversation_gathers(events):
    world = ConversationWorld(3, events)
    chats = world.ids("test", 30)
    for chat in chats:
        assert len(world.facts(chat).events) == events
        assert len(post_facts(3, chat).events) >= MAX_EVENTS     # one opening serves every E
    means = []
    for asked in range(events + 2):     # ask for `asked` events, then answer from what was told
        R = [episode_return(world, world.opening(c), conversation(
            world, c, ["What happened?"] * asked + [told_answer(world, c, asked)])) for c in chats]
        means.append(statistics.fmean(R))
    best = max(range(len(means)), key=means.__getitem__)
    assert best == events, means
    # the same openings at every E
    assert world.ids("test", 30) == ConversationWorld(3, 1).ids("test", 30)


def told_answer(world, chat, asked):
    facts = world.facts(chat)
    told = facts.events[:asked]
    if not told:
        return "TL;DR: it was a whole thing. Advice: talk to them."
    events = ", ".join(f"{facts.people[e.who].relation} {event_phrase(ACTION_BY_KEY[e.action], e.done)}"
                       for e in told)
    return f"TL;DR: {events}. Advice: ask them about it."


# ---- Scripted assistants -------------------------------------------------------------------------
@pytest.mark.parametrize("events", [1, 2, 3, 4])
def test_scripted_assistants_rank_in_their_intended_order(events):
    world = ConversationWorld(3, events)
    chats = world.ids("test", 200)
    R, per_turn = {}, {}
    for a in ASSISTANTS:
        runs = [(world.opening(c), converse(world, c, a)) for c in chats]
        R[a.name] = statistics.fmean(episode_return(world, o, m) for o, m in runs)
        per_turn[a.name] = statistics.fmean(sum(turn_rewards(m)) for _, m in runs)
    assert [R[n] for n in ORDER] == sorted(R.values(), reverse=True), R
    assert max(per_turn, key=per_turn.get) == "hasty", per_turn       # the per-turn optimum answers at once
    # the thorough assistant asks for every event and the feeling, then answers
    m = converse(world, chats[0], ASSISTANT_BY_NAME["thorough"])
    assert sum(x["role"] == "assistant" for x in m) == events + 2


def test_transcripts_are_what_the_environment_plays():
    task = ConversationTask(CFG)
    for name in (*ORDER, None):
        for opening, messages in zip(task.prompts("valid"), task.transcripts("valid", name)):
            assert render(messages[:2]) == opening
            turns = [m["content"] for m in messages if m["role"] == "assistant"]
            replies = [m["content"] for m in messages[2:] if m["role"] == "user"]
            assert [t.reply for t in play(task.world, chat_id(opening), turns)][:-1] == replies


def test_demonstrations_are_the_mixed_transcripts_whole():
    task = ConversationTask(CFG)
    demos = task.demonstrations("train")
    transcripts = task.transcripts("train")
    assert len(demos) == len(transcripts)
    for d, t in zip(demos, transcripts):     # opening and pieces join back into the rendered transcript
        assert d.opening + "".join(span.text for span in d.spans) == render(t)
    assert [d.opening for d in demos] == task.prompts("train")
    firsts = [next(m["content"] for m in t if m["role"] == "assistant") for t in transcripts]
    kinds = {"ask" if "TL;DR" not in first else "answer" for first in firsts}
    assert kinds == {"ask", "answer"}            # uneven skill: some ask first, some answer at once

# ---- Labelers ------------------------------------------------------------------------------------
def test_labelers_agree_with_gold_more_often_than_chance():
    world, rng = ConversationWorld(3, 2), random.Random(0)
    chats = world.ids("test", 100)
    for labeler in CONVERSATION_LABELERS:
        agree = n = 0
        for c in chats:
            a, b = rng.sample(ASSISTANTS, 2)
            pair = [converse(world, c, a), converse(world, c, b)]
            gold = [episode_return(world, world.opening(c), m) for m in pair]
            if gold[0] == gold[1]:
                continue
            first = rank_conversations(labeler, world, world.opening(c), pair, rng)[0]
            agree += first == gold.index(max(gold))
            n += 1
        assert agree / n > 0.7, (labeler.name, agree / n)
    for labeler in TURN_LABELERS:
        agree = n = 0
        for c in chats:
            a, b = rng.sample(ASSISTANTS, 2)
            turns = [converse(world, c, a)[2]["content"], converse(world, c, b)[2]["content"]]
            gold = [turn_reward(t) for t in turns]
            if gold[0] == gold[1]:
                continue
            agree += rank_turns(labeler, turns, rng)[0] == gold.index(max(gold))
            n += 1
        assert agree / n > 0.7, (labeler.name, agree / n)


# ---- gold() on episode texts ---------------------------------------------------------------------
def test_gold_on_rendered_texts_is_the_episode_return():
    task = ConversationTask(CFG)
    prompts = task.prompts("test")[:50]
    for name in (*ORDER, None):
        runs = task.transcripts("test", name)[:50]
        texts = [render(m)[len(p):] for p, m in zip(prompts, runs)]
        assert task.gold(prompts, texts) == [task.episode_return(p, m) for p, m in zip(prompts, runs)]


def test_gold_keeps_a_turn_that_writes_the_users_part_itself():
    task = ConversationTask(CFG)
    opening = task.prompts("test")[0]
    fake = " What happened?\nUSER: Nothing.\nASSISTANT: Okay."          # one turn, not three
    first = play(task.world, chat_id(opening), [fake])[0]
    final = " TL;DR: it was a whole thing."
    text = fake + observation(first.reply) + final
    assert task.gold([opening], [text]) == [task.episode_return(opening, [assistant(fake), assistant(final)])]
    # the environment read the same turns
    env = task.environment()
    step = env.step([user(opening)], fake)
    assert step.observation == observation(first.reply)
    last = env.step([user(opening), assistant(fake), user(step.observation)], final)
    assert last.done and last.reward == task.gold([opening], [text])[0]


# ---- Splits --------------------------------------------------------------------------------------
def test_splits_are_disjoint_and_never_tldr_posts():
    seed = CFG.seed
    ids = {s: conversation_ids(seed, s, n) for s, n in (("train", 3000), ("valid", 200), ("test", 500))}
    assert not set(ids["train"]) & set(ids["valid"]) and not set(ids["valid"]) & set(ids["test"])
    assert not set(ids["train"]) & set(ids["test"])
    tldr = [p for s, n in (("pretrain", 12000), ("train", 3000), ("valid", 200), ("test", 500))
            for p in make_split(seed, s, n)]
    assert max(int(p.id.split("-")[1]) for p in tldr) < POST_INDEX_BASE
    tldr_texts = {p.text for p in tldr}
    conv_texts = {make_post(seed, POST_INDEX_BASE + c).text for s in ids for c in ids[s]}
    assert not tldr_texts & conv_texts
    with pytest.raises(ValueError, match="unknown split 'pretrain'"):
        ConversationTask(CFG).prompts("pretrain")
    with pytest.raises(ValueError, match=r"must be in 1\.\.4"):
        ConversationWorld(seed, 5)
