"""Real tokenizer kinds built offline with ``tokenizers``, for tests and benchmarks.

* :func:`sentencepiece_tokenizer`: BPE with byte fallback and a Metaspace pre-tokenizer, the
  LLaMA-2 / Mistral layout: ids 0-2 are ``<unk> <s> </s>``, ids 3-258 the byte pieces
  ``<0x00>``..``<0xFF>``, then the trained pieces; ``<s>`` is prepended.
* :func:`word_level_tokenizer`: one token per whitespace-separated word of a fixed vocabulary
  (the random-init models of the tests and benches, and the bundled language's layout).
* :func:`byte_level_tokenizer`: byte-level BPE (ByteLevel pre-tokenizer and decoder), the
  LLaMA-3 / Qwen2 layout, with ``<|begin_of_text|>`` prepended.

Both are trained on :data:`CORPUS` (English, Chinese, accented Latin, emoji). The corpus
leaves out 示, 例 and 。 so the SentencePiece tokenizer spells them with byte pieces, and the
byte-level vocabulary is small enough that Chinese characters are split across tokens.
:func:`llama_for` pairs a tokenizer with a random-init LLaMA of its vocabulary size.
"""

from __future__ import annotations

import json
from typing import Any

CHINESE_EXAMPLE = "这是一段示例文本。"
"""The seed's own example text."""

CORPUS = [
    "The keys to the cabinet are on the table.",
    "The cat sat on the mat, and the dog sat on the rug.",
    "A café in the old town serves crème brûlée and a naïve résumé of the day.",
    "Über den Wolken ist die Freiheit grenzenlos.",
    "这是一段文本。这是中文的句子",
    "这是一个文本，一段中文文本",
    "我们喜欢这段文本",
    "Good morning 🙂 see you soon 🚀",
    "Numbers like 2024 and 3.14 appear too.",
]

WORD_SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]
"""Ids 0-3 of :func:`word_level_tokenizer` vocabularies built by the tests and benches."""
SENTENCEPIECE_SPECIALS = ["<unk>", "<s>", "</s>"]
BYTE_LEVEL_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>"]


def word_level_tokenizer(
    vocabulary: list[str],
    *,
    bos: str = "<bos>",
    eos: str = "<eos>",
    pad: str = "<pad>",
    unk: str = "<unk>",
    prepend_bos: bool = True,
    max_length: int | None = None,
) -> Any:
    """A word-level fast tokenizer: token ``i`` is ``vocabulary[i]`` (specials included), words
    split on whitespace, unknown words -> ``unk``, ``bos`` prepended unless ``prepend_bos`` is
    off. Offline; shared by tests/conftest.py and the benches so both tokenize alike."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(vocabulary)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if prepend_bos:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, vocab[bos])]
        )
    limits = {} if max_length is None else {"model_max_length": max_length}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        unk_token=unk,
        **limits,
    )


def sentencepiece_tokenizer(vocab_size: int = 120) -> Any:
    """A LLaMA-2-like tokenizer: ``▁`` word starts, byte fallback for unseen characters."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    trainer_model = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer_model.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SENTENCEPIECE_SPECIALS, show_progress=False
    )
    trainer_model.train_from_iterator(CORPUS, trainer)
    trained = json.loads(trainer_model.to_str())["model"]
    pieces = [p for p, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1])]
    ordered = [
        *SENTENCEPIECE_SPECIALS,
        *(f"<0x{b:02X}>" for b in range(256)),
        *(p for p in pieces if p not in SENTENCEPIECE_SPECIALS),
    ]
    vocab = {piece: i for i, piece in enumerate(ordered)}
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    backend = Tokenizer(
        models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True)
    )
    backend.add_special_tokens(SENTENCEPIECE_SPECIALS)
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    backend.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", vocab["<s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=256,
    )


def byte_level_tokenizer(vocab_size: int = 300) -> Any:
    """A LLaMA-3-like tokenizer: bytes as printable characters (``Ġ`` = space)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=BYTE_LEVEL_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS, trainer)
    bos = BYTE_LEVEL_SPECIALS[0]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, backend.token_to_id(bos))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=BYTE_LEVEL_SPECIALS[1],
        model_max_length=256,
    )


def llama_for(tokenizer: Any, *, layers: int = 2, heads: int = 4, seed: int = 0) -> Any:
    """A random-init LLaMA (GQA, sdpa) whose vocabulary is the tokenizer's."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=256,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(config).eval()
