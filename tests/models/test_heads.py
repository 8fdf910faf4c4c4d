import pytest
import torch

from rlhfkit.models.heads import last_token_index, scalar_model_from_lm, sequence_rewards, token_values
from rlhfkit.models.lm import ModelError


def test_head_is_initialised_small(tiny_model_dir):
    model, _ = scalar_model_from_lm(tiny_model_dir)
    d = model.config.hidden_size
    assert abs(model.score.weight.std().item() - (1 / (d + 1)) ** 0.5) < 0.08


def test_reward_is_read_at_the_last_real_token_whatever_the_padding(tiny_model_dir):
    model, tok = scalar_model_from_lm(tiny_model_dir)
    ids = torch.tensor([[5, 6, 7, 8]])
    alone = sequence_rewards(model, ids, torch.ones_like(ids))
    pad = tok.pad_token_id
    right = torch.tensor([[5, 6, 7, 8, pad, pad]])
    left = torch.tensor([[pad, pad, 5, 6, 7, 8]])
    r_right = sequence_rewards(model, right, torch.tensor([[1, 1, 1, 1, 0, 0]]))
    r_left = sequence_rewards(model, left, torch.tensor([[0, 0, 1, 1, 1, 1]]))
    assert torch.allclose(alone, r_right, atol=1e-5) and torch.allclose(alone, r_left, atol=1e-5)


def test_last_token_index():
    assert last_token_index(torch.tensor([[1, 1, 0], [0, 1, 1], [1, 0, 0]])).tolist() == [1, 2, 0]


def test_reward_offset_is_subtracted(tiny_model_dir):
    model, _ = scalar_model_from_lm(tiny_model_dir)
    ids = torch.tensor([[5, 6, 7]])
    before = sequence_rewards(model, ids, torch.ones_like(ids))
    model.config.reward_offset = 1.5
    assert torch.allclose(sequence_rewards(model, ids, torch.ones_like(ids)), before - 1.5)


def test_a_model_without_a_score_head_is_named():
    from transformers import BertConfig, BertForSequenceClassification
    bert = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=16, num_labels=1))
    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(ModelError, match="BertForSequenceClassification: no `score` head"):
        token_values(bert, ids, torch.ones_like(ids))
