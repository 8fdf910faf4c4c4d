import pytest

from rlhfkit.models.lm import ModelError, load_causal_lm, save_atomic


def test_a_tokenizer_that_does_not_match_is_refused(tiny_model_dir, tmp_path, tiny_tokenizer):
    import shutil
    from rlhfkit.models.tokenizer import train_tokenizer
    from rlhfkit.train.pretrain import corpus
    bad = tmp_path / "bad"
    shutil.copytree(tiny_model_dir, bad)
    train_tokenizer(corpus(0, "pretrain", 300), 900).save_pretrained(bad)
    with pytest.raises(ModelError, match="tokenizer has .* tokens but the model embeds only"):
        load_causal_lm(bad)


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ModelError, match="not a Hugging Face model directory"):
        load_causal_lm(tmp_path)


def test_atomic_save_leaves_the_old_directory_when_the_write_fails(tmp_path):
    target = tmp_path / "ckpt"
    save_atomic(target, lambda d: (d / "a").write_text("old"))

    def broken(d):
        (d / "a").write_text("new")
        raise RuntimeError("killed mid-write")
    with pytest.raises(RuntimeError):
        save_atomic(target, broken)
    assert (target / "a").read_text() == "old"


def test_a_stage_directory_loads_its_model(tiny_model_dir):
    model, tok = load_causal_lm(tiny_model_dir.parent)   # the fixture saved into <dir>/model
    assert model.config.vocab_size >= len(tok)
