"""The FeatureWidget's card for one latent: logit effects, histogram and examples, as the
small JSON the front end draws (``js/src/features.ts``). Token strings are shown as readers
read them (``display`` text and ``kind``), set as text in the browser."""

from __future__ import annotations

from typing import Any

import numpy as np

from llmasos_widgets._readable_tokens import TokenStyle, show_tokens


def latent_card(
    record: Any, latent: int, activations: np.ndarray, examples: Any = None
) -> dict[str, Any]:
    from llmasos_widgets.features import HISTOGRAM_EDGES

    effects: dict[str, list[Any]] = {"promoted": [], "suppressed": []}
    if latent in record.effect_latents:  # stored for the latents active in the text
        effects = record.logit_effects(latent)
    if examples is not None:
        counts = examples.histogram[latent]
        over = f"{examples.n_tokens} tokens of {examples.n_texts} texts"
        density: float | None = float(examples.density()[latent])
        shown = _examples(examples, latent)
    else:
        positive = activations[activations > 0]
        bins = np.clip(np.searchsorted(HISTOGRAM_EDGES, positive, side="right") - 1, 0, None)
        counts = np.bincount(
            np.minimum(bins, len(HISTOGRAM_EDGES) - 2), minlength=len(HISTOGRAM_EDGES) - 1
        )
        over = f"the {len(activations)} tokens of this text"
        density, shown = None, []
    return {
        "latent": int(latent),
        "max": float(activations.max()) if len(activations) else 0.0,
        "promoted": [[str(t), round(float(v), 4)] for t, v in effects["promoted"]],
        "suppressed": [[str(t), round(float(v), 4)] for t, v in effects["suppressed"]],
        "histogram": {
            "edges": [float(e) for e in HISTOGRAM_EDGES],
            "counts": [int(c) for c in counts],
            "over": over,
        },
        "density": density,
        "examples": shown,
    }


def _examples(examples: Any, latent: int) -> list[dict[str, Any]]:
    style = TokenStyle.from_json(examples.meta.get("token_style"))
    out = []
    for example in examples.examples(latent):
        tokens = show_tokens(example["tokens"], style)
        out.append(
            {
                "tokens": [t.text for t in tokens],
                "kinds": [t.kind for t in tokens],
                "values": [round(float(v), 4) for v in example["values"]],
                "center": example["center"],
                "activation": round(example["activation"], 4),
                "text": example["text"],
            }
        )
    return out
