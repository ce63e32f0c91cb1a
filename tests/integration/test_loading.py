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


def test_unknown_name_suggests_a_close_short_name_and_lists_them_all():
    from llmasos_widgets.models import SHORT_NAMES

    with pytest.raises(ModelNotFoundError, match=r"did you mean 'llama-3.1-8b'\?") as raised:
        load_model("llama-3-8b")
    assert all(f"{short} ({hub_id})" in str(raised.value) for short, hub_id in SHORT_NAMES.items())


def test_a_local_directory_wins_over_a_short_name_of_the_same_spelling(tmp_path, monkeypatch):
    random_llama(seed=4).save_pretrained(tmp_path / "mistral-7b")
    word_tokenizer().save_pretrained(tmp_path / "mistral-7b")
    monkeypatch.chdir(tmp_path)
    model = load_model("mistral-7b", device="cpu")  # no hub involved: this would need network
    assert model.config.num_hidden_layers == 2


@pytest.fixture
def saved_checkpoint(tmp_path):
    random_llama(seed=5).save_pretrained(tmp_path)
    word_tokenizer().save_pretrained(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"trust_remote_code": True}, r"does not run code.*load_model\(hf_model, tokenizer="),
        ({"trust_remote_code": "yes"}, "does not run code"),
        ({"use_safetensors": False}, r"only from safetensors.*save_pretrained\(out_dir\)"),
        ({"use_safetensors": None}, "only from safetensors"),
    ],
)
def test_kwargs_cannot_turn_the_safe_defaults_off(saved_checkpoint, monkeypatch, option, message):
    from transformers import AutoModelForCausalLM

    def never(*args, **kwargs):
        raise AssertionError("weights were loaded although the option was refused")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", never)
    with pytest.raises(ValueError, match=message):
        load_model(str(saved_checkpoint), device="cpu", **option)


def test_config_tokenizer_and_weights_all_load_without_remote_code(saved_checkpoint, monkeypatch):
    """The safe values may be passed explicitly, and reach all three loads."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    seen: dict[str, dict] = {}
    for cls in (AutoConfig, AutoModelForCausalLM, AutoTokenizer):
        original = cls.from_pretrained

        def record(source, *args, _original=original, _name=cls.__name__, **kwargs):
            seen[_name] = kwargs
            return _original(source, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", record)
    load_model(str(saved_checkpoint), device="cpu", trust_remote_code=False, use_safetensors=True)
    assert {name: kwargs["trust_remote_code"] for name, kwargs in seen.items()} == {
        "AutoConfig": False,
        "AutoModelForCausalLM": False,
        "AutoTokenizer": False,
    }
    assert seen["AutoModelForCausalLM"]["use_safetensors"] is True


def test_checkpoint_with_only_pickled_weights_is_refused_with_how_to_convert(tmp_path):
    from llmasos_widgets.models import UnsupportedCheckpointError

    hf_model = random_llama(seed=6)
    hf_model.config.save_pretrained(tmp_path)
    torch.save(hf_model.state_dict(), tmp_path / "pytorch_model.bin")
    word_tokenizer().save_pretrained(tmp_path)
    with pytest.raises(
        UnsupportedCheckpointError, match=r"no safetensors weights.*save_pretrained"
    ):
        load_model(str(tmp_path), device="cpu")


def test_device_map_reaches_from_pretrained_and_nothing_moves_the_model(
    saved_checkpoint, monkeypatch
):
    from transformers import AutoModelForCausalLM

    import llmasos_widgets.models._loading as loading

    def no_move(model, where):
        raise AssertionError(f"load_model moved a device_map model to {where}")

    received: list[dict] = []
    original = AutoModelForCausalLM.from_pretrained

    def record(source, **kwargs):
        received.append(kwargs)
        return original(source, **kwargs)

    monkeypatch.setattr(loading, "_move", no_move)
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", record)
    model = load_model(str(saved_checkpoint), device_map="auto")
    assert received[0]["device_map"] == "auto"
    expected = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    assert received[0]["dtype"] == expected == model.hf_model.dtype  # "auto": bf16 on CUDA


def test_torch_dtype_is_pointed_to_dtype(saved_checkpoint):
    with pytest.raises(TypeError, match="pass dtype=torch.bfloat16 to load_model"):
        load_model(str(saved_checkpoint), torch_dtype=torch.bfloat16)


def test_device_and_device_map_together_are_refused(saved_checkpoint):
    with pytest.raises(ValueError, match="not both"):
        load_model(str(saved_checkpoint), device="cpu", device_map="auto")


def test_options_for_from_pretrained_are_refused_for_an_in_memory_model():
    with pytest.raises(TypeError, match="trust_remote_code.*in-memory"):
        load_model(random_llama(), tokenizer=word_tokenizer(), trust_remote_code=True)


@pytest.mark.parametrize(
    "declared",
    [
        {"quant_method": "torchao", "quant_type": "int8"},
        {"quant_method": "bitsandbytes", "load_in_4bit": True},
        {"quant_method": "gptq", "bits": 4},
        {"quant_method": "awq", "bits": 4},
    ],
    ids=lambda declared: declared["quant_method"],
)
def test_checkpoint_whose_config_declares_quantization_is_refused_before_its_weights(
    saved_checkpoint, monkeypatch, declared
):
    import json

    from transformers import AutoModelForCausalLM

    from llmasos_widgets.models import UnsupportedCheckpointError

    config_file = saved_checkpoint / "config.json"
    config = json.loads(config_file.read_text())
    config["quantization_config"] = declared
    config_file.write_text(json.dumps(config))

    def never(*args, **kwargs):
        raise AssertionError("quantized weights were loaded")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", never)
    method = declared["quant_method"]
    with pytest.raises(UnsupportedCheckpointError, match=rf"quantized with {method}.*bfloat16"):
        load_model(str(saved_checkpoint), device="cpu")


@pytest.mark.parametrize(
    "option",
    [
        {"quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True}},
        {"load_in_8bit": True},
    ],
)
def test_quantization_options_are_refused(saved_checkpoint, option):
    from llmasos_widgets.models import UnsupportedCheckpointError

    with pytest.raises(UnsupportedCheckpointError, match="does not load quantized weights"):
        load_model(str(saved_checkpoint), device="cpu", **option)


def _entries(hf_model, tokenizer):
    """Every way an in-memory model enters: wrapped, loaded, shown."""
    from llmasos_widgets import AttentionWidget
    from llmasos_widgets.models import as_explainable

    return {
        "as_explainable": lambda: as_explainable(hf_model, tokenizer),
        "load_model": lambda: load_model(hf_model, tokenizer=tokenizer),
        "AttentionWidget": lambda: AttentionWidget(hf_model, "w1 w2", tokenizer=tokenizer),
    }


def test_a_float_model_flagged_quantized_by_transformers_is_accepted_everywhere():
    """transformers flags a model loaded from GGUF "quantized with gguf" (``hf_quantizer``,
    ``config.quantization_config``) although its weights were dequantized to float: the
    parameters decide, and these are plain float32."""
    hf_model = random_llama(seed=12)
    hf_model.hf_quantizer = object()  # what transformers sets on a model it "quantized"
    hf_model.is_quantized = True
    hf_model.config.quantization_config = {"quant_method": "gguf"}
    ids = torch.tensor([[2, 5, 6, 7]])
    with torch.no_grad():
        expected = hf_model(ids).logits
    for entry, enter in _entries(hf_model, word_tokenizer()).items():
        entered = enter()
        if entry == "AttentionWidget":
            entered.close()
        else:
            assert entered.hf_model is hf_model
            with torch.no_grad():
                assert torch.equal(entered.hf_model(ids).logits, expected), entry


class Params4bit(torch.nn.Parameter):
    """Stands in for bitsandbytes' Params4bit: a Parameter subclass holding packed data."""


def _int8_weight(linear):
    packed = torch.randint(-128, 127, linear.weight.shape, dtype=torch.int8)
    linear.weight = torch.nn.Parameter(packed, requires_grad=False)


def _float8_weight(linear):
    linear.weight = torch.nn.Parameter(linear.weight.data.to(torch.float8_e4m3fn), False)


def _subclass_weight(linear):
    packed = torch.randint(0, 255, (linear.weight.numel() // 2, 1), dtype=torch.uint8)
    linear.weight = Params4bit(packed, requires_grad=False)


def _float_subclass_weight(linear):
    linear.weight = Params4bit(linear.weight.data.clone(), requires_grad=False)


def _packed_buffer(linear):  # GPTQ/AWQ kernels keep the weight as a qweight buffer
    linear.register_buffer("qweight", torch.zeros(4, 8, dtype=torch.int32))


@pytest.mark.parametrize(
    "quantize",
    [_int8_weight, _float8_weight, _subclass_weight, _float_subclass_weight, _packed_buffer],
    ids=["int8", "float8", "Params4bit-uint8", "Params4bit-float32", "qweight-buffer"],
)
def test_a_model_with_quantized_parameters_is_refused_without_any_flag(quantize):
    from llmasos_widgets.models import UnsupportedCheckpointError

    hf_model = random_llama(seed=13)
    quantize(hf_model.model.layers[1].self_attn.q_proj)
    assert getattr(hf_model, "hf_quantizer", None) is None
    assert getattr(hf_model.config, "quantization_config", None) is None
    for entry, enter in _entries(hf_model, word_tokenizer()).items():
        with pytest.raises(
            UnsupportedCheckpointError,
            match=r"^this model is quantized; .*Load the unquantized checkpoint instead",
        ):
            enter()
            pytest.fail(f"{entry} accepted a quantized model")
