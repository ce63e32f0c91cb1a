"""Features: sparse autoencoders over residual sites (issue "Features").

* :class:`SparseAutoencoder` / :class:`SAEConfig`: the dictionary (ReLU, TopK, JumpReLU),
  in SAELens's weight layout, reading and writing one residual site.
* :func:`load_sae` / :func:`save_sae`: SAELens, Llama Scope and Gemma Scope files (local or
  from the hub) in, SAELens's format out; :func:`check_sae_for` checks an SAE fits a model.
"""

from llmasos_widgets.features._sae import ACTIVATIONS, SAEConfig, SparseAutoencoder
from llmasos_widgets.features._sae_files import FORMATS, check_sae_for, load_sae, save_sae

__all__ = [
    "ACTIVATIONS",
    "FORMATS",
    "SAEConfig",
    "SparseAutoencoder",
    "check_sae_for",
    "load_sae",
    "save_sae",
]
