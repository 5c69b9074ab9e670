"""Tiny random models of each supported architecture, with a small trained BPE tokenizer.

No hub and no downloads: the tokenizer is trained here on a few sentences and the models are
built from transformers configs with random weights.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

TEXT = [
    "Harry Potter is a wizard who studies at Hogwarts with Ron and Hermione.",
    "Albert Einstein developed the theory of relativity in physics.",
    "The Eiffel Tower stands in Paris, the capital of France.",
    "Please answer the question about the world. Tell me about a random person.",
    "Choose the best answer about science. Write the answer about history.",
    "Write something about cooking bread, growing tomatoes and riding bicycles.",
    "Here is a fact about the moon: it orbits the Earth. Everyone knows that water is wet.",
] * 3

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@functools.cache
def tiny_tokenizer(chat: bool = True) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    from tokenizers import decoders

    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(TEXT, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    return fast


_OLMO_TOKENS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}


def tiny_config(arch: str, vocab: int):
    import transformers as tf

    common = dict(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=256,
    )
    # model_type -> (config class, extra arguments) for the Llama-shaped decoders
    llama_like = {
        "llama": ("LlamaConfig", {}),
        "mistral": ("MistralConfig", {}),
        "qwen2": ("Qwen2Config", {}),
        "qwen3": ("Qwen3Config", {"head_dim": 8}),
        "gemma": ("GemmaConfig", {"head_dim": 8}),
        "gemma2": ("Gemma2Config", {"head_dim": 8}),
        "gemma3_text": ("Gemma3TextConfig", {"head_dim": 8}),
        "phi3": ("Phi3Config", {"pad_token_id": 0}),
        # OLMo's defaults name token ids of its own 50k vocabulary; use the tiny tokenizer's
        "olmo": ("OlmoConfig", _OLMO_TOKENS),
        "olmo2": ("Olmo2Config", _OLMO_TOKENS),
    }
    if arch in llama_like:
        name, extra = llama_like[arch]
        return getattr(tf, name)(**common, num_key_value_heads=2, **extra)
    # the rest name their sizes differently; "opt" is deliberately unsupported
    others = {
        "gpt2": ("GPT2Config", {"n_embd": 32, "n_inner": 64, "n_layer": 4, "n_head": 4, "n_positions": 256}),
        "gpt_neox": ("GPTNeoXConfig", {k: v for k, v in common.items() if k != "vocab_size"}),
        "opt": (
            "OPTConfig",
            {
                "hidden_size": 32,
                "ffn_dim": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "word_embed_proj_dim": 32,
                "max_position_embeddings": 256,
            },
        ),
    }
    if arch in others:
        name, sizes = others[arch]
        return getattr(tf, name)(vocab_size=vocab, **sizes)
    raise ValueError(arch)


SUPPORTED = [
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3_text",
    "phi3",
    "olmo",
    "olmo2",
    "gpt2",
    "gpt_neox",
]


def save_tiny_model(
    arch: str, directory: Path, *, chat: bool = True, seed: int = 0, random_vectors: bool = False
) -> Path:
    """A random ``arch`` model and the tiny tokenizer saved in ``directory``.

    ``random_vectors`` also perturbs every vector parameter (norm gains, biases) by U(-0.5, 0.5),
    so norms are not the identity up to a scale: a gain of 1 everywhere hides an edit that skips
    a norm whenever the norm's input happens to have an RMS near 1.
    """
    from transformers import AutoModelForCausalLM

    tok = tiny_tokenizer(chat)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(arch, len(tok)))
    with torch.no_grad():  # larger random weights so keys are far from zero
        for p in model.parameters():
            if p.ndim == 2:
                p.normal_(0, 0.2)
            elif random_vectors and p.ndim == 1:
                p.add_(torch.rand_like(p) - 0.5)
    model.save_pretrained(directory, safe_serialization=True)
    tok.save_pretrained(directory)
    return directory


def write_corpus(path: Path, n_docs: int = 60) -> Path:
    import random

    rng = random.Random(0)
    words = " ".join(TEXT).split()
    docs = [" ".join(rng.choice(words) for _ in range(60)) for _ in range(n_docs)]
    path.write_text("\n\n".join(docs))
    return path
