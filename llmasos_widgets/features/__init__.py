"""Features: sparse autoencoders over residual sites (issue "Features").

* :class:`SparseAutoencoder` / :class:`SAEConfig`: the dictionary (ReLU, TopK, JumpReLU),
  in SAELens's weight layout, reading and writing one residual site.
* :func:`load_sae` / :func:`save_sae`: SAELens, Llama Scope and Gemma Scope files (local or
  from the hub) in, SAELens's format out; :func:`check_sae_for` checks an SAE fits a model.
* :func:`train_sae`: a TopK SAE trained on a site's activations (:class:`SAETrainingReport`).
* :func:`steer`, :func:`ablate_features` (:class:`FeatureAblationResult`), :func:`splice`:
  interventions through the dictionary, scoped to a ``with`` block.
"""

from llmasos_widgets.features._ablation import FeatureAblationResult, ablate_features
from llmasos_widgets.features._report import SAETrainingReport
from llmasos_widgets.features._sae import ACTIVATIONS, SAEConfig, SparseAutoencoder
from llmasos_widgets.features._sae_files import FORMATS, check_sae_for, load_sae, save_sae
from llmasos_widgets.features._steering import splice, steer
from llmasos_widgets.features._training import train_sae

__all__ = [
    "ACTIVATIONS",
    "FORMATS",
    "FeatureAblationResult",
    "SAEConfig",
    "SAETrainingReport",
    "SparseAutoencoder",
    "ablate_features",
    "check_sae_for",
    "load_sae",
    "save_sae",
    "splice",
    "steer",
    "train_sae",
]
