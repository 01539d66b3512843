"""Tests of data/tokenizer.py: offline, exact round trip, small vocabulary."""
import socket

import numpy as np
import pytest

from data import tokenizer
from data.prompt import answer_text, caption_prompt, vqa_prompt
from data.shapes import questions as Q
from data.shapes import render as R


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the tokenizer tried to use the network")
    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    tokenizer.get_tokenizer.cache_clear()  # build it again, under the guard
    yield
    tokenizer.get_tokenizer.cache_clear()


def test_loads_offline_with_small_vocab(no_network):
    tok = tokenizer.get_tokenizer()
    assert 256 < tok.n_vocab <= tokenizer.VOCAB_SIZE
    assert tok.eot_token == tok.n_vocab - 1 and tok.decode([tok.eot_token]) == tokenizer.EOT


def test_round_trip_on_all_generated_text(no_network):
    tok = tokenizer.get_tokenizer()
    rng = np.random.default_rng(1)
    texts = []
    for _ in range(300):
        objects = R.sample_scene(rng, 1, 9)
        texts.append(caption_prompt() + answer_text(Q.caption(objects)))
        texts += [vqa_prompt(q["question"]) + answer_text(q["answer"]) for q in Q.questions(objects, rng)]
    for t in texts:
        assert tokenizer.decode(tokenizer.encode(t)) == t
    # our words are single tokens: short contexts (a 4-object caption prompt fits in 48 tokens)
    assert len(tokenizer.encode("Q: what texture is the object at the middle left? A: striped")) == 15


@pytest.mark.parametrize("text", ["", "Hello, World!", "çà et là — 日本語 🙂\n\ttabs", "<|endoftext|> is plain text here", "\x00\xff"])
def test_round_trip_on_arbitrary_text(text, no_network):
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_committed_ranks_are_up_to_date():
    # fails when the generator's words change: then run python -m data.tokenizer
    ranks = tokenizer.train_bpe(tokenizer.training_text())
    assert ranks == tokenizer.get_tokenizer()._mergeable_ranks
    assert all(ranks[bytes([b])] == b for b in range(256))
