"""Lazy tracing: capture post-RoPE q/k and the residual stream, rebuild patterns on demand.

```python
with trace(hf_model) as tr:
    hf_model(input_ids=ids, attention_mask=mask)
tr.attention(layer, batch=0)   # float32 [head, query, key], exact
```
"""

from llmasos_widgets.models import (  # re-exported: trace refuses what models refuses
    SUPPORTED_ARCHITECTURES,
    UnsupportedArchitectureError,
    check_supported,
)
from llmasos_widgets.tracing._anatomy import Anatomy, anatomy, decoder_layers, eval_mode, site_label
from llmasos_widgets.tracing._patterns import AttentionSpec, attention_pattern
from llmasos_widgets.tracing._trace import ForwardCapture, Trace, trace

__all__ = [
    "SUPPORTED_ARCHITECTURES",
    "Anatomy",
    "AttentionSpec",
    "ForwardCapture",
    "Trace",
    "UnsupportedArchitectureError",
    "anatomy",
    "attention_pattern",
    "check_supported",
    "decoder_layers",
    "eval_mode",
    "site_label",
    "trace",
]
