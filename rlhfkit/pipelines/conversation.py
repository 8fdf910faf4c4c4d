"""`rlhfkit demo --task conversation`: per-turn SL against conversation SL against RL, in the
conversation world, at equal numbers of sampled conversations and equal label budgets.

    world at dose E -> SFT on mixed-skill transcripts (from the shipped conversation base model)
      -> labels: K SFT conversations per opening ranked whole (conversation labelers), and K
         candidate turns at one state of each ranked on their own (turn labelers)
      -> conversation reward model, turn reward model
      -> per-turn SL:        turn_bon  (the turn RM picks each turn among n; inference-time)
                             turn_rsft (fine-tune on turn_bon's conversations)
                             turn_dpo  (DPO on the turn rankings)
      -> conversation SL:    conv_rsft (the conversation RM keeps the best of n whole conversations)
                             conv_dpo  (DPO on the conversation rankings, assistant tokens only)
      -> RL on the conversation RM: ppo (value model, GAE over the policy's tokens), rloo (the
         episode return only: the ablation of credit assignment)
      -> every policy converses on held-out openings: gold return R, the per-turn gold sum, win
         rate against the thorough scripted assistant, KL to SFT
      -> the selection ceiling: gold best-of-n over SFT conversations

The gold judge never trains anything: the labelers read it as people read a conversation, and
the report uses it. One directory per dose and seed (`E2/seed0/...`); every stage skips its own
finished job, so a killed run continues where it stopped.

    rlhfkit demo --task conversation --out runs/conversation
    rlhfkit demo --task conversation --events 1,2,3,4 --seeds 3 --out runs/conversation-sweep
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from rlhfkit.config import ConversationDemoConfig, DPOConfig, RLConfig, RMConfig, SampleConfig, SFTConfig, to_dict
from rlhfkit.config.report import spread_report_to
from rlhfkit.data.collate import IGNORE, conversation_tokens, encode_conversation, pad_batch
from rlhfkit.data.records import Conversation, Span, episode_record, write_jsonl
from rlhfkit.models.heads import load_reward_model, sequence_rewards
from rlhfkit.models.lm import context_length, load_causal_lm
from rlhfkit.pipelines import conversation_report as report
from rlhfkit.pipelines.demo import Stopwatch
from rlhfkit.rollout.episodes import Episode, play_episodes, play_turn
from rlhfkit.rollout.generate import left_padded, prompt_tokens, sample, token_logprobs
from rlhfkit.tasks.conversation.gold import episode_verdict, turn_rewards
from rlhfkit.tasks.conversation.labelers import (CONVERSATION_LABELERS, TURN_LABELERS, rank_conversations,
                                                 rank_turns)
from rlhfkit.tasks.conversation.task import ConversationTask
from rlhfkit.train import preference, reward_model, rl, sft
from rlhfkit.train.job import config_fingerprint


# ---- Conversations as the experiment handles them -------------------------------------------
@dataclass
class Played:
    """One conversation a policy had with the user: the opening, then its turns and the user's
    replies as an episode holds them."""
    opening: str
    spans: tuple[Span, ...]
    kl: float | None = None   # sequence KL to SFT of the policy that played it, on its own tokens

    @property
    def turns(self) -> list[str]:
        return [s.text.strip() for s in self.spans if s.action]

    @property
    def messages(self) -> list[dict]:
        return [{"role": "assistant", "content": t} for t in self.turns]

    def conversation(self) -> Conversation:
        return Conversation(self.opening, self.spans)


def spans_of(tokenizer, tokens: list[int], actions: list[int]) -> tuple[Span, ...]:
    """An episode's tokens after its opening as spans: each run of the policy's tokens one turn
    (its EOS dropped: `conversation_tokens` puts it back), each run of the environment's one
    observation."""
    spans, start = [], 0
    for i in range(1, len(tokens) + 1):
        if i == len(tokens) or actions[i] != actions[start]:
            text = tokenizer.decode(tokens[start:i], skip_special_tokens=bool(actions[start]))
            spans.append(Span(text, action=bool(actions[start])))
            start = i
    return tuple(spans)


@torch.no_grad()
def play(model, tokenizer, task: ConversationTask, openings: list[str], sample_cfg: SampleConfig,
         kl_ref=None) -> list[Played]:
    """One conversation per opening, in batches of sample.batch_size (draws from sample.seed)."""
    env, out = task.environment(), []
    for start in range(0, len(openings), sample_cfg.batch_size):
        chunk = openings[start:start + sample_cfg.batch_size]
        exp = play_episodes(model, tokenizer, env, chunk, temperature=sample_cfg.temperature,
                            max_new_tokens=sample_cfg.max_new_tokens, max_turns=task.world.turn_limit,
                            seed=sample_cfg.seed * 1_000_003 + start, engine=sample_cfg.engine)
        kl: list[float | None] = [None] * len(chunk)
        if kl_ref is not None:
            ref = token_logprobs(kl_ref, exp.input_ids, exp.attention_mask, exp.response_ids.size(1),
                                 sample_cfg.temperature) * exp.action_mask
            kl = ((exp.logprobs - ref) * exp.action_mask).sum(1).tolist()
        for i, opening in enumerate(chunk):
            keep = exp.response_mask[i] > 0
            out.append(Played(opening, spans_of(tokenizer, exp.response_ids[i][keep].tolist(),
                                                exp.action_mask[i][keep].long().tolist()), kl[i]))
    return out


@torch.no_grad()
def sample_turns(model, tokenizer, contexts: list[list[int]], n: int,
                 sample_cfg: SampleConfig) -> list[list[list[int]]]:
    """n candidate turns (token ids, EOS kept where sampled) for each context."""
    out: list[list[list[int]]] = []
    rows_per_batch = max(1, sample_cfg.batch_size // n)
    for start in range(0, len(contexts), rows_per_batch):
        torch.manual_seed(sample_cfg.seed * 1_000_003 + start)
        ids, mask = left_padded([c for c in contexts[start:start + rows_per_batch] for _ in range(n)],
                                tokenizer.pad_token_id)
        drawn = sample(model, tokenizer, ids, mask, temperature=sample_cfg.temperature,
                       max_new_tokens=sample_cfg.max_new_tokens, engine=sample_cfg.engine)
        turns = [row[m > 0].tolist() for row, m in zip(drawn.ids, drawn.mask)]
        out += [turns[i:i + n] for i in range(0, len(turns), n)]
    return out


@torch.no_grad()
def score_conversations(rm, tokenizer, conversations: list[Conversation], batch_size: int = 64) -> list[float]:
    """A reward model's score of each conversation, read at its final EOS as it was trained."""
    scores: list[float] = []
    for start in range(0, len(conversations), batch_size):
        examples = [encode_conversation(c, tokenizer, 10**9) for c in conversations[start:start + batch_size]]
        batch = pad_batch(examples, tokenizer.pad_token_id)
        scores += sequence_rewards(rm, batch["input_ids"], batch["attention_mask"], batch["labels"] != IGNORE).tolist()
    return scores


def with_turn(opening: str, history: tuple[Span, ...], turn: str) -> Conversation:
    """A state and one candidate turn: the earlier turns kept as context only (no loss)."""
    context = tuple(replace(s, loss=False) for s in history)
    return Conversation(opening, context + (Span(turn, action=True),))


@torch.no_grad()
def play_turn_bon(model, tokenizer, turn_rm, task: ConversationTask, openings: list[str], n: int,
                  sample_cfg: SampleConfig) -> list[Played]:
    """Per-turn best-of-n: at every turn n candidates are sampled and the turn reward model's best
    is said; the conversation goes on from it. Myopic by construction: each choice is judged on
    its own."""
    env, eos = task.environment(), tokenizer.eos_token_id
    room = context_length(model) - sample_cfg.max_new_tokens
    episodes = [Episode(opening=prompt_tokens(env.reset(o), tokenizer, room, i), history=[{"role": "user", "content": o}])
                for i, o in enumerate(openings)]
    limit = task.world.turn_limit
    for turn in range(limit):
        live = [i for i, ep in enumerate(episodes) if not ep.done]
        if not live:
            break
        candidates = sample_turns(model, tokenizer, [episodes[i].opening + episodes[i].tokens for i in live], n,
                                  replace(sample_cfg, seed=sample_cfg.seed * 101 + turn))
        scored = [with_turn(openings[i], spans_of(tokenizer, episodes[i].tokens, episodes[i].actions),
                            tokenizer.decode(c, skip_special_tokens=True))
                  for i, cands in zip(live, candidates) for c in cands]
        scores = score_conversations(turn_rm, tokenizer, scored)
        for j, i in enumerate(live):
            best = max(range(n), key=lambda k: scores[j * n + k])
            play_turn(episodes[i], candidates[j][best], eos, tokenizer, env, room, last_turn=turn == limit - 1)
    return [Played(o, spans_of(tokenizer, ep.tokens, ep.actions)) for o, ep in zip(openings, episodes)]


# ---- Labels ------------------------------------------------------------------------------------
def distinct(items: list[Played], key) -> list[Played]:
    """First occurrence of each conversation (twins hold no preference)."""
    seen, out = set(), []
    for p in items:
        if key(p) not in seen:
            seen.add(key(p))
            out.append(p)
    return out


def conversation_labels(task: ConversationTask, groups: list[list[Played]], budget: int, seed: int) -> list[dict]:
    """Each group of one opening's conversations ranked whole by one conversation labeler, until
    `budget` pairwise comparisons (a K-way ranking holds C(K, 2))."""
    rng, records, made = random.Random(f"conversation-labels-{seed}"), [], 0
    for group in groups:
        if made >= budget:
            break
        labeler = rng.choice(CONVERSATION_LABELERS)
        order = rank_conversations(labeler, task.world, group[0].opening, [p.messages for p in group], rng)
        ranked = distinct([group[i] for i in order], key=lambda p: p.spans)
        if len(ranked) < 2:
            continue
        records.append({"prompt": group[0].opening, "episodes": [episode_record(p.conversation())["episode"]
                                                                  for p in ranked], "labeler": labeler.name})
        made += len(ranked) * (len(ranked) - 1) // 2
    return records


def turn_states(played: list[Played], seed: int) -> list[tuple[str, tuple[Span, ...]]]:
    """One state per conversation, in a shuffled order: its opening and the spans before one of
    its turns, drawn at random."""
    rng, states = random.Random(f"turn-states-{seed}"), []
    for p in played:
        starts = [i for i, s in enumerate(p.spans) if s.action]
        states.append((p.opening, p.spans[:rng.choice(starts)]))
    rng.shuffle(states)
    return states


def turn_labels(model, tokenizer, states: list[tuple[str, tuple[Span, ...]]], k: int, budget: int,
                sample_cfg: SampleConfig, seed: int) -> list[dict]:
    """k candidate turns sampled at each state, ranked on their own by one turn labeler, until
    `budget` pairwise comparisons."""
    rng, records, made, chunk = random.Random(f"turn-labels-{seed}"), [], 0, sample_cfg.batch_size
    for start in range(0, len(states), chunk):     # sampled a batch at a time, until the budget is met
        if made >= budget:
            break
        batch = states[start:start + chunk]
        contexts = [conversation_tokens(Conversation(o, h), tokenizer)[0] for o, h in batch]
        for (opening, history), cands in zip(batch, sample_turns(model, tokenizer, contexts, k,
                                                                  replace(sample_cfg, seed=sample_cfg.seed + start))):
            if made >= budget:
                break
            texts = list(dict.fromkeys(tokenizer.decode(c, skip_special_tokens=True) for c in cands))
            if len(texts) < 2:
                continue
            labeler = rng.choice(TURN_LABELERS)
            ranked = [texts[i] for i in rank_turns(labeler, [t.strip() for t in texts], rng)]
            records.append({"prompt": opening, "labeler": labeler.name,
                            "episodes": [episode_record(with_turn(opening, history, t))["episode"] for t in ranked]})
            made += len(ranked) * (len(ranked) - 1) // 2
    return records


def comparisons_in(records: list[dict]) -> int:
    return sum(len(r["episodes"]) * (len(r["episodes"]) - 1) // 2 for r in records)


def make_labels(cfg: ConversationDemoConfig, task: ConversationTask, seed: int, d: Path) -> dict:
    """Train and valid comparisons of both kinds from SFT's conversations; their counts."""
    done = d / "labels" / "counts.json"
    if cfg.resume and done.is_file():         # a function of SFT and the seed
        return json.loads(done.read_text())
    model, tok = load_causal_lm(d / "sft")
    counts = {}
    for split, budget, k in (("train", cfg.label_budget, cfg.label_k), ("valid", 10**9, 2)):
        # a quarter more openings than the budget needs: a ranking of twins holds fewer comparisons
        n_open = min(task.size(split), -(-budget * 5 // (4 * (k * (k - 1) // 2))))
        openings = task.prompts(split)[:n_open]
        label_sample = replace(cfg.sample, seed=10_000 + 100 * seed + k)
        played = play(model, tok, task, [o for o in openings for _ in range(k)], label_sample)
        groups = [played[i * k:(i + 1) * k] for i in range(n_open)]
        conv = conversation_labels(task, groups, budget, seed)
        turns = turn_labels(model, tok, turn_states(played, seed), k, budget, label_sample, seed)
        suffix = "" if split == "train" else "_valid"
        write_jsonl(d / "labels" / f"conversations{suffix}.jsonl", conv)
        write_jsonl(d / "labels" / f"turns{suffix}.jsonl", turns)
        counts[split] = {"conversation_comparisons": comparisons_in(conv), "turn_comparisons": comparisons_in(turns),
                         "conversations_sampled": len(played), "turn_states": len(turns)}
    done.write_text(json.dumps(counts, indent=2) + "\n")
    return counts


# ---- Methods -----------------------------------------------------------------------------------
def train_method(cfg: ConversationDemoConfig, method: str, task: ConversationTask, seed: int, d: Path,
                 on_step) -> tuple[str, dict]:
    """Train one method; (its policy directory, its training budget)."""
    sft_dir, labels, out = str(d / "sft"), d / "labels", d / method
    sample_cfg = replace(cfg.sample, seed=20_000 + seed, max_turns=task.world.turn_limit)
    n = cfg.sample_n
    if method in ("turn_dpo", "conv_dpo"):
        kind = "turns" if method == "turn_dpo" else "conversations"
        r = preference.run_dpo(DPOConfig(model=sft_dir, data=str(labels / f"{kind}.jsonl"),
                                         valid_data=str(labels / f"{kind}_valid.jsonl"), out=str(out),
                                         resume=cfg.resume, beta=cfg.dpo_beta, train=replace(cfg.pref, seed=seed)))
        return str(out / "model"), {"episodes": 0, "turn_candidates": 1, "ranking_accuracy": r["valid_accuracy"]}
    if method in ("turn_rsft", "conv_rsft"):
        # turn_rsft: episodes / n conversations, n candidate turns at each turn (the sampled turns of
        # `episodes` conversations); conv_rsft: n whole conversations for each of episodes / n openings
        openings, data = task.prompts("train")[:cfg.episodes // n], out / "selected.jsonl"
        if not (cfg.resume and data.is_file()):     # a function of SFT, the reward model and the seed
            model, tok = load_causal_lm(sft_dir)
            if method == "turn_rsft":
                chosen = play_turn_bon(model, tok, load_reward_model(d / "turn_rm", tok), task, openings, n,
                                       sample_cfg)
            else:
                played = play(model, tok, task, [o for o in openings for _ in range(n)], sample_cfg)
                scores = score_conversations(load_reward_model(d / "conv_rm", tok), tok,
                                             [p.conversation() for p in played])
                chosen = [played[max(range(i * n, (i + 1) * n), key=scores.__getitem__)] for i in range(len(openings))]
            write_jsonl(data, [episode_record(p.conversation()) for p in chosen])
        sft.run(SFTConfig(model=sft_dir, data=str(data), out=str(out / "train"), resume=cfg.resume,
                          train=replace(cfg.sl, seed=seed)))
        return str(out / "train" / "model"), {"episodes": len(openings) * (n if method == "conv_rsft" else 1),
                                              "turn_candidates": n if method == "turn_rsft" else 1}
    # ---- RL on the conversation reward model; the environment only answers. Both algorithms
    # sample rl.prompts_per_step conversations per iteration (rloo: that many / k openings, k each),
    # so they make the same number of updates from the same number of episodes
    prompts = cfg.rl.prompts_per_step // (cfg.rl.k if method == "rloo" else 1)
    rl.run(RLConfig(algo=method, policy=sft_dir, reward_model=str(d / "conv_rm"), prompts="conversation",
                    env_reward=False, out=str(out), resume=cfg.resume, task=task.cfg,
                    rl=replace(cfg.rl, steps=cfg.episodes // cfg.rl.prompts_per_step, prompts_per_step=prompts,
                               seed=seed), ppo=cfg.ppo, sample=sample_cfg), on_step=on_step)
    return str(out / "model"), {"episodes": cfg.episodes, "turn_candidates": 1}


def gold_hook(task: ConversationTask):
    """Mean gold return of each RL iteration's episodes: logged beside the proxy, never trained on."""
    def hook(step: int, prompts: list[str], completions: list[str], proxy: list[float]) -> dict:
        gold = task.gold(prompts, completions)
        return {"gold": sum(gold) / len(gold)}
    return hook


# ---- Evaluation --------------------------------------------------------------------------------
def episode_row(task: ConversationTask, p: Played) -> dict:
    """What the report reads of one conversation."""
    v = episode_verdict(task.world, p.opening, p.messages)
    return {"gold_return": v.score, "turn_reward_sum": sum(turn_rewards(p.messages)), "turns": v.turns,
            "told": v.told, "answered": v.answered, "self_contradictions": v.self_contradictions, "kl": p.kl}


def evaluate_policies(cfg: ConversationDemoConfig, task: ConversationTask, policies: dict[str, str],
                      d: Path) -> tuple[dict, dict]:
    """Every policy converses once with each held-out opening (turn_bon: n candidates per turn);
    per-conversation rows and the texts."""
    openings = task.prompts("test")[:cfg.n_prompts]
    ref_model, tok = load_causal_lm(d / "sft")
    rows, texts = {}, {}
    eval_sample = replace(cfg.sample, max_turns=task.world.turn_limit)
    for name, path in policies.items():
        if name == "turn_bon":
            played = play_turn_bon(ref_model, tok, load_reward_model(d / "turn_rm", tok), task, openings,
                                   cfg.sample_n, eval_sample)
        else:
            played = play(load_causal_lm(path)[0], tok, task, openings, eval_sample, kl_ref=ref_model)
        rows[name] = [episode_row(task, p) for p in played]
        texts[name] = [p.opening + "".join(s.text for s in p.spans) for p in played]
    return rows, texts


def selection_ceiling(cfg: ConversationDemoConfig, task: ConversationTask, d: Path) -> list[dict]:
    """Gold best-of-n over SFT conversations, n = 1, 2, 4, ..., ceiling_n: what selection alone
    reaches, and for how many sampled conversations per opening."""
    openings = task.prompts("test")[:cfg.ceiling_prompts]
    model, tok = load_causal_lm(d / "sft")
    n = cfg.ceiling_n
    played = play(model, tok, task, [o for o in openings for _ in range(n)], replace(cfg.sample, seed=30_000))
    gold = [episode_row(task, p)["gold_return"] for p in played]
    curve, m = [], 1
    while m <= n:
        best = [max(gold[i * n:i * n + m]) for i in range(len(openings))]
        curve.append({"n": m, "gold_return": sum(best) / len(best)})
        m *= 2
    return curve


# ---- One dose, one seed ------------------------------------------------------------------------
def seed_fingerprint(cfg: ConversationDemoConfig, events: int, seed: int) -> dict:
    """What one dose and seed's results depend on: the config but the run's own list of doses and seeds
    and the fields no job's identity counts (out, resume, threads, tracking...)."""
    return {k: v for k, v in config_fingerprint(cfg, set()).items() if k not in ("events", "seeds")} | \
        {"dose": events, "seed": seed}


def run_seed(cfg: ConversationDemoConfig, events: int, seed: int, d: Path) -> dict:
    done = d / "results.json"
    if cfg.resume and done.is_file():       # finished by this run or an earlier one with the same settings
        result = json.loads(done.read_text())
        if result.get("fingerprint") == json.loads(json.dumps(seed_fingerprint(cfg, events, seed))):
            return result
    task = ConversationTask(replace(cfg.task, events=events))
    clock = Stopwatch()
    # ---- 1. SFT on the mixed-skill transcripts
    sft.run(SFTConfig(model=cfg.base_model, data="conversation", out=str(d / "sft"), resume=cfg.resume,
                      task=task.cfg, train=replace(cfg.sft, seed=seed)))
    clock.lap("sft")
    # ---- 2. Labels of whole conversations and of single turns, from SFT's own conversations
    counts = make_labels(cfg, task, seed, d)
    clock.lap("labels")
    # ---- 3. The two reward models
    rms = {}
    for kind, name in (("conversations", "conv_rm"), ("turns", "turn_rm")):
        rms[name] = reward_model.run(RMConfig(model=str(d / "sft"), data=str(d / "labels" / f"{kind}.jsonl"),
                                              valid_data=str(d / "labels" / f"{kind}_valid.jsonl"),
                                              out=str(d / name), resume=cfg.resume, train=replace(cfg.rm, seed=seed)))
    clock.lap("rm")
    # ---- 4. Every method from the same SFT policy, labels and reward models
    policies, budgets = {"sft": str(d / "sft")}, {}
    for method in cfg.method_list:
        if method == "turn_bon":   # inference-time: it converses at evaluation
            policies[method], budgets[method] = "", {"episodes": 0, "turn_candidates": cfg.sample_n}
        else:
            policies[method], budgets[method] = train_method(cfg, method, task, seed, d, gold_hook(task))
        clock.lap(method)
    # ---- 5. Every policy on the same held-out openings, and the selection ceiling
    rows, texts = evaluate_policies(cfg, task, policies, d)
    clock.lap("eval")
    ceiling = selection_ceiling(cfg, task, d)
    clock.lap("ceiling")
    reference = [task.episode_return(o, m) for o, m in zip(task.prompts("test")[:cfg.n_prompts],
                                                          task.transcripts("test", "thorough"))]
    result = report.seed_result(cfg, events, seed, rows, reference, budgets, counts, rms, ceiling, texts,
                                clock.seconds)
    result["fingerprint"] = seed_fingerprint(cfg, events, seed)
    report.write_json(done, result)
    return result


def run(cfg: ConversationDemoConfig) -> dict:
    cfg.validate()
    cfg = spread_report_to(cfg)
    out, t0 = Path(cfg.out), time.time()
    per_dose: dict[int, list[dict]] = {e: [] for e in cfg.doses}
    for seed in range(cfg.seeds):      # seed-major: a sweep cut short still has every dose
        for events in cfg.doses:
            per_dose[events].append(run_seed(cfg, events, seed, out / f"E{events}" / f"seed{seed}"))
    results = report.aggregate(cfg, per_dose) | {"config": to_dict(cfg), "wall_time_s": round(time.time() - t0, 1)}
    report.write_json(out / "results.json", results)
    report.write_markdown(out / "report.md", results)
    return {"out": str(out), "wall_time_s": results["wall_time_s"],
            "gold_return": {k: v["gold_return"]["mean"] for k, v in results["methods"].items()},
            "claims": {k: v["supported"] for k, v in results["claims"].items()}}
