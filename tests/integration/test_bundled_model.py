"""The bundled tiny-llama checkpoint has the mechanisms its model card claims.

Loads the folder directly with the plain transformers Auto classes (no package code on the
model path), on held-out data drawn with seeds the training script never used.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import llmasos_widgets
from llmasos_widgets import language

CHECKPOINT = Path(llmasos_widgets.__file__).parent / "models" / "tiny-llama"
FRESH_SEED = 20_240_601  # not the training seed nor the eval.json seed
# Known-answer bounds; README.md's table quotes these (bench/tables.py reads them from here).
AGREEMENT_PROMPTS = 400
AGREEMENT_MIN = 0.95
COPY_SEQUENCES = 25  # per length
COPY_LENGTHS = (5, 10, 15, 20)
COPYING_MIN = 0.90


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(CHECKPOINT, local_files_only=True)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(
        CHECKPOINT, local_files_only=True, attn_implementation="eager"
    ).eval()


@pytest.fixture(scope="module")
def card_facts():
    """The figures the training script measured and wrote into MODEL_CARD.md."""
    return json.loads((CHECKPOINT / "eval.json").read_text())


def _batch(tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    return encoded["input_ids"], encoded["attention_mask"]


def test_checkpoint_folder_has_standard_layout():
    names = {p.name for p in CHECKPOINT.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert {"MODEL_CARD.md", "eval.json"} <= names
    assert (CHECKPOINT / "model.safetensors").stat().st_size < 5_000_000


def test_config_is_a_small_grouped_query_llama(model, tokenizer):
    config = model.config
    assert config.model_type == "llama"
    assert config.num_key_value_heads < config.num_attention_heads
    assert config.vocab_size == len(tokenizer) == len(language.vocabulary())
    assert tokenizer.model_max_length == config.max_position_embeddings
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    )


def test_tokenizer_round_trips_every_word(tokenizer):
    words = [w for w in language.vocabulary() if w not in language.SPECIAL_TOKENS]
    text = " ".join(words)
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["<bos>", *words]
    assert ids == [tokenizer.bos_token_id, *tokenizer.convert_tokens_to_ids(words)]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_tokenizer_normalizes_case_and_punctuation(tokenizer):
    tokens = tokenizer.tokenize("The keys to the cabinet are on the table.")
    assert tokens == ["the", "keys", "to", "the", "cabinet", "are", "on", "the", "table", "."]
    assert tokenizer.convert_ids_to_tokens(tokenizer("a gizmo")["input_ids"]) == [
        "<bos>",
        "<unk>",
        "<unk>",
    ]


@torch.no_grad()
def test_agreement_accuracy_on_held_out_prompts(model, tokenizer):
    examples = language.agreement_examples(AGREEMENT_PROMPTS, seed=FRESH_SEED, split="test")
    input_ids, attention_mask = _batch(tokenizer, [ex.text for ex in examples])
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    rows = torch.arange(len(examples))
    # Right padding: the last prompt token (word verb_index - 1 = token verb_index) predicts it.
    at_verb = logits[rows, torch.tensor([ex.verb_index for ex in examples])]
    correct = torch.tensor(tokenizer.convert_tokens_to_ids([ex.correct_verb for ex in examples]))
    wrong = torch.tensor(tokenizer.convert_tokens_to_ids([ex.wrong_verb for ex in examples]))
    accuracy = (at_verb[rows, correct] > at_verb[rows, wrong]).float().mean().item()
    assert accuracy >= AGREEMENT_MIN


@torch.no_grad()
def test_copying_accuracy_on_held_out_sequences(model, tokenizer):
    hits = total = 0
    for length in COPY_LENGTHS:
        examples = language.copy_examples(
            COPY_SEQUENCES, length=length, seed=FRESH_SEED, split="test"
        )
        input_ids, _ = _batch(tokenizer, [ex.text for ex in examples])
        predicted = model(input_ids=input_ids).logits.argmax(-1)
        p = length
        # The repeat's tokens p+2..2p (<bos> is 0) are predicted at positions p+1..2p-1.
        hits += int((predicted[:, p + 1 : 2 * p] == input_ids[:, p + 2 : 2 * p + 1]).sum())
        total += len(examples) * (p - 1)
    assert hits / total >= COPYING_MIN


@pytest.fixture(scope="module")
@torch.no_grad()
def head_scores(model, tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """(induction, previous_token) scores [layer, head] on fresh repeated random text."""
    period = 12
    examples = language.copy_examples(40, length=period, seed=FRESH_SEED + 1, split="test")
    input_ids, _ = _batch(tokenizer, [ex.text for ex in examples])
    attentions = model(input_ids=input_ids, output_attentions=True).attentions
    pattern = torch.stack(attentions, dim=1)  # [batch, layer, head, query, key]
    queries = torch.arange(period + 1, input_ids.shape[1])
    induction = pattern[..., queries, queries - period + 1].mean(dim=(0, -1))
    queries = torch.arange(1, input_ids.shape[1])
    previous = pattern[..., queries, queries - 1].mean(dim=(0, -1))
    return induction, previous


def test_card_induction_head_has_the_highest_induction_score(head_scores, card_facts):
    induction, _ = head_scores
    layer, head = card_facts["induction_head"]
    assert layer >= 1
    assert divmod(int(induction.argmax()), induction.shape[1]) == (layer, head)
    assert induction[layer, head] > 0.5


def test_card_lists_exactly_the_heads_with_induction_score_above_half(head_scores, card_facts):
    induction, _ = head_scores
    assert (induction > 0.5).nonzero().tolist() == card_facts["induction_heads_above_half"]


def test_card_previous_token_head_is_the_most_previous_token_head_of_layer_0(
    head_scores, card_facts
):
    _, previous = head_scores
    layer, head = card_facts["previous_token_head"]
    assert layer == 0
    assert int(previous[0].argmax()) == head
    assert previous[0, head] > 0.5


@torch.no_grad()
def test_card_previous_token_head_on_sentences_is_the_top_one_of_layer_0(
    model, tokenizer, card_facts
):
    examples = language.agreement_examples(60, seed=FRESH_SEED + 2, split="test")
    scores = []
    for ex in examples:
        input_ids = tokenizer(ex.sentence, return_tensors="pt")["input_ids"]
        first_layer = model(input_ids=input_ids, output_attentions=True).attentions[0][0]
        queries = torch.arange(1, input_ids.shape[1])
        scores.append(first_layer[:, queries, queries - 1].mean(-1))  # [head]
    layer, head = card_facts["previous_token_head_on_sentences"]
    assert layer == 0
    assert int(torch.stack(scores).mean(0).argmax()) == head


@torch.no_grad()
def _hidden_at_probed_word(model, tokenizer, examples) -> torch.Tensor:
    """[layer + 1, example, hidden] at each example's probed word (+1 for <bos>)."""
    input_ids, attention_mask = _batch(tokenizer, [ex.text for ex in examples])
    hidden = model(
        input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
    ).hidden_states
    rows = torch.arange(len(examples))
    positions = torch.tensor([ex.position + 1 for ex in examples])
    return torch.stack([h[rows, positions] for h in hidden])


def _ridge_probe_accuracy(train_x, train_y, test_x, test_y) -> float:
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    x = torch.cat([(train_x - mean) / std, torch.ones(len(train_x), 1)], 1).double()
    y = torch.tensor([1.0 if v == "plural" else -1.0 for v in train_y]).double()
    weights = torch.linalg.solve(x.T @ x + torch.eye(x.shape[1]).double(), x.T @ y)
    test = torch.cat([(test_x - mean) / std, torch.ones(len(test_x), 1)], 1).double()
    truth = torch.tensor([v == "plural" for v in test_y])
    return float(((test @ weights > 0) == truth).float().mean())


def test_subject_number_is_linearly_decodable_at_the_attractor_only_late(model, tokenizer):
    train = language.number_probe_examples(400, seed=FRESH_SEED, split="train")
    test = language.number_probe_examples(400, seed=FRESH_SEED, split="test")
    train_x = _hidden_at_probed_word(model, tokenizer, train)
    test_x = _hidden_at_probed_word(model, tokenizer, test)

    def accuracy(layer: int, field: str) -> float:
        return _ridge_probe_accuracy(
            train_x[layer],
            [getattr(ex, field) for ex in train],
            test_x[layer],
            [getattr(ex, field) for ex in test],
        )

    # The embedding of the attractor knows its own number but not the subject's ...
    assert accuracy(0, "control_label") >= 0.95
    assert accuracy(0, "label") <= 0.65
    # ... and after the last layer the subject's number has been moved there.
    assert accuracy(len(train_x) - 1, "label") >= 0.95


def test_model_card_states_the_measured_heads_and_figures(card_facts):
    card = (CHECKPOINT / "MODEL_CARD.md").read_text()
    for key in ("induction_head", "previous_token_head"):
        layer, head = card_facts[key]
        assert f"layer {layer}, head {head}" in card
    percent = re.escape(f"{100 * card_facts['agreement_accuracy']:.1f}%")
    assert re.search(percent, card)
