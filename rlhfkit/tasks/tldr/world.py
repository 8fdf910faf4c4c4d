"""The synthetic TL;DR world: latent fact records and the posts written from them.

A post is a short first-person story generated from a `Facts` record: the people in it,
2-5 key events (each done or not done: its polarity), a feeling, a closing question and
some irrelevant filler. Everything is deterministic from (seed, split, index), so a split
can be regenerated anywhere from the task config alone, and splits never share a post.

    from rlhfkit.tasks.tldr.world import make_split
    posts = make_split(seed=0, split="test", n=500)
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

NAMES = ("Sam", "Alex", "Jordan", "Taylor", "Chris", "Jamie", "Morgan", "Casey", "Riley", "Drew",
         "Emma", "Olivia", "Liam", "Noah", "Mia", "Ethan", "Ava", "Lucas", "Zoe", "Max",
         "Lily", "Jack", "Nora", "Ben", "Ella", "Leo", "Ruby", "Owen", "Ivy", "Adam")
RELATIONS = ("boyfriend", "girlfriend", "roommate", "sister", "brother", "boss", "coworker",
             "friend", "mom", "dad", "husband", "wife", "neighbor", "landlord", "cousin")


@dataclass(frozen=True)
class Action:
    """One kind of key event. `key` is the word that identifies it in any text."""
    key: str
    base: str   # "pay the rent"
    past: str   # "paid the rent"


ACTIONS = tuple(Action(*a) for a in (
    ("rent", "pay the rent", "paid the rent"),
    ("party", "come to my party", "came to my party"),
    ("kitchen", "clean the kitchen", "cleaned the kitchen"),
    ("wedding", "invite me to the wedding", "invited me to the wedding"),
    ("car", "return my car", "returned my car"),
    ("truth", "tell me the truth", "told me the truth"),
    ("apology", "offer an apology", "offered an apology"),
    ("airport", "pick me up at the airport", "picked me up at the airport"),
    ("texts", "answer my texts", "answered my texts"),
    ("dinner", "show up for dinner", "showed up for dinner"),
    ("boxes", "help carry the boxes", "helped carry the boxes"),
    ("birthday", "remember my birthday", "remembered my birthday"),
    ("parents", "meet my parents", "met my parents"),
    ("secret", "keep my secret", "kept my secret"),
    ("money", "pay back the money", "paid back the money"),
    ("sink", "fix the sink", "fixed the sink"),
    ("dog", "walk the dog", "walked the dog"),
    ("laptop", "give back my laptop", "gave back my laptop"),
    ("job", "get the job", "got the job"),
    ("trip", "cancel the trip", "cancelled the trip"),
    ("promotion", "mention my promotion", "mentioned my promotion"),
    ("keys", "copy the keys", "copied the keys"),
    ("phone", "check my phone", "checked my phone"),
    ("ex", "text the ex", "texted the ex"),
))
ACTION_BY_KEY = {a.key: a for a in ACTIONS}

FEELINGS = ("hurt", "angry", "confused", "sad", "anxious", "betrayed", "lonely", "stressed")
QUESTIONS = (  # (full question in a post, short form a summary uses; both share the key word)
    ("Should I confront them about it?", "should i confront them?"),
    ("Am I overreacting here?", "am i overreacting?"),
    ("Should I just move out?", "should i move out?"),
    ("How do I bring this up without a fight?", "how do i bring this up?"),
    ("Is it time to end things?", "should i end things?"),
    ("What would you do in my place?", "what would you do?"),
)
QUESTION_KEYS = ("confront", "overreacting", "move out", "bring this up", "end things", "would you do")
TIMES = ("last week", "yesterday", "two days ago", "last month", "on friday", "this morning",
         "over the weekend", "a few days ago")
FILLER = (  # irrelevant sentences; each has a key word no event or summary template uses
    ("pasta", "I had pasta for lunch that day."),
    ("weather", "The weather has been really nice lately."),
    ("cat", "My cat has been sleeping on my desk all week."),
    ("podcast", "I have been listening to a podcast about space."),
    ("garden", "Our garden finally has tomatoes."),
    ("gym", "I started going to the gym again."),
    ("coffee", "The coffee machine at work broke again."),
    ("traffic", "Traffic was terrible on the way home."),
    ("novel", "I am reading a long novel right now."),
    ("bus", "The bus was late as usual."),
    ("guitar", "I have been learning the guitar."),
    ("pizza", "We ordered pizza that night."),
)
FILLER_KEYS = tuple(k for k, _ in FILLER)
SPLITS = ("pretrain", "train", "valid", "test")
SPLIT_BUCKETS = (("test", 10), ("valid", 20), ("train", 60), ("pretrain", 100))  # shares of the stream


@dataclass(frozen=True)
class Event:
    who: int          # index into Facts.people
    action: str       # Action.key
    done: bool        # polarity: True = it happened, False = it did not
    time: str


@dataclass(frozen=True)
class Person:
    name: str
    relation: str


@dataclass(frozen=True)
class Facts:
    """The latent record a post is written from; the judge scores summaries against it."""
    age: int
    gender: str
    people: tuple[Person, ...]
    events: tuple[Event, ...]
    feeling: str
    question: int     # index into QUESTIONS
    filler: tuple[int, ...]  # indices into FILLER


@dataclass(frozen=True)
class Post:
    id: str
    facts: Facts
    text: str         # the post body, without the prompt framing

    @property
    def prompt(self) -> str:
        return format_prompt(self.text)


def format_prompt(text: str) -> str:
    return f"POST: {text}\nTL;DR:"


def event_phrase(action: Action, done: bool, rng: random.Random | None = None) -> str:
    """A verb phrase for an event; negations vary in wording when an rng is given."""
    if done:
        return action.past
    forms = ("did not {}", "never did {}", "didn't {}", "never {}") if rng else ("did not {}",)
    form = rng.choice(forms) if rng else forms[0]
    if form == "never {}":  # "never paid the rent"
        return "never " + action.past
    if form == "never did {}":
        return "did not ever " + action.base
    return form.format(action.base)


def sample_facts(rng: random.Random) -> Facts:
    n_people = rng.randint(1, 2)
    names = rng.sample(NAMES, n_people)
    relations = rng.sample(RELATIONS, n_people)
    people = tuple(Person(n, r) for n, r in zip(names, relations))
    keys = rng.sample([a.key for a in ACTIONS], rng.randint(2, 5))
    events = tuple(Event(rng.randrange(n_people), k, rng.random() < 0.5, rng.choice(TIMES)) for k in keys)
    return Facts(age=rng.randint(18, 45), gender=rng.choice("MF"), people=people, events=events,
                 feeling=rng.choice(FEELINGS), question=rng.randrange(len(QUESTIONS)),
                 filler=tuple(rng.sample(range(len(FILLER)), rng.randint(1, 3))))


def _event_sentence(facts: Facts, ev: Event, rng: random.Random) -> str:
    person = facts.people[ev.who]
    who = rng.choice((person.name, f"my {person.relation}", f"{person.name}"))
    phrase = event_phrase(ACTION_BY_KEY[ev.action], ev.done, rng)
    form = rng.randrange(3)
    if form == 0:
        s = f"{ev.time.capitalize()} {who} {phrase}."
    elif form == 1:
        s = f"{who[0].upper() + who[1:]} {phrase} {ev.time}."
    else:
        s = f"Then {who} {phrase}, {ev.time}."
    return s


def write_post(facts: Facts, rng: random.Random) -> str:
    p0 = facts.people[0]
    intro = rng.choice((
        f"I ({facts.age}{facts.gender}) have a {p0.relation} named {p0.name}.",
        f"So my {p0.relation} {p0.name} and I have known each other for years.",
        f"I am {facts.age}{facts.gender} and this is about my {p0.relation} {p0.name}.",
    ))
    body = [intro]
    if len(facts.people) > 1:
        p1 = facts.people[1]
        body.append(rng.choice((f"There is also my {p1.relation} {p1.name}.",
                                f"My {p1.relation} {p1.name} is part of this too.")))
    sentences = [_event_sentence(facts, ev, rng) for ev in facts.events]
    fillers = [FILLER[i][1] for i in facts.filler]
    for f in fillers:  # filler lands between events, at random places
        sentences.insert(rng.randint(0, len(sentences)), f)
    body += sentences
    body.append(rng.choice((f"Honestly I feel {facts.feeling}.", f"Now I am just {facts.feeling}.",
                            f"It all makes me feel {facts.feeling}.")))
    body.append(QUESTIONS[facts.question][0])
    return " ".join(body)


def make_post(seed: int, index: int) -> Post:
    rng = random.Random(f"tldr-{seed}-{index}")
    facts = sample_facts(rng)
    text = write_post(facts, rng)
    return Post(id=f"{seed}-{index}", facts=facts, text=text)


def split_of(text: str) -> str:
    """The split a post belongs to, from a stable hash of its text: identical texts always
    land in the same split, so splits are disjoint by construction whatever their sizes."""
    bucket = int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) % 100
    for split, upper in SPLIT_BUCKETS:
        if bucket < upper:
            return split
    raise AssertionError("unreachable: the last bucket bound is 100")


def make_split(seed: int, split: str, n: int) -> list[Post]:
    """The first n distinct posts of a split, deterministic from the seed."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    posts: list[Post] = []
    seen: set[str] = set()
    index = 0
    while len(posts) < n:
        post = make_post(seed, index)
        index += 1
        if split_of(post.text) == split and post.text not in seen:
            seen.add(post.text)
            posts.append(post)
    return posts


def facts_by_prompt(seed: int, n_train: int, n_valid: int, n_test: int) -> dict[str, Facts]:
    """The fact record behind every prompt of the world's train, valid and test splits."""
    sizes = {"train": n_train, "valid": n_valid, "test": n_test}
    return {p.prompt: p.facts for split, n in sizes.items() for p in make_split(seed, split, n)}
