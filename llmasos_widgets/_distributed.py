"""Model replicas on Dask workers (optional extra ``llmasos-widgets[dask]``), shared by every
analysis that takes ``client=`` (probing's activations, counterfactuals).

A model reaches the workers one of two ways: an ``ExplainableModel`` is scattered once to
every worker (one replica each); a name or path is registered as a ``WorkerPlugin`` that calls
``load_model`` once per worker, so nothing large is pickled. :func:`model_reference` returns
what a task receives and :func:`worker_model` turns it back into the model on the worker.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

_PLUGIN_PREFIX = "llmasos-model-"


def import_distributed(what: str = "client=...") -> Any:
    """The ``distributed`` module, or an ImportError that says how to install it."""
    try:
        import distributed
    except ImportError as error:
        raise ImportError(f"{what} needs Dask: pip install 'llmasos-widgets[dask]'") from error
    return distributed


def model_replica_plugin(source: str, load_kwargs: dict[str, Any]) -> Any:
    """A WorkerPlugin that loads ``load_model(source)`` once per worker, at registration."""
    distributed = import_distributed()

    plugin_base: Any = distributed.WorkerPlugin

    class ModelReplica(plugin_base):
        name = _PLUGIN_PREFIX + uuid.uuid5(uuid.NAMESPACE_URL, source).hex

        def __init__(self) -> None:
            self.model: Any = None

        def setup(self, worker: Any) -> None:
            from llmasos_widgets.models import load_model

            self.model = load_model(source, **load_kwargs)

    return ModelReplica()


def model_reference(client: Any, model: Any, load_kwargs: dict[str, Any] | None = None) -> Any:
    """What tasks receive for ``model``: a plugin name (for a name/path) or a scattered future
    (for a model object; a fresh key per call, so a changed model is not served stale)."""
    if isinstance(model, (str, os.PathLike)):
        plugin = model_replica_plugin(str(model), dict(load_kwargs or {}))
        client.register_plugin(plugin)
        return plugin.name
    return client.scatter(model, broadcast=True, hash=False)


def worker_model(reference: Any) -> Any:
    """On a worker: the model a task was given by :func:`model_reference`."""
    if isinstance(reference, str):  # the name of a ModelReplica plugin on this worker
        from distributed import get_worker

        plugin: Any = get_worker().plugins[reference]
        return plugin.model
    return reference


def n_workers(client: Any) -> int:
    return max(1, len(client.scheduler_info().get("workers", {})))
