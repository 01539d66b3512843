"""
The tokenizer: a tiktoken byte-level BPE whose merges were trained on our own training text.

Why not GPT-2's encoding: tiktoken downloads it on first use, and we must work offline; and its
50257-token vocabulary would make the embedding table the biggest part of a tiny GPT. Our text
has a few dozen distinct words, so ~500 tokens encode nearly every word as one token. Being
byte-level, it still encodes any text (your own data, unicode), only in more tokens.

$ python -m data.tokenizer    # retrain the merges and rewrite data/tokenizer.tiktoken
"""
import base64
import collections
import functools
import os

import numpy as np
import regex
import tiktoken

EOT = "<|endoftext|>"
VOCAB_SIZE = 640  # 256 bytes + merges + EOT (fewer if the corpus runs out of pairs to merge)
PAT_STR = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""  # GPT-2's split
RANKS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokenizer.tiktoken")


@functools.cache
def get_tokenizer(path=RANKS_PATH):
    """The tiktoken Encoding, built from the committed ranks file (no network)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found; run: python -m data.tokenizer")
    ranks = {}
    with open(path) as f:  # tiktoken's format: base64(token bytes) rank, one per line
        for line in f:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(name="sparsecut", pat_str=PAT_STR, mergeable_ranks=ranks,
                             special_tokens={EOT: len(ranks)})


def encode(text):
    """Ordinary text -> token ids (a literal '<|endoftext|>' in text is encoded as plain bytes)."""
    return get_tokenizer().encode_ordinary(text)


def decode(ids):
    return get_tokenizer().decode(list(ids))


def train_bpe(text, vocab_size=VOCAB_SIZE):
    """Byte-pair merges learned on text -> mergeable ranks {token bytes: rank}, the 256 bytes first.

    Same algorithm as tiktoken._educational.bpe_train (repeatedly merge the most frequent
    adjacent pair inside each regex word), but over the distinct words with their counts, so it
    takes a second instead of minutes.
    """
    ranks = {bytes([b]): b for b in range(256)}
    words = collections.Counter(regex.findall(PAT_STR, text))
    parts = [[bytes([b]) for b in w.encode("utf-8")] for w in words]
    counts = list(words.values())
    while len(ranks) < vocab_size - 1:  # the last id is the EOT token
        pairs = collections.Counter()
        for p, c in zip(parts, counts):
            for pair in zip(p, p[1:]):
                pairs[pair] += c
        if not pairs:
            break  # every word is a single token already
        best = max(pairs, key=lambda pr: (pairs[pr], pr))  # ties broken by bytes: deterministic
        merged = best[0] + best[1]
        ranks[merged] = len(ranks)
        for k, p in enumerate(parts):
            i, out = 0, []
            while i < len(p):
                if i + 1 < len(p) and (p[i], p[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(p[i])
                    i += 1
            parts[k] = out
    return ranks


def training_text(n_scenes=4000, seed=0):
    """The text the model trains on: prompts and answers of generated train scenes."""
    from data.prompt import answer_text, caption_prompt, vqa_prompt
    from data.shapes import questions as Q
    from data.shapes import render as R
    rng = np.random.default_rng([seed, 0])
    # 'absent' came after the committed merges: new merges would renumber the tokens of every trained
    # model, so its one new word ('nothing') is spelt in 4 tokens, like any text the merges never saw
    types = [t for t in Q.QUESTION_TYPES if t != "absent"]
    lines = []
    for _ in range(n_scenes):
        objects = R.sample_scene(rng, 1, 4)
        lines.append(caption_prompt() + answer_text(Q.caption(objects)))
        for held_out in (False, True):  # the held-out wordings too: their words are single tokens like the rest
            lines += [vqa_prompt(q["question"]) + answer_text(q["answer"]) for q in Q.questions(objects, rng, types, held_out=held_out)]
    # every word the generator can use, so rare ones (counts up to nine) also get their own token
    lines.append(" ".join(R.SHAPES + list(R.COLOURS) + R.SIZES + R.TEXTURES + R.POSITIONS + Q.NUMBERS))
    return "\n".join(lines)


if __name__ == "__main__":
    ranks = train_bpe(training_text())
    with open(RANKS_PATH, "w") as f:
        f.writelines(f"{base64.b64encode(t).decode()} {r}\n" for t, r in sorted(ranks.items(), key=lambda x: x[1]))
    get_tokenizer.cache_clear()
    tok = get_tokenizer()
    sample = "Q: what colour is the object at the top left? A: red"
    print(f"wrote {RANKS_PATH}: {len(ranks)} ranks + EOT = n_vocab {tok.n_vocab}")
    print(f"{sample!r} -> {[tok.decode([t]) for t in encode(sample)]}")
