"""Features: sparse autoencoders over residual sites (issue "Features").

* :class:`SparseAutoencoder` / :class:`SAEConfig`: the dictionary (ReLU, TopK, JumpReLU),
  in SAELens's weight layout, reading and writing one residual site.
* :class:`FeatureActivations`: one SAE's latents on one text, sparse (``explain(saes=...)``).
* :func:`feature_examples` / :class:`FeatureExamples`: max-activating contexts per latent
  over a corpus, cached on disk and resumable; :func:`docstring_corpus`: a corpus from the
  docstrings of installed packages (for machines without a dataset hub).
"""

from llmasos_widgets.features._activations import FeatureActivations, LogitEffects
from llmasos_widgets.features._capture import read_features
from llmasos_widgets.features._corpus import docstring_corpus
from llmasos_widgets.features._examples import feature_examples
from llmasos_widgets.features._examples_data import HISTOGRAM_EDGES, FeatureExamples
from llmasos_widgets.features._sae import ACTIVATIONS, SAEConfig, SparseAutoencoder

__all__ = [
    "ACTIVATIONS",
    "HISTOGRAM_EDGES",
    "FeatureActivations",
    "FeatureExamples",
    "LogitEffects",
    "SAEConfig",
    "SparseAutoencoder",
    "docstring_corpus",
    "feature_examples",
    "read_features",
]
