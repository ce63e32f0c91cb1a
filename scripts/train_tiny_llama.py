"""Rebuild the bundled ``tiny-llama`` checkpoint from scratch, deterministically.

    python scripts/train_tiny_llama.py            # writes llmasos_widgets/models/tiny-llama/

Builds a word-level tokenizer for the synthetic language (``llmasos_widgets.language``),
trains a small grouped-query-attention ``LlamaForCausalLM`` on agreement sentences mixed with
repeated random sequences, evaluates it on the held-out split, finds its induction and
previous-token heads with eager attention, and writes the checkpoint, ``eval.json`` and
``MODEL_CARD.md``. Same seed, same thread count, same machine -> same weights.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing the package

from llmasos_widgets import language  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "llmasos_widgets" / "models" / "tiny-llama"
CONTEXT_LENGTH = 128


def build_tokenizer(*, padding_side: str) -> PreTrainedTokenizerFast:
    """Word-level tokenizer: lower-cases, splits on whitespace and punctuation, prepends <bos>."""
    vocab = {word: i for i, word in enumerate(language.vocabulary())}
    backend = Tokenizer(WordLevel(vocab=vocab, unk_token=language.UNK))
    # Lowercase + punctuation split so "The keys are on the table." tokenizes like the corpus.
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single=f"{language.BOS} $A",
        pair=f"{language.BOS} $A $B:1",
        special_tokens=[(language.BOS, vocab[language.BOS])],
    )
    backend.add_special_tokens(list(language.SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=language.BOS,
        eos_token=language.EOS,
        pad_token=language.PAD,
        unk_token=language.UNK,
        padding_side=padding_side,
        model_max_length=CONTEXT_LENGTH,
    )


def build_model(args: argparse.Namespace, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden,
        intermediate_size=4 * args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=CONTEXT_LENGTH,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.set_attn_implementation("sdpa")  # saved in config.json: the fast kernel by default
    return model


def pad_batch(
    sequences: list[list[int]], pad_id: int, *, padding_side: str = "right"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both int64 [batch, longest]."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        start = width - len(seq) if padding_side == "left" else 0
        ids[row, start : start + len(seq)] = torch.tensor(seq)
        mask[row, start : start + len(seq)] = 1
    return ids, mask


def learning_rate(step: int, *, peak: float, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def ignored_prefix(document: str) -> int:
    """Tokens at the start of a document (with <bos>) whose prediction is not trained.

    The first half of a copy sequence is uniformly random: its loss is pure noise that
    swamped the learnable signal (in a trial run neither induction nor agreement appeared in
    3000 steps), so only the repeat is trained. Agreement sentences (they end in ".", which
    copy sequences never contain) are trained on every token.
    """
    if document.endswith(language.PERIOD):
        return 0
    return 1 + len(document.split()) // 2


def train(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, args: argparse.Namespace
) -> dict[str, Any]:
    n_documents = args.steps * args.batch_size
    t0 = time.perf_counter()
    corpus = language.training_corpus(
        n_documents,
        seed=args.seed,
        copy_fraction=args.copy_fraction,
        min_copy_length=args.min_copy_length,
        max_copy_length=args.max_copy_length,
    )
    eos = tokenizer.eos_token_id
    documents = [[*ids, eos] for ids in tokenizer(corpus)["input_ids"]]
    ignored = [ignored_prefix(doc) for doc in corpus]
    print(f"corpus: {n_documents} documents in {time.perf_counter() - t0:.1f} s", flush=True)

    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01
    )
    model.train()
    t_train = time.perf_counter()
    running = []
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, peak=args.lr, warmup=args.warmup, total=args.steps)
        rows = slice(step * args.batch_size, (step + 1) * args.batch_size)
        input_ids, attention_mask = pad_batch(documents[rows], tokenizer.pad_token_id)
        labels = input_ids.masked_fill(attention_mask == 0, -100)
        for row, n_ignored in enumerate(ignored[rows]):
            labels[row, :n_ignored] = -100
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        running.append(loss.item())
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            elapsed = time.perf_counter() - t_train
            print(
                f"step {step + 1:5d}/{args.steps}  loss {np.mean(running):.4f}  {elapsed:6.1f} s",
                flush=True,
            )
            running = []
    model.eval()
    return {"train_seconds": round(time.perf_counter() - t_train, 1), "final_loss": loss.item()}


@torch.no_grad()
def agreement_accuracy(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, examples: list[Any]
) -> float:
    """Fraction of prompts where P(correct verb) > P(wrong verb) at the verb position."""
    encoded = [tokenizer(ex.text)["input_ids"] for ex in examples]
    input_ids, attention_mask = pad_batch(encoded, tokenizer.pad_token_id)
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    # Logits at the last prompt token (word verb_index - 1 = token verb_index) predict the verb.
    rows = torch.arange(len(examples))
    at_verb = logits[rows, torch.tensor([ex.verb_index for ex in examples])]
    correct = torch.tensor(tokenizer.convert_tokens_to_ids([ex.correct_verb for ex in examples]))
    wrong = torch.tensor(tokenizer.convert_tokens_to_ids([ex.wrong_verb for ex in examples]))
    return float((at_verb[rows, correct] > at_verb[rows, wrong]).float().mean())


@torch.no_grad()
def copy_accuracy(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, examples: list[Any]
) -> float:
    """Top-1 accuracy on the repeat, excluding its first token (not predictable from context)."""
    hits, total = 0, 0
    for ex in examples:
        ids = torch.tensor([tokenizer(ex.text)["input_ids"]])
        predicted = model(input_ids=ids).logits[0].argmax(-1)
        p = ex.period
        # Tokens p+2..2p (<bos> is 0) are predicted by the logits at p+1..2p-1.
        hits += int((predicted[p + 1 : 2 * p] == ids[0, p + 2 : 2 * p + 1]).sum())
        total += p - 1
    return hits / total


@torch.no_grad()
def head_scores(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, examples: list[Any]
) -> dict[str, np.ndarray]:
    """Induction and previous-token scores per [layer, head], from eager attention weights.

    induction: mean attention from each token of the repeat (i >= p+1) to i - p + 1, the
    token after its first occurrence. previous_token: mean attention from i >= 1 to i - 1.
    """
    induction, previous = [], []
    for ex in examples:
        ids = torch.tensor([tokenizer(ex.text)["input_ids"]])
        attentions = model(input_ids=ids, output_attentions=True).attentions
        pattern = torch.stack([a[0] for a in attentions])  # [layer, head, query, key]
        p, n_tokens = ex.period, ids.shape[1]
        queries = torch.arange(p + 1, n_tokens)
        induction.append(pattern[:, :, queries, queries - p + 1].mean(-1))
        queries = torch.arange(1, n_tokens)
        previous.append(pattern[:, :, queries, queries - 1].mean(-1))
    return {
        "induction": torch.stack(induction).mean(0).numpy(),
        "previous_token": torch.stack(previous).mean(0).numpy(),
    }


@torch.no_grad()
def previous_token_scores(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, texts: list[str]
) -> np.ndarray:
    """Mean attention from each token i >= 1 to i - 1, per [layer, head], over ``texts``."""
    per_text = []
    for text in texts:
        ids = torch.tensor([tokenizer(text)["input_ids"]])
        pattern = torch.stack(
            [a[0] for a in model(input_ids=ids, output_attentions=True).attentions]
        )
        queries = torch.arange(1, ids.shape[1])
        per_text.append(pattern[:, :, queries, queries - 1].mean(-1))
    return torch.stack(per_text).mean(0).numpy()


@torch.no_grad()
def residual_at(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, examples: list[Any]
) -> torch.Tensor:
    """[layer + 1, example, hidden] at each probed word; 0 = embeddings, last = after norm."""
    encoded = [tokenizer(ex.text)["input_ids"] for ex in examples]
    input_ids, attention_mask = pad_batch(encoded, tokenizer.pad_token_id)
    hidden = model(
        input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
    ).hidden_states
    rows = torch.arange(len(examples))
    positions = torch.tensor([ex.position + 1 for ex in examples])  # +1 for <bos>
    return torch.stack([h[rows, positions] for h in hidden])


def linear_probe_accuracy(
    train_x: torch.Tensor, train_y: list[str], test_x: torch.Tensor, test_y: list[str]
) -> float:
    """Test accuracy of a ridge-regression classifier (targets +-1) fit on the train set."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    x = torch.cat([(train_x - mean) / std, torch.ones(len(train_x), 1)], 1).double()
    y = torch.tensor([1.0 if v == "plural" else -1.0 for v in train_y]).double()
    weights = torch.linalg.solve(x.T @ x + 1.0 * torch.eye(x.shape[1]).double(), x.T @ y)
    test = torch.cat([(test_x - mean) / std, torch.ones(len(test_x), 1)], 1).double()
    truth = torch.tensor([v == "plural" for v in test_y])
    return float(((test @ weights > 0) == truth).float().mean())


def number_probe(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, n: int, seed: int
) -> dict[str, Any]:
    """Per-layer linear-probe accuracy for subject number (and, as control, the attractor's
    own number) at the attractor noun; probes fit on the train split, scored on test."""
    train = language.number_probe_examples(n, seed=seed, split="train")
    test = language.number_probe_examples(n, seed=seed, split="test")
    train_x, test_x = residual_at(model, tokenizer, train), residual_at(model, tokenizer, test)
    accuracy: dict[str, list[float]] = {}
    for name, field in (("subject_number", "label"), ("attractor_number", "control_label")):
        train_y, test_y = [getattr(e, field) for e in train], [getattr(e, field) for e in test]
        accuracy[name] = [
            round(linear_probe_accuracy(train_x[i], train_y, test_x[i], test_y), 4)
            for i in range(len(train_x))
        ]
    return {"train_examples": n, "test_examples": n, "accuracy_by_layer": accuracy}


def evaluate(out: Path, tokenizer: PreTrainedTokenizerFast, args: argparse.Namespace) -> dict:
    """Measure the saved checkpoint (reloaded from disk) on the held-out split."""
    model = LlamaForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    eval_seed = args.seed + 1000  # any seed works: the test split is disjoint by the hash rule
    agreement = language.agreement_examples(args.eval_examples, seed=eval_seed, split="test")
    by_condition = {}
    for subject in language.NUMBERS:
        for attractor in language.NUMBERS:
            subset = [
                e for e in agreement if (e.number, e.attractor_number) == (subject, attractor)
            ]
            by_condition[f"{subject}_subject_{attractor}_attractor"] = round(
                agreement_accuracy(model, tokenizer, subset), 4
            )
    lengths = range(args.min_copy_length, args.max_copy_length + 1)
    copy_by_length = {
        length: copy_accuracy(
            model,
            tokenizer,
            language.copy_examples(50, length=length, seed=eval_seed + length, split="test"),
        )
        for length in lengths
    }
    induction_examples = language.copy_examples(
        100, length=args.score_length, seed=eval_seed, split="test"
    )
    scores = head_scores(model, tokenizer, induction_examples)
    induction = scores["induction"]
    # Layer-0 heads may track the previous token on random text but not on sentences.
    on_sentences = previous_token_scores(model, tokenizer, [e.sentence for e in agreement[:200]])
    longer = language.copy_examples(50, length=30, seed=eval_seed, split="test")
    top_by_period = {}
    for period in lengths:  # is the strongest induction head the same at every period?
        examples = language.copy_examples(20, length=period, seed=eval_seed, split="test")
        by_period = head_scores(model, tokenizer, examples)["induction"]
        top_by_period[str(period)] = [
            int(i) for i in np.unravel_index(by_period.argmax(), by_period.shape)
        ]
    return {
        "number_probe": number_probe(model, tokenizer, 1000, eval_seed),
        "agreement_accuracy": agreement_accuracy(model, tokenizer, agreement),
        "agreement_accuracy_by_condition": by_condition,
        "agreement_examples": len(agreement),
        "copy_accuracy": round(float(np.mean(list(copy_by_length.values()))), 4),
        "copy_accuracy_by_length": {str(k): round(v, 4) for k, v in copy_by_length.items()},
        "copy_examples_per_length": 50,
        "copy_accuracy_length_30": round(copy_accuracy(model, tokenizer, longer), 4),
        "eval_seed": eval_seed,
        "head_score_examples": {"n": len(induction_examples), "period": args.score_length},
        "induction_head": [int(i) for i in np.unravel_index(induction.argmax(), induction.shape)],
        "induction_heads_above_half": np.argwhere(induction > 0.5).tolist(),
        "strongest_induction_head_by_period": top_by_period,
        "previous_token_head": [0, int(scores["previous_token"][0].argmax())],
        "previous_token_head_on_sentences": [0, int(on_sentences[0].argmax())],
        "sentence_score_examples": 200,
        "induction_scores": np.round(induction.astype(np.float64), 4).tolist(),
        "previous_token_scores": np.round(scores["previous_token"].astype(np.float64), 4).tolist(),
        "previous_token_scores_on_sentences": np.round(on_sentences.astype(np.float64), 4).tolist(),
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _score_table(scores: list[list[float]]) -> str:
    header = "| layer | " + " | ".join(f"head {h}" for h in range(len(scores[0]))) + " |"
    rule = "|---" * (len(scores[0]) + 1) + "|"
    rows = [
        f"| {layer} | " + " | ".join(f"{v:.3f}" for v in row) + " |"
        for layer, row in enumerate(scores)
    ]
    return "\n".join([header, rule, *rows])


def model_card(report: dict[str, Any], config: LlamaConfig) -> str:
    """MODEL_CARD.md text; every figure in it comes from ``report`` (eval.json)."""
    tr = report["training"]
    ind_layer, ind_head = report["induction_head"]
    _, prev_head = report["previous_token_head"]
    n_nouns = len(language.NOUN_PAIRS)
    heads_data = report["head_score_examples"]
    copy_share = tr["copy_fraction"]
    by_condition = ", ".join(
        f"{k.replace('_subject_', '/').replace('_attractor', '')}: {100 * v:.1f}%"
        for k, v in report["agreement_accuracy_by_condition"].items()
    )
    top_by_period = report["strongest_induction_head_by_period"]
    sentence_prev = report["previous_token_scores_on_sentences"]
    sentence_prev_head = report["previous_token_head_on_sentences"][1]
    probe = report["number_probe"]
    n_hidden = len(probe["accuracy_by_layer"]["subject_number"])
    first_decodable = next(
        (i for i, v in enumerate(probe["accuracy_by_layer"]["subject_number"]) if v >= 0.9), None
    )
    probe_subject = ", ".join(
        f"{100 * v:.1f}%" for v in probe["accuracy_by_layer"]["subject_number"]
    )
    probe_control = ", ".join(
        f"{100 * v:.1f}%" for v in probe["accuracy_by_layer"]["attractor_number"]
    )
    n_same_top = sum(top == [ind_layer, ind_head] for top in top_by_period.values())
    induction_heads = "; ".join(
        f"layer {layer}, head {head}" for layer, head in report["induction_heads_above_half"]
    )
    by_length = ", ".join(
        f"{k}: {100 * v:.1f}%" for k, v in report["copy_accuracy_by_length"].items()
    )
    return f"""<!-- Generated from eval.json and config.json by model_card() of
scripts/train_tiny_llama.py; `python bench/tables.py` rewrites it and its `--check`
(a unit test) fails if it differs. Do not edit by hand. -->
# tiny-llama: a model we understand

A {tr["parameters"]:,}-parameter `LlamaForCausalLM` trained from scratch on a synthetic
word-level language whose mechanisms are known by construction, so that attention, saliency
and probing results have a known right answer. Generated by `scripts/train_tiny_llama.py`;
every figure below is copied from `eval.json` written by the same run.

## The language (`llmasos_widgets.language`)
Vocabulary: {len(language.vocabulary())} words, one token each: 4 special tokens
(`<pad>` = 0, `<bos>`, `<eos>`, `<unk>`), {len(language.DETERMINERS)} number-neutral determiners,
{n_nouns} nouns in singular and plural form ({2 * n_nouns} words, irregular plurals included),
{len(language.VERB_PAIRS)} verb pairs (is/are, was/were, has/have),
{len(language.ADJECTIVES)} adjectives, {len(language.PREPOSITIONS)} prepositions and `.`.
Every word has one part of speech (`pos_tags`).

Each training document is (probabilities {1 - copy_share:.2f} and {copy_share:.2f}):
* **agreement**: `DET [ADJ] NOUN_subj (PREP DET [ADJ] NOUN_attr){{0,2}} VERB COMPLEMENT .`,
  e.g. `the key near the cabinets is on the table .` The attractors' numbers are drawn
  independently of the subject's, so only the subject noun predicts the verb's number.
* **copying**: 5 to 20 distinct random nouns/adjectives, then the same sequence again,
  e.g. `teeth red keys box teeth red keys box`. The repeat is predictable only by induction.

The tokenizer (`tokenizers` WordLevel) lower-cases, splits on whitespace and punctuation,
and prepends `<bos>`: word `i` of a text is token `i + 1`. Out-of-vocabulary words become `<unk>`.

Held-out split: a prompt (words before the verb) or a copy sequence (its first half) belongs
to `test` when a blake2b hash of its words falls in 1 of 5 buckets. Training documents are
drawn only from the `train` side, so no held-out prompt or copy sequence was ever trained on.

## Architecture
`LlamaForCausalLM`, {config.num_hidden_layers} layers, hidden size {config.hidden_size},
MLP {config.intermediate_size}, {config.num_attention_heads} attention heads sharing
{config.num_key_value_heads} key/value heads (grouped-query attention, head dim {config.head_dim}),
RoPE, RMSNorm, tied input/output embeddings, context {config.max_position_embeddings} tokens,
trained with `attn_implementation="sdpa"` (also what `from_pretrained` picks by default;
load with `attn_implementation="eager"` to get attention weights); float32 safetensors.

## Training run
{tr["steps"]} steps of {tr["batch_size"]} documents (one per row, right-padded),
AdamW (betas 0.9/0.98, weight decay 0.01), peak learning rate
{tr["peak_lr"]}, {tr["warmup_steps"]} warm-up steps then cosine decay to 10%, gradient clipping 1.0,
seed {tr["seed"]}, deterministic algorithms, {tr["threads"]} CPU thread(s).
Training took {tr["train_seconds"]:.0f} s and the whole script {tr["total_seconds"]:.0f} s on
{report["machine"]} (torch {report["versions"]["torch"]}, transformers
{report["versions"]["transformers"]}); final training-batch loss {tr["final_loss"]:.3f}.
The machine was shared with other jobs, so wall times vary from run to run.

The loss covers every token of agreement sentences but only the repeat of copy sequences
(plus `<eos>`): the random first half has nothing to learn, and with it in the loss a trial
run of the same model, trained twice as long, learned neither agreement nor copying.

## Measured on the held-out split (eval seed {report["eval_seed"]})
* **Agreement**: P(correct verb) > P(wrong verb) at the verb position on
  {report["agreement_examples"]} held-out prompts with one attractor:
  **{100 * report["agreement_accuracy"]:.1f}%** (by subject/attractor number: {by_condition}).
* **Copying**: top-1 accuracy on the repeat, excluding its first token, over
  {report["copy_examples_per_length"]} sequences per length 5-20:
  **{100 * report["copy_accuracy"]:.1f}%** (by length: {by_length}).
  Length 30, longer than any training sequence: {100 * report["copy_accuracy_length_30"]:.1f}%.

The integration tests (`tests/integration/test_bundled_model.py`) assert lower bounds for both
on fresh held-out samples; the README's known-answers table states them.

## Probe-able feature
The subject's number read by a linear probe (ridge regression, fit on
{probe["train_examples"]} train-split prompts, scored on {probe["test_examples"]} test-split
prompts) from the hidden state at the attractor noun -- the last word before the verb, whose
own number is independent of the subject's. Accuracy at hidden-state index 0 (embeddings) to
{n_hidden - 1} (last layer, after the final norm):
subject number {probe_subject}; attractor number (control) {probe_control}.
The subject-number probe first reaches 90% at hidden-state index {first_decodable}.

## Known heads
Measured with eager attention on {heads_data["n"]} held-out repeated sequences of period
{heads_data["period"]}.
* **Induction head: layer {ind_layer}, head {ind_head}** -- highest induction score (mean attention
  from a token of the repeat at position `i` to `i - period + 1`, the token after its first
  occurrence): {report["induction_scores"][ind_layer][ind_head]:.3f}. It is the strongest one
  at {n_same_top} of {len(top_by_period)} periods from 5 to 20 (20 sequences each).
  Heads with induction score > 0.5: {induction_heads}.
* **Previous-token head: layer 0, head {prev_head}** -- highest previous-token score in layer 0
  (mean attention from `i` to `i - 1`): {report["previous_token_scores"][0][prev_head]:.3f}.
* On grammatical text ({report["sentence_score_examples"]} held-out agreement sentences) the
  previous-token score of layer 0, head {prev_head} is
  {sentence_prev[0][prev_head]:.3f}; there the highest in layer 0 is
  layer 0, head {sentence_prev_head} ({sentence_prev[0][sentence_prev_head]:.3f}).

Copy sequences in training are drawn from nouns and adjectives only, so `llmasos.json` in this
folder names those words as `copy_tokens`: `explain()` draws the random sequence of its
induction score from them (for other checkpoints, from every non-special token).

Induction scores `[layer, head]`:

{_score_table(report["induction_scores"])}

Previous-token scores `[layer, head]`, repeated random sequences:

{_score_table(report["previous_token_scores"])}

Previous-token scores `[layer, head]`, agreement sentences:

{_score_table(sentence_prev)}

## Limitations
* A toy: {len(language.vocabulary())} words, sentences of one grammar, no meaning. It is a test
  bed for explanation methods, not a language model of English.
* Only number agreement and copying are trained mechanisms; anything else it does is incidental.
* Text outside the vocabulary becomes `<unk>` and predictions on it are meaningless.
* Agreement was trained with at most two attractor phrases and copying with sequences of at
  most 20 words; longer inputs are out of distribution.
* Head indices hold for this checkpoint only; retraining with other settings can move them.

## Retrain
```
python scripts/train_tiny_llama.py            # same seed and thread count -> same weights
python scripts/train_tiny_llama.py --help     # steps, size, seed, padding side, ...
```
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads (1 is fastest for this size)"
    )
    parser.add_argument("--padding-side", choices=["right", "left"], default="right")
    parser.add_argument("--copy-fraction", type=float, default=0.5)
    parser.add_argument("--eval-examples", type=int, default=1000)
    parser.add_argument("--min-copy-length", type=int, default=5)
    parser.add_argument("--max-copy-length", type=int, default=20)
    parser.add_argument("--score-length", type=int, default=15)
    parser.add_argument("--log-every", type=int, default=250)
    parser.add_argument(
        "--card-only",
        action="store_true",
        help="only rewrite MODEL_CARD.md from the eval.json and config.json already in --out",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.card_only:
        report = json.loads((args.out / "eval.json").read_text())
        config = LlamaConfig.from_pretrained(args.out)
        (args.out / "MODEL_CARD.md").write_text(model_card(report, config))
        return
    t_start = time.perf_counter()
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(args.threads)

    tokenizer = build_tokenizer(padding_side=args.padding_side)
    model = build_model(args, tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters, vocab {len(tokenizer)}", flush=True)
    training = train(model, tokenizer, args)

    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    # The model only ever saw copy sequences of these words: the induction score must use them
    settings = {"copy_tokens": list(language.COPY_WORDS)}
    (args.out / "llmasos.json").write_text(json.dumps(settings, indent=1) + "\n")
    measured = evaluate(args.out, tokenizer, args)
    report = {
        **measured,
        "training": {
            **training,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "peak_lr": args.lr,
            "warmup_steps": args.warmup,
            "copy_fraction": args.copy_fraction,
            "seed": args.seed,
            "threads": args.threads,
            "parameters": n_params,
            "total_seconds": round(time.perf_counter() - t_start, 1),
        },
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
        "machine": f"{cpu_name()} ({os.cpu_count()} cores)",
    }
    (args.out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "MODEL_CARD.md").write_text(model_card(report, model.config))
    print(json.dumps({k: v for k, v in report.items() if "scores" not in k}, indent=2))


if __name__ == "__main__":
    main()
