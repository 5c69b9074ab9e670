"""Turning a user message into model input: the chat template when the tokenizer has one."""

from __future__ import annotations


def uses_chat(tokenizer, chat: bool) -> bool:
    return bool(chat and getattr(tokenizer, "chat_template", None))


def render(tokenizer, text: str, *, chat: bool = True) -> str:
    """The string fed to the model for ``text``: a chat turn awaiting the answer, or plain text."""
    if uses_chat(tokenizer, chat):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
        )
    return text


def add_special_tokens(tokenizer, chat: bool) -> bool:
    """A chat template writes its own BOS; plain text needs the tokenizer to add it."""
    return not uses_chat(tokenizer, chat)


def right_pad(sequences, pad_id: int):
    """(input_ids, attention_mask) for token lists, right-padded so positions stay valid."""
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[i, : len(seq)] = 1
    return ids, mask


def left_pad(sequences, pad_id: int):
    """(input_ids, attention_mask) for token lists, left-padded as batched generation feeds them."""
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        if seq:
            ids[i, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[i, width - len(seq) :] = 1
    return ids, mask


def answer_token_ids(tokenizer, prompt: str, answer: str, *, chat: bool) -> list[int]:
    """The tokens of ``answer`` as they continue ``prompt``: a plain prompt that does not end in
    a space gets one before the answer; a chat turn's answer starts the assistant's message."""
    sep = "" if chat or prompt.endswith((" ", "\n")) else " "
    ids = list(tokenizer(sep + answer, add_special_tokens=False)["input_ids"])
    if not ids:
        raise ValueError(f"answer {answer!r} has no tokens")
    return ids
