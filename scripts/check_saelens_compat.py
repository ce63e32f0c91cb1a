"""Do SAELens and llmasos read each other's SAE files? Decided by running both.

SAELens is not a dependency, so it lives in a scratch virtual environment outside the repo::

    python3 -m venv /tmp/saelens-venv
    /tmp/saelens-venv/bin/pip install torch==2.13.0
    /tmp/saelens-venv/bin/pip install sae-lens
    python scripts/check_saelens_compat.py --saelens-python /tmp/saelens-venv/bin/python

The script runs twice over one scratch directory: here (our side) it writes SAEs with
``lw.save_sae`` and a fixed input; then, run by the SAELens interpreter with ``--side
saelens``, it loads those files with ``SAE.load_from_disk``, encodes and decodes the input, and
writes SAEs of its own with ``save_model``; back here, ``lw.load_sae`` reads SAELens's files
and every encode/decode pair is compared. The result goes to
bench/results/saelens_compat.json with both sides' package versions.

The SAELens side imports nothing of ours: it only needs torch, numpy and sae_lens.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "results" / "saelens_compat.json"
D_IN, D_SAE, K, ROWS = 16, 48, 4, 32
TOLERANCE = 1e-5  # float32 throughout; both sides do the same arithmetic in another order

# ours -> SAELens: (name, activation, input_scale, fold_input_scale)
OURS = [
    ("topk", "topk", 1.0, False),
    ("relu", "relu", 1.0, False),
    ("jumprelu", "jumprelu", 1.0, False),
    ("topk_scaled_folded", "topk", 2.5, True),
    ("topk_scaled_scaler_file", "topk", 2.5, False),
]
THEIRS = ["topk", "standard", "jumprelu"]  # SAELens -> ours, by SAELens architecture


def _our_side_write(work: Path) -> None:
    import torch

    from llmasos_widgets.features import SAEConfig, SparseAutoencoder, save_sae

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(ROWS, D_IN, generator=generator) * 3
    np.save(work / "input.npy", x.numpy())
    for name, activation, scale, fold in OURS:
        config = SAEConfig(
            d_in=D_IN,
            d_sae=D_SAE,
            site=3,
            activation=activation,
            k=K if activation == "topk" else None,
            input_scale=scale,
        )
        sae = SparseAutoencoder(config)
        with torch.no_grad():
            for parameter in sae.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
            if activation == "jumprelu":
                sae.threshold.copy_(torch.rand(D_SAE, generator=generator) * 0.5)
            features = sae.encode(x)
            np.savez(
                work / f"ours_{name}.npz",
                features=features.numpy(),
                reconstruction=sae.decode(features).numpy(),
            )
        save_sae(sae, work / f"ours_{name}", fold_input_scale=fold)


def _saelens_side(work: Path) -> None:
    """Run by the SAELens interpreter: read ours, write theirs."""
    import sae_lens
    import torch
    from sae_lens import (
        SAE,
        JumpReLUSAE,
        JumpReLUSAEConfig,
        StandardSAE,
        StandardSAEConfig,
        TopKSAE,
        TopKSAEConfig,
    )
    from sae_lens.saes.sae import SAEMetadata

    x = torch.from_numpy(np.load(work / "input.npy"))
    report: dict[str, object] = {
        "versions": {
            "sae-lens": sae_lens.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "read_ours": {},
    }
    for name, *_ in OURS:
        try:
            sae = SAE.load_from_disk(work / f"ours_{name}")
            with torch.no_grad():
                features = sae.encode(x)
                np.savez(
                    work / f"saelens_reads_{name}.npz",
                    features=features.numpy(),
                    reconstruction=sae.decode(features).numpy(),
                )
            report["read_ours"][name] = {"loaded": True, "class": type(sae).__name__}  # type: ignore[index]
        except Exception as error:  # recorded, not hidden: this is what the check is for
            report["read_ours"][name] = {"loaded": False, "error": repr(error)}  # type: ignore[index]
    generator = torch.Generator().manual_seed(1)
    metadata = SAEMetadata(hook_name="blocks.3.hook_resid_post", model_name="tiny-llama")
    builders = {
        "topk": lambda: TopKSAE(TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K, metadata=metadata)),
        "standard": lambda: StandardSAE(
            StandardSAEConfig(d_in=D_IN, d_sae=D_SAE, metadata=metadata)
        ),
        "jumprelu": lambda: JumpReLUSAE(
            JumpReLUSAEConfig(d_in=D_IN, d_sae=D_SAE, metadata=metadata)
        ),
    }
    for name in THEIRS:
        sae = builders[name]()
        with torch.no_grad():
            for parameter_name, parameter in sae.named_parameters():
                values = torch.randn(parameter.shape, generator=generator) * 0.3
                if parameter_name == "threshold":
                    values = values.abs()
                parameter.copy_(values)
            features = sae.encode(x)
            np.savez(
                work / f"theirs_{name}.npz",
                features=features.numpy(),
                reconstruction=sae.decode(features).numpy(),
            )
        sae.save_model(work / f"theirs_{name}")
    (work / "saelens_side.json").write_text(json.dumps(report, indent=2))


def _compare(expected: Path, actual: Path) -> dict[str, object]:
    a, b = np.load(expected), np.load(actual)
    features = float(np.abs(a["features"] - b["features"]).max())
    reconstruction = float(np.abs(a["reconstruction"] - b["reconstruction"]).max())
    same_support = bool(((a["features"] > 0) == (b["features"] > 0)).all())
    return {
        "max_abs_diff_features": features,
        "max_abs_diff_reconstruction": reconstruction,
        "same_active_latents": same_support,
        "equal": same_support and max(features, reconstruction) <= TOLERANCE,
    }


def _our_side_read(work: Path) -> dict[str, object]:
    import torch

    from llmasos_widgets.features import load_sae

    x = torch.from_numpy(np.load(work / "input.npy"))
    results: dict[str, object] = {}
    for name in THEIRS:
        try:
            sae = load_sae(work / f"theirs_{name}")
        except Exception as error:  # recorded, as on the other side
            results[name] = {"loaded": False, "error": repr(error)}
            continue
        with torch.no_grad():
            features = sae.encode(x)
            np.savez(
                work / f"ours_reads_{name}.npz",
                features=features.numpy(),
                reconstruction=sae.decode(features).numpy(),
            )
        results[name] = {
            "loaded": True,
            "activation": sae.config.activation,
            "site": sae.site,
            **_compare(work / f"theirs_{name}.npz", work / f"ours_reads_{name}.npz"),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saelens-python", help="the interpreter of a venv with sae-lens")
    parser.add_argument("--side", choices=["ours", "saelens"], default="ours")
    parser.add_argument("--work", type=Path, help="scratch directory (--side saelens)")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    if args.side == "saelens":
        _saelens_side(args.work)
        return
    if not args.saelens_python:
        parser.error("--saelens-python is required: the interpreter of a venv with sae-lens")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        _our_side_write(work)
        command = [args.saelens_python, __file__, "--side", "saelens", "--work", str(work)]
        subprocess.run(command, check=True, cwd=tempfile.gettempdir())
        theirs = json.loads((work / "saelens_side.json").read_text())
        read_ours = {}
        for name, activation, scale, fold in OURS:
            entry = dict(theirs["read_ours"][name])
            entry.update(activation=activation, input_scale=scale, fold_input_scale=fold)
            if entry["loaded"]:
                entry.update(
                    _compare(work / f"ours_{name}.npz", work / f"saelens_reads_{name}.npz")
                )
            read_ours[name] = entry
        pip_check = subprocess.run(
            [args.saelens_python, "-m", "pip", "check"], capture_output=True, text=True
        )
        result = {
            "what": "SAELens loads files written by lw.save_sae, and lw.load_sae loads files "
            "written by SAELens's save_model; each compared by encode/decode of one fixed "
            f"input [{ROWS}, {D_IN}] (d_sae {D_SAE}, k {K}), tolerance {TOLERANCE}",
            "command": "python scripts/check_saelens_compat.py --saelens-python "
            "/tmp/saelens-venv/bin/python",
            "saelens_venv": {
                **theirs["versions"],
                "install": "pip install torch==2.13.0, then pip install sae-lens",
                "pip_check": pip_check.stdout.strip(),
                "packages_in_venv": len(_pip_list(args.saelens_python)),
            },
            "note_on_scaler_file": "SAELens's SAE.load_from_disk does not read "
            "activation_scaler.json: for normalize_activations 'expected_average_only_in' it "
            "folds a factor only in from_pretrained, for releases in its registry "
            "(sae_lens/saes/sae.py). A scaled SAE meant for SAELens is saved with "
            "lw.save_sae(..., fold_input_scale=True).",
            "ours": {
                "llmasos-widgets": version("llmasos-widgets"),
                "torch": torch_version(),
                "python": platform.python_version(),
            },
            "saelens_reads_ours": read_ours,
            "ours_reads_saelens": _our_side_read(work),
        }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _pip_list(python: str) -> list[object]:
    listing = subprocess.run(
        [python, "-m", "pip", "list", "--format", "json"], capture_output=True, text=True
    )
    packages: list[object] = json.loads(listing.stdout)
    return packages


def torch_version() -> str:
    import torch

    return str(torch.__version__)


if __name__ == "__main__":
    sys.exit(main())
