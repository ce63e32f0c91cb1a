"""Causal tests of what attention and saliency suggest: head ablation and activation patching.

* :func:`ablate_heads` -> :class:`AblationResult`: a target (token log-probability, logit
  difference, :class:`CopyingAccuracy`) with and without some heads' outputs zeroed or
  mean-ablated; :func:`ablation_map` -> :class:`AblationMap` ablates every head alone.
* :func:`activation_patching` -> :class:`PatchingResult`: ``[site, position]`` and
  ``[layer, head]`` maps of how much of the clean behaviour each patched activation restores
  in the corrupted run, computed many patched runs per forward pass.
* :func:`attribution_patching` -> :class:`AttributionPatchingResult`: the same maps estimated
  to first order from one gradient (two forwards and a backward for every cell), with AtP*'s
  QK fix and GradDrop as options; ``.verify(k)`` patches its top cells exactly.
* :func:`path_patching` -> :class:`PathPatchingResult`: the effect of sender heads that
  reaches the target only through chosen receivers (later heads' q/k/v, or the logits).
* :func:`logit_attribution` -> :class:`LogitAttribution`: each head's, MLP's and the
  embeddings' direct contribution to a target logit through the frozen final norm (one pass).
* :func:`counterfactuals` -> :class:`CounterfactualResult`: one target on every fill of a
  template (batched, or on Dask), its spread, and DLA + attribution patching for a few pairs.

Every hook goes through the capture layer (``tracing/_anatomy.py``) and is given back when the
call returns; the model's train/eval flags are restored. Each result has ``save(path)`` and
``load(path)`` (``_files.py``), and ``Explanation.attach`` carries them into its file and report.
Guide: ``docs/interventions.md``.
"""

from llmasos_widgets.interventions._ablation import MODES, AblationResult, ablate_heads
from llmasos_widgets.interventions._ablation_map import AblationMap, ablation_map
from llmasos_widgets.interventions._attribution_patching import (
    AttributionPatchingResult,
    PatchingCheck,
    attribution_patching,
)
from llmasos_widgets.interventions._copying_accuracy import CopyingAccuracy
from llmasos_widgets.interventions._counterfactual_result import (
    CounterfactualPair,
    CounterfactualResult,
)
from llmasos_widgets.interventions._counterfactuals import counterfactuals
from llmasos_widgets.interventions._files import SavedResult, from_record, to_record
from llmasos_widgets.interventions._logit_attribution import LogitAttribution, logit_attribution
from llmasos_widgets.interventions._pairs import agreement_twins
from llmasos_widgets.interventions._patching import (
    HEAD_NODES,
    PatchingResult,
    activation_patching,
)
from llmasos_widgets.interventions._path_patching import (
    PathPatchingMap,
    PathPatchingResult,
    path_patching,
    path_patching_map,
)

__all__ = [
    "HEAD_NODES",
    "MODES",
    "AblationMap",
    "AblationResult",
    "AttributionPatchingResult",
    "CopyingAccuracy",
    "CounterfactualPair",
    "CounterfactualResult",
    "LogitAttribution",
    "PatchingCheck",
    "PatchingResult",
    "PathPatchingMap",
    "PathPatchingResult",
    "SavedResult",
    "ablate_heads",
    "ablation_map",
    "activation_patching",
    "agreement_twins",
    "attribution_patching",
    "counterfactuals",
    "from_record",
    "logit_attribution",
    "path_patching",
    "path_patching_map",
    "to_record",
]
