"""Probing: residual-stream activations of labelled texts and one linear probe per layer.

* :func:`activations` collects activations in batches (in memory or streamed to disk);
* :func:`probe` trains a probe per layer, scored on held-out texts and against a
  Hewitt & Liang control task (selectivity), returning a :class:`ProbeResult`;
* :func:`subject_number_dataset` and :func:`part_of_speech_dataset` are ready labelled sets
  for the bundled model; :class:`ProbeDataset` holds your own.
"""

from llmasos_widgets._views import register_view
from llmasos_widgets.probing._activations import Reads, activations
from llmasos_widgets.probing._datasets import (
    ProbeDataset,
    as_probe_dataset,
    part_of_speech_dataset,
    subject_number_dataset,
)
from llmasos_widgets.probing._html import write_probe_html
from llmasos_widgets.probing._probe import control_labels, probe, probe_activations
from llmasos_widgets.probing._result import ProbeResult
from llmasos_widgets.probing._store import Activations
from llmasos_widgets.probing._trainer import LinearProbe, fit_linear_probe

# ProbeResult.to_html's page, shown through the view registry as every result's is
register_view("html", ProbeResult, write_probe_html)

__all__ = [
    "Activations",
    "LinearProbe",
    "ProbeDataset",
    "ProbeResult",
    "Reads",
    "activations",
    "as_probe_dataset",
    "control_labels",
    "fit_linear_probe",
    "part_of_speech_dataset",
    "probe",
    "probe_activations",
    "subject_number_dataset",
]
