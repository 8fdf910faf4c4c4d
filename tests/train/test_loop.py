import torch

from rlhfkit.config import TrainConfig
from rlhfkit.data.collate import encode_text
from rlhfkit.models.lm import load_causal_lm
from rlhfkit.train.job import Job
from rlhfkit.train.loop import batch_at, fit
from rlhfkit.train.pretrain import corpus


def test_data_order_covers_each_example_once_per_epoch():
    examples = list(range(10))
    seen = [x for step in range(4) for x in batch_at(examples, step, 3, seed=0)]
    assert sorted(seen) == examples


def _job(cfg, out):
    return Job.begin("test", cfg, resume=True, out=out)


def _examples(tok):
    return [encode_text(d, tok, 320) for d in corpus(0, "pretrain", 24)]


def test_resume_after_a_kill_matches_an_uninterrupted_run(tiny_model_dir, tmp_path, kill_at_step):
    cfg = TrainConfig(lr=1e-2, batch_size=4, epochs=2, warmup_steps=2, checkpoint_every=5)
    model, tok = load_causal_lm(tiny_model_dir)
    fit(model, tok, _examples(tok), cfg, tmp_path / "full", job=_job(cfg, tmp_path / "full"))

    # the same run killed while building the batch of step 8; its checkpoint of step 5 survives
    model, tok = load_causal_lm(tiny_model_dir)
    kill_at_step(lambda: fit(model, tok, _examples(tok), cfg, tmp_path / "cut", job=_job(cfg, tmp_path / "cut")), 8)
    assert not (tmp_path / "cut" / "model").exists()
    model, tok = load_causal_lm(tiny_model_dir)
    fit(model, tok, _examples(tok), cfg, tmp_path / "cut", job=_job(cfg, tmp_path / "cut"))

    full, _ = load_causal_lm(tmp_path / "full")
    resumed, _ = load_causal_lm(tmp_path / "cut")
    for (name, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_training_lowers_the_loss(tiny_model_dir, tmp_path):
    import json
    model, tok = load_causal_lm(tiny_model_dir)
    cfg = TrainConfig(lr=1e-2, batch_size=4, epochs=3, warmup_steps=2)
    fit(model, tok, _examples(tok), cfg, tmp_path / "r", job=_job(cfg, tmp_path / "r"))
    losses = [json.loads(line)["loss"] for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 1.0   # at least one nat lower


def test_batches_grouped_by_length_cover_each_item_once_and_pad_less():
    import random
    from rlhfkit.train.loop import epoch_batches
    rng = random.Random(0)
    lengths = [rng.randint(50, 200) for _ in range(1000)]
    for epoch in range(2):
        grouped = epoch_batches(1000, epoch, 0, 16, lengths)
        plain = epoch_batches(1000, epoch, 0, 16)
        assert sorted(i for b in grouped for i in b) == list(range(1000)) and len(grouped) == len(plain)
        padded = sum(max(lengths[i] for i in b) * len(b) for b in grouped)
        assert padded < 0.85 * sum(max(lengths[i] for i in b) * len(b) for b in plain)
        assert grouped == epoch_batches(1000, epoch, 0, 16, lengths)      # a function of (seed, epoch): resumable
    assert epoch_batches(1000, 0, 0, 16, lengths) != epoch_batches(1000, 1, 0, 16, lengths)
    # batches are not served shortest first: the data order stays random
    means = [sum(lengths[i] for i in b) / len(b) for b in epoch_batches(1000, 0, 0, 16, lengths)]
    assert sorted(means) != means


def test_a_budget_sums_its_logs_steps_tokens_samples_and_calls(tmp_path):
    from rlhfkit.train.loop import budget
    (tmp_path / "fit.jsonl").write_text('{"step": 1, "answer_tokens": 30}\n{"step": 2, "answer_tokens": 12}\n')
    (tmp_path / "rl.jsonl").write_text('{"step": 1, "optimizer_steps": 4, "answer_tokens": 100, "episodes": 64, '
                                        '"reward_calls": 64}\n')
    assert budget([tmp_path / "fit.jsonl"], samples=10, reward_calls=10) == {
        "samples": 10, "reward_calls": 10, "optimizer_steps": 2, "answer_tokens": 42}
    assert budget([tmp_path / "fit.jsonl", tmp_path / "rl.jsonl"]) == {
        "samples": 64, "reward_calls": 64, "optimizer_steps": 6, "answer_tokens": 142}
