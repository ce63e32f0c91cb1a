"""Features: sparse autoencoders over residual sites (issue "Features").

* :class:`SparseAutoencoder` / :class:`SAEConfig`: the dictionary (ReLU, TopK, JumpReLU),
  in SAELens's weight layout, reading and writing one residual site.
* :func:`load_sae` / :func:`save_sae`: SAELens, Llama Scope and Gemma Scope files (local or
  from the hub) in, SAELens's format out; :func:`check_sae_for` checks an SAE fits a model.
* :class:`Transcoder` / :class:`TranscoderConfig`: a sparse dictionary replacing one
  layer's MLP (reads its input, predicts its output), for attribution graphs;
  :func:`train_transcoder` (:class:`TranscoderTrainingReport`), :func:`splice_transcoders`,
  and :func:`load_transcoder` / :func:`save_transcoder` in circuit-tracer's formats.
* :func:`train_sae`: a TopK SAE trained on a site's activations (:class:`SAETrainingReport`).
* :func:`steer`, :func:`ablate_features` (:class:`FeatureAblationResult`), :func:`splice`:
  interventions through the dictionary, scoped to a ``with`` block.
* :class:`FeatureActivations`: one SAE's latents on one text, sparse (``explain(saes=...)``).
* :func:`feature_examples` / :class:`FeatureExamples`: max-activating contexts per latent
  over a corpus, cached on disk and resumable; :func:`docstring_corpus`: a corpus from the
  docstrings of installed packages (for machines without a dataset hub).
"""

from llmasos_widgets.features._ablation import FeatureAblationResult, ablate_features
from llmasos_widgets.features._activations import FeatureActivations, LatentCodes, LogitEffects
from llmasos_widgets.features._capture import read_features
from llmasos_widgets.features._corpus import docstring_corpus
from llmasos_widgets.features._examples import feature_examples
from llmasos_widgets.features._examples_data import HISTOGRAM_EDGES, FeatureExamples
from llmasos_widgets.features._report import SAETrainingReport, TranscoderTrainingReport
from llmasos_widgets.features._sae import ACTIVATIONS, SAEConfig, SparseAutoencoder
from llmasos_widgets.features._sae_files import FORMATS, check_sae_for, load_sae, save_sae
from llmasos_widgets.features._steering import splice, steer
from llmasos_widgets.features._training import train_sae
from llmasos_widgets.features._transcoder import INPUT_SITES, Transcoder, TranscoderConfig
from llmasos_widgets.features._transcoder_files import (
    TRANSCODER_FORMATS,
    load_transcoder,
    load_transcoders,
    save_transcoder,
)
from llmasos_widgets.features._transcoder_splice import check_transcoders_for, splice_transcoders
from llmasos_widgets.features._transcoder_training import train_transcoder, train_transcoders

__all__ = [
    "ACTIVATIONS",
    "FORMATS",
    "HISTOGRAM_EDGES",
    "INPUT_SITES",
    "TRANSCODER_FORMATS",
    "FeatureAblationResult",
    "FeatureActivations",
    "FeatureExamples",
    "LatentCodes",
    "LogitEffects",
    "SAEConfig",
    "SAETrainingReport",
    "SparseAutoencoder",
    "Transcoder",
    "TranscoderConfig",
    "TranscoderTrainingReport",
    "ablate_features",
    "check_sae_for",
    "check_transcoders_for",
    "docstring_corpus",
    "feature_examples",
    "load_sae",
    "load_transcoder",
    "load_transcoders",
    "read_features",
    "save_sae",
    "save_transcoder",
    "splice",
    "splice_transcoders",
    "steer",
    "train_sae",
    "train_transcoder",
    "train_transcoders",
]
