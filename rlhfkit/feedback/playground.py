"""The playground: a signed-in person types a prompt (or continues a conversation), two policies
answer side by side in a random order, and the person picks the better answer or a tie.

The policies are loaded once (`rlhfkit label serve --policies a=DIR,b=DIR`). Generation runs on one
worker thread, never on a request's: a request starts a job and returns at once, and the page
(or a program, through the JSON API) asks for the answers until they are there. A pick is stored
as a campaign answer is, in the labeler's campaign: an item holding the prompt (its source names
the policies), one candidate per policy (in the order of --policies), an assignment recording the
order shown, and the answer (a tie is one group: it holds no preference, and export skips it).
So `rlhfkit label export` hands playground comparisons to `rlhfkit rm` like any other.
"""
from __future__ import annotations

import random
import secrets
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from rlhfkit.feedback import campaigns
from rlhfkit.feedback.models import Answer, Assignment, Campaign, Candidate, Item, Labeler

CHOICES = ("left", "right", "tie")
MAX_JOBS = 1000          # unanswered comparisons kept in memory; the oldest go first
MAX_OPEN_PER_LABELER = 4     # a person's unanswered comparisons: more waits (429), so one cannot crowd out the rest


class Busy(Exception):
    """The labeler already has MAX_OPEN_PER_LABELER comparisons waiting."""


@dataclass
class Comparison:
    labeler_id: int
    prompt: str
    order: list[int]                       # policy indices in display order (left, right)
    answers: Future = field(repr=False)    # the policies' answers, in the order of --policies


class Playground:
    def __init__(self, policies: dict[str, str], temperature: float = 0.7, max_new_tokens: int = 64,
                 generate=None) -> None:
        """`generate(name, prompt) -> answer` stands in for the policies (tests); else each is loaded once."""
        if len(policies) != 2:
            raise ValueError(f"the playground compares two policies; --policies names {len(policies)}")
        self.names = list(policies)
        self.generate = generate or _sampler(policies, temperature, max_new_tokens)
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="playground")
        self.jobs: dict[str, Comparison] = {}
        self.lock = threading.Lock()

    def start(self, labeler: Labeler, prompt: str) -> str:
        """Queue both policies' answers to `prompt`; returns the job's id. Busy when the person has
        MAX_OPEN_PER_LABELER comparisons waiting already."""
        job = secrets.token_urlsafe(12)
        order = random.sample(range(2), 2)
        with self.lock:
            if sum(c.labeler_id == labeler.id for c in self.jobs.values()) >= MAX_OPEN_PER_LABELER:
                raise Busy(f"{MAX_OPEN_PER_LABELER} comparisons of yours are waiting: pick in those first")
            while len(self.jobs) >= MAX_JOBS:
                self.jobs.pop(next(iter(self.jobs))).answers.cancel()
            future = self.worker.submit(lambda: [self.generate(name, prompt) for name in self.names])
            self.jobs[job] = Comparison(labeler.id, prompt, order, future)
        return job

    def get(self, labeler: Labeler, job: str) -> Comparison | None:
        with self.lock:
            c = self.jobs.get(job)
        return c if c is not None and c.labeler_id == labeler.id else None

    def view(self, c: Comparison) -> dict:
        """What the page shows: the prompt and, once ready, the two answers in display order (not whose)."""
        if not c.answers.done():
            return {"status": "pending", "prompt": c.prompt}
        if c.answers.exception() is not None:
            return {"status": "failed", "prompt": c.prompt, "error": f"{type(c.answers.exception()).__name__}: "
                                                                      f"{c.answers.exception()}"}
        answers = c.answers.result()
        return {"status": "done", "prompt": c.prompt, "answers": [answers[i] for i in c.order]}

    def drop(self, labeler: Labeler, job: str) -> None:
        """Forget a comparison of this person's (one that failed, or one they leave)."""
        with self.lock:
            if job in self.jobs and self.jobs[job].labeler_id == labeler.id:
                self.jobs.pop(job).answers.cancel()

    def pick(self, s: Session, labeler: Labeler, job: str, choice: str) -> dict:
        """Store the comparison and the pick; returns the answer's id and the policies in display order."""
        c = self.get(labeler, job)
        if c is None or self.view(c)["status"] != "done":
            raise campaigns.AnswerError("no such comparison ready for you")
        if choice not in CHOICES:
            raise campaigns.AnswerError(f"choice must be one of {', '.join(CHOICES)}")
        with self.lock:
            if self.jobs.pop(job, None) is None:
                raise campaigns.AlreadyAnswered("already answered")
        overlap = s.scalar(select(Campaign.overlap).where(Campaign.id == labeler.campaign_id))
        item = Item(campaign_id=labeler.campaign_id, prompt=c.prompt, assigned=overlap,     # never handed out
                    source=campaigns.PLAYGROUND_SOURCE + " vs ".join(self.names))
        item.candidates = [Candidate(index=i, text=t) for i, t in enumerate(c.answers.result())]
        s.add(item)
        s.flush()
        shown = [item.candidates[i].id for i in c.order]
        assignment = Assignment(item_id=item.id, labeler_id=labeler.id, positions=shown)
        s.add(assignment)
        s.flush()
        # the same text twice holds no preference, whichever side was picked (rm refuses such twins)
        same = item.candidates[0].text == item.candidates[1].text
        ranking = [shown] if choice == "tie" or same else [[shown[CHOICES.index(choice)]],
                                                           [shown[1 - CHOICES.index(choice)]]]
        answer = Answer(assignment_id=assignment.id, ranking=ranking)
        s.add(answer)
        s.commit()
        return {"answer_id": answer.id, "policies": [self.names[i] for i in c.order]}


def _sampler(policies: dict[str, str], temperature: float, max_new_tokens: int):
    """Each policy loaded once; one sampled answer per call, at a fresh seed."""
    from rlhfkit.models.lm import load_causal_lm
    from rlhfkit.rollout.generate import generate
    models = {name: load_causal_lm(path) for name, path in policies.items()}

    def answer(name: str, prompt: str) -> str:
        model, tokenizer = models[name]
        return generate(model, tokenizer, [prompt], temperature=temperature, max_new_tokens=max_new_tokens,
                        seed=secrets.randbelow(2 ** 31)).texts[0]
    return answer
