"""Features: sparse autoencoders over residual sites (issue "Features").

* :class:`SparseAutoencoder` / :class:`SAEConfig`: the dictionary (ReLU, TopK, JumpReLU),
  in SAELens's weight layout, reading and writing one residual site.
"""

from llmasos_widgets.features._sae import ACTIVATIONS, SAEConfig, SparseAutoencoder

__all__ = ["ACTIVATIONS", "SAEConfig", "SparseAutoencoder"]
