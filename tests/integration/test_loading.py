"""load_model: one code path for names, paths, cached hub ids and in-memory models; clear errors."""

from __future__ import annotations

import pytest
import torch

from llmasos_widgets import load_model
from llmasos_widgets.models import ExplainableModel, ModelNotFoundError
from llmasos_widgets.tracing import UnsupportedArchitectureError
from tests.conftest import random_llama, word_tokenizer


def test_local_directory_loads_through_the_same_path_as_the_bundled_name(tmp_path):
    hf_model = random_llama(seed=3)
    hf_model.save_pretrained(tmp_path)
    word_tokenizer().save_pretrained(tmp_path)
    model = load_model(str(tmp_path), device="cpu")
    assert isinstance(model, ExplainableModel)
    ids = model.encode("w1 w2 w3")
    with torch.no_grad():
        assert torch.equal(model.hf_model(ids).logits, hf_model(ids).logits)


def test_in_memory_model_is_wrapped_not_copied():
    hf_model = random_llama()
    model = load_model(hf_model, tokenizer=word_tokenizer())
    assert model.hf_model is hf_model


def test_in_memory_model_without_tokenizer_says_what_to_pass():
    with pytest.raises(TypeError, match="tokenizer="):
        load_model(random_llama())


def test_unknown_name_lists_bundled_models_and_suggests_the_close_one():
    with pytest.raises(
        ModelNotFoundError, match=r"did you mean 'tiny-llama'\?.*Bundled models: tiny-llama.*path"
    ):
        load_model("tiny-lama")


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not a directory"):
        load_model(str(tmp_path / "nowhere" / "model"))


def test_uncached_hub_id_while_offline_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="hf download some-org/some-model"):
        load_model("some-org/some-model")


def test_unsupported_architecture_names_the_supported_ones(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64)).save_pretrained(
        tmp_path
    )
    with pytest.raises(UnsupportedArchitectureError, match="gpt2.*llama"):
        load_model(str(tmp_path))


@pytest.mark.parametrize("device", ["cuda:7", "tpu", "not a device"])
def test_devices_that_do_not_exist_are_refused(device):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    with pytest.raises(ValueError, match="device"):
        load_model("tiny-llama", device=device)


def test_unknown_dtype_lists_valid_ones():
    with pytest.raises(ValueError, match="bfloat16"):
        load_model("tiny-llama", dtype="float8")


def test_bundled_model_loads_offline_in_float32_on_cpu(bundled):
    assert bundled.config.model_type == "llama"
    assert bundled.config.num_key_value_heads < bundled.config.num_attention_heads
    assert bundled.hf_model.dtype == torch.float32
    assert bundled.device.type == "cpu"


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("", ValueError, "empty"),
        ("   ", ValueError, "empty"),
        (None, TypeError, "str"),
        (["the", "key"], TypeError, "str"),
    ],
)
def test_bad_text_gets_a_clear_error(tiny_random, text, error, message):
    with pytest.raises(error, match=message):
        tiny_random.encode(text)


def test_too_long_text_names_the_limit_and_the_option(tiny_random):
    text = " ".join(["w1"] * 100)
    with pytest.raises(ValueError, match="at most 64.*truncate=True"):
        tiny_random.encode(text)
    assert tiny_random.encode(text, truncate=True).shape == (1, 64)


def test_hub_id_in_the_local_cache_loads_offline(monkeypatch, tmp_path):
    """A hub id resolves from the Hugging Face cache layout without any network access."""
    snapshot = tmp_path / "models--some-org--tiny" / "snapshots" / ("0" * 40)
    hf_model = random_llama(seed=11)
    hf_model.save_pretrained(snapshot)
    word_tokenizer().save_pretrained(snapshot)
    (tmp_path / "models--some-org--tiny" / "refs").mkdir()
    (tmp_path / "models--some-org--tiny" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    model = load_model("some-org/tiny", device="cpu")
    ids = model.encode("w4 w5")
    with torch.no_grad():
        assert torch.equal(model.hf_model(ids).logits, hf_model(ids).logits)
