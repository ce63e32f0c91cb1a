"""Lazy tracing: capture post-RoPE q/k and the residual stream, rebuild patterns on demand.

```python
with trace(hf_model) as tr:
    hf_model(input_ids=ids, attention_mask=mask)
tr.attention(layer, batch=0)   # float32 [head, query, key], exact
```

The attention arithmetic on captured q/k (scores, the mask rule, soft-capping, grouped-query
heads, row normalisers) is here too, so every later layer computes it the same way.
"""

from llmasos_widgets.models import (  # re-exported: trace refuses what models refuses
    SUPPORTED_ARCHITECTURES,
    UnsupportedArchitectureError,
    check_supported,
)
from llmasos_widgets.tracing._anatomy import Anatomy, anatomy, decoder_layers, eval_mode, site_label
from llmasos_widgets.tracing._attention_arithmetic import (
    AttentionSpec,
    all_visible,
    attention_pattern,
    cell_weights,
    first_visible_key,
    kv_head,
    mask_invisible_,
    paired_weights,
    scaled_scores,
    soft_cap,
    soft_cap_,
    visible,
)
from llmasos_widgets.tracing._row_statistics import (
    TILE_CELLS,
    RowChunkReader,
    TileBuffers,
    TileStats,
    row_statistics,
    tile_lengths,
)
from llmasos_widgets.tracing._trace import ForwardCapture, Trace, trace

__all__ = [
    "SUPPORTED_ARCHITECTURES",
    "TILE_CELLS",
    "Anatomy",
    "AttentionSpec",
    "ForwardCapture",
    "RowChunkReader",
    "TileBuffers",
    "TileStats",
    "Trace",
    "UnsupportedArchitectureError",
    "all_visible",
    "anatomy",
    "attention_pattern",
    "cell_weights",
    "check_supported",
    "decoder_layers",
    "eval_mode",
    "first_visible_key",
    "kv_head",
    "mask_invisible_",
    "paired_weights",
    "row_statistics",
    "scaled_scores",
    "site_label",
    "soft_cap",
    "soft_cap_",
    "tile_lengths",
    "trace",
    "visible",
]
