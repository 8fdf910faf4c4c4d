"""`rlhfkit label ...`: the commands around the labeling app.

    rlhfkit label sample --policy runs/sft --k 4 --n_prompts 50 --out runs/label/rollouts.jsonl
    rlhfkit label campaign create --from runs/label/rollouts.jsonl --overlap 2 --invite ann,bob
    rlhfkit label serve                       # then open the printed invite links
    rlhfkit label simulate --tokens T1,T2     # or let the built-in simulated labelers answer
    rlhfkit label export --campaign 1 --out runs/label/comparisons.jsonl
    rlhfkit rm --model runs/sft --data runs/label/comparisons.jsonl --out runs/rm-human
"""
from __future__ import annotations

import random
import sys

from sqlalchemy.orm import Session

from rlhfkit.feedback.config import (LabelCampaignConfig, LabelExportConfig, LabelSampleConfig, LabelServeConfig,
                            LabelSimulateConfig)
from rlhfkit.data.records import write_jsonl


def _session(db: str) -> Session:
    from rlhfkit.feedback.db import init_schema, make_engine
    engine = make_engine(db)
    init_schema(engine)
    return Session(engine, expire_on_commit=False)


def _ensure_sqlite_dir(db: str) -> None:
    if db.startswith("sqlite:///"):
        from pathlib import Path
        Path(db.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def serve(cfg: LabelServeConfig) -> None:
    import uvicorn

    from rlhfkit.feedback.app import create_app
    from rlhfkit.feedback.security import new_token
    _ensure_sqlite_dir(cfg.db)
    token = cfg.admin_token or new_token()
    if not cfg.admin_token:
        print(f"admin token: {token}", file=sys.stderr)
    print(f"admin pages: http://{cfg.host}:{cfg.port}/admin/login?token={token}", file=sys.stderr)
    scorers = {}
    if cfg.gold:
        from rlhfkit.evaluate.agreement import gold_scorer
        scorers["gold judge"] = gold_scorer(cfg.task)
    if cfg.reward_model:
        from rlhfkit.evaluate.agreement import reward_model_scorer
        scorers["reward model"] = reward_model_scorer(cfg.reward_model)
    uvicorn.run(create_app(cfg.db, token, scorers=scorers), host=cfg.host, port=cfg.port, log_level="warning")


def campaign_create(cfg: LabelCampaignConfig) -> dict:
    from rlhfkit.feedback import campaigns
    _ensure_sqlite_dir(cfg.db)
    with _session(cfg.db) as s:
        campaign = campaigns.create_campaign(s, cfg.name, cfg.rollouts, cfg.overlap)
        names = [n.strip() for n in cfg.invite.split(",") if n.strip()]
        links = {n: f"{cfg.base_url.rstrip('/')}/join/{campaigns.invite(s, campaign.id, n)}" for n in names}
        return {"campaign": campaign.id, "items": len(campaign.items), "overlap": cfg.overlap, "invites": links}


def export(cfg: LabelExportConfig) -> dict:
    from rlhfkit.feedback.campaigns import export_records
    with _session(cfg.db) as s:
        records = export_records(s, cfg.campaign)
    write_jsonl(cfg.out, records)
    return {"records": len(records), "out": cfg.out}


def sample(cfg: LabelSampleConfig) -> dict:
    from rlhfkit.evaluate.run import sample_policy
    from rlhfkit.models.lm import context_length, load_causal_lm
    from rlhfkit.rollout.prompts import load_prompts
    model, tokenizer = load_causal_lm(cfg.policy)
    prompts = load_prompts(cfg.prompts, cfg.task, "train", tokenizer,
                           context_length(model) - cfg.sample.max_new_tokens - 1)[:cfg.n_prompts]
    texts = sample_policy(model, tokenizer, [p for p in prompts for _ in range(cfg.k)], cfg.sample,
                          desc="sample for labeling")[0]
    write_jsonl(cfg.out, [{"prompt": p, "completions": texts[i * cfg.k:(i + 1) * cfg.k]}
                          for i, p in enumerate(prompts)])
    return {"prompts": len(prompts), "k": cfg.k, "out": cfg.out}


def simulate(cfg: LabelSimulateConfig) -> dict:
    """Each token's labeler takes items from /api/next and ranks them by the world's facts, until
    nothing is left; answers go to /api/answers like a person's."""
    import httpx

    from rlhfkit.tasks.tldr.labelers import LABELERS, rank
    from rlhfkit.tasks.tldr.world import facts_by_prompt
    facts = facts_by_prompt(cfg.task.seed, cfg.task.n_train, cfg.task.n_valid, cfg.task.n_test)
    by_name = {lab.name: lab for lab in LABELERS}
    answered = {}
    for i, token in enumerate(t.strip().rsplit("/", 1)[-1] for t in cfg.tokens.split(",") if t.strip()):
        labeler = by_name[cfg.labeler] if cfg.labeler else LABELERS[i % len(LABELERS)]
        rng = random.Random(f"simulate-{cfg.seed}-{i}")
        n = 0
        with httpx.Client(base_url=cfg.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            while (body := client.get("/api/next").raise_for_status().json())["assignment_id"] is not None:
                texts = [c["text"] for c in body["candidates"]]
                if body["prompt"] in facts:
                    order = rank(labeler, texts, facts[body["prompt"]], rng)
                    answer = {"ranking": [[body["candidates"][j]["id"]] for j in order]}
                else:
                    answer = {"cant_tell": True, "note": "prompt not from the built-in world"}
                client.post("/api/answers", json={"assignment_id": body["assignment_id"], **answer}).raise_for_status()
                n += 1
        answered[f"{i}:{labeler.name}"] = n
    return {"answered": answered}
