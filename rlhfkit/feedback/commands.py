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

from sqlalchemy import select
from sqlalchemy.orm import Session

from rlhfkit.data.records import write_jsonl
from rlhfkit.errors import InputError
from rlhfkit.feedback.config import (LabelCampaignConfig, LabelExportConfig, LabelSampleConfig, LabelServeConfig,
                                     LabelSimulateConfig)


def serve(cfg: LabelServeConfig) -> None:
    import uvicorn

    from rlhfkit.feedback.app import create_app
    from rlhfkit.feedback.security import new_token
    token = cfg.admin_token or new_token()
    scorers = {}
    if cfg.gold:
        from rlhfkit.evaluate.agreement import gold_scorer
        scorers["gold judge"] = gold_scorer(cfg.task)
    if cfg.reward_model:
        from rlhfkit.evaluate.agreement import reward_model_scorer
        scorers["reward model"] = reward_model_scorer(cfg.reward_model)
    playground = None
    if cfg.policies:
        from rlhfkit.config import parse_policies
        from rlhfkit.feedback.playground import Playground
        playground = Playground(parse_policies(cfg.policies), cfg.play_temperature, cfg.play_max_new_tokens)
    app = create_app(cfg.db, token, scorers=scorers, base_url=cfg.public_url, create=cfg.create,
                     pool_size=cfg.pool_size, max_body_bytes=cfg.max_body_kb * 1024, playground=playground)
    if not cfg.admin_token:
        print(f"admin token: {token}", file=sys.stderr)
    print(f"admin pages: {cfg.public_url}/admin/login?token={token}", file=sys.stderr)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")


def campaign_create(cfg: LabelCampaignConfig) -> dict:
    """Makes the database if it is new, and removes it again if the campaign fails (a bad rollouts
    file must not leave an empty database that `serve` would then accept)."""
    from rlhfkit.feedback import campaigns
    from rlhfkit.feedback.db import open_database, sqlite_file
    path = sqlite_file(cfg.db)
    made = path is not None and not path.exists()
    engine = open_database(cfg.db, create=True)
    try:
        with Session(engine, expire_on_commit=False) as s:
            campaign = campaigns.create_campaign(s, cfg.name, cfg.rollouts, cfg.overlap)
            names = [n.strip() for n in cfg.invite.split(",") if n.strip()]
            links = {n: f"{cfg.base_url.rstrip('/')}/join/{campaigns.invite(s, campaign.id, n)}" for n in names}
            return {"campaign": campaign.id, "items": len(campaign.items), "overlap": cfg.overlap, "invites": links}
    except BaseException:
        engine.dispose()
        if made:
            for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                f.unlink(missing_ok=True)
        raise
    finally:
        engine.dispose()


def export(cfg: LabelExportConfig) -> dict:
    """Nothing is written unless the database and the campaign exist."""
    from rlhfkit.feedback.campaigns import export_records
    from rlhfkit.feedback.db import open_database, shown
    from rlhfkit.feedback.models import Campaign
    with Session(open_database(cfg.db, create=False)) as s:
        if s.get(Campaign, cfg.campaign) is None:
            have = ", ".join(str(i) for i in s.scalars(select(Campaign.id).order_by(Campaign.id))) or "none"
            raise InputError(f"campaign: no campaign {cfg.campaign} in {shown(cfg.db)} (campaigns there: {have})")
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
