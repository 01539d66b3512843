"""
The prompt format, shared by training and sampling. The image tokens come before the text;
the text is one question and its answer:

    Q: what colour is the object at the top left? A: red<|endoftext|>
    Q: describe the image. A: a large red striped circle at the top left<|endoftext|>

The loss is only on the answer and the end-of-text token (the model is not asked to predict
the question), so generation stops at <|endoftext|>.
"""

CAPTION_QUESTION = "describe the image."  # captioning is one more question


def vqa_prompt(question):
    return f"Q: {question.strip()} A:"


def caption_prompt():
    return vqa_prompt(CAPTION_QUESTION)


def answer_text(answer):
    return " " + answer.strip()


def answer_of(tok, ids):
    """Generated token ids -> the answer text: up to the first end-of-text token, where it stops."""
    return tok.decode(ids[:ids.index(tok.eot_token)] if tok.eot_token in ids else ids).strip()


def encode_example(tok, prompt, answer, block_size):
    """Token ids idx and next-token targets (both lists of len(prompt + answer + EOT) - 1).

    targets[i] is the token after idx[i], or -1 where that token is still part of the prompt
    (ignored by cross_entropy(ignore_index=-1)): the loss is on the answer and EOT only.
    """
    p = tok.encode_ordinary(prompt)
    a = tok.encode_ordinary(answer_text(answer)) + [tok.eot_token]
    full = p + a
    if len(full) - 1 > block_size:
        raise ValueError(f"example of {len(full) - 1} tokens does not fit block_size={block_size}: "
                         f"{(prompt + answer_text(answer))[:60]!r}...; raise block_size or shorten the text")
    idx = full[:-1]
    targets = [-1] * (len(p) - 1) + a
    return idx, targets
