"""SaliencyWidget on a generated Explanation: the ``[generated, site, token]`` matrix.

``SaliencyWidget(model, explanation)`` with ``explanation = model.generate(...)`` shows the
saliency matrix that ``generate()`` computed (no recomputation): ``generated_scores`` carries
it to the view (``js/src/lib/saliency_matrix.ts`` draws one row per generated token at the
active site), and ``generated_token`` (a position ``>= prompt_length``) picks the row shown as
today's ``[site, token]`` map. Clicking a generated token in the strip, or a row of the matrix,
sets it. Clicking a prompt token keeps its old meaning (explain the prediction after it,
recomputed) and clears ``generated_token``. Changing ``method`` recomputes the whole matrix
(batched, ``attribution/_saliency_matrix.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import traitlets

from llmasos_widgets.widgets._base import tensor_payload


class GenerationSaliencyMixin(traitlets.HasTraits):
    """Traits and handlers the SaliencyWidget uses for a generated Explanation."""

    generated_scores = traitlets.Dict(read_only=True).tag(sync=True)
    """payload, read-only: float32 ``[generated, site, token]`` saliency of each generated
    token's log-probability ({} when the widget does not show a generation)."""

    generated_token = traitlets.Int(-1).tag(sync=True)
    """int, default -1: position of the generated token whose row is the map shown
    (``prompt_length``.. last token); -1 = the map of ``target_position``'s prediction."""

    _matrix: Any = None
    _showing_row = False

    def _generation_input(self, model: Any, source: Any) -> torch.Tensor | None:
        """Token ids of a generated or conversation Explanation (never re-tokenized), else
        ``None``."""
        generation = getattr(source, "generation", None)
        if generation is None:
            if getattr(source, "messages", ()):  # a chat template's ids, taken as they are
                return torch.from_numpy(np.asarray(source.token_ids, dtype=np.int64))[None].to(
                    model.device
                )
            return None
        self._matrix = generation.saliency
        return torch.from_numpy(np.asarray(source.token_ids, dtype=np.int64))[None].to(model.device)

    def _start_generation(self, source: Any) -> bool:
        """After the traits exist: the generation traits, the matrix and its last row shown;
        ``True`` when the widget shows a generation."""
        generation = getattr(source, "generation", None)
        if generation is None:
            if getattr(source, "messages", ()):
                self._set_generation(source)  # type: ignore[attr-defined]  # message_spans
            return False
        self._set_generation(source)  # type: ignore[attr-defined]
        if self._matrix is None:  # generated without saliency: compute it for the method
            from llmasos_widgets.attribution import attribute_generation

            self._matrix = attribute_generation(
                self._model,  # type: ignore[attr-defined]
                self._input_ids,  # type: ignore[attr-defined]
                generation.prompt_length,
                method=self.method,  # type: ignore[attr-defined]
            )
        self.set_trait("generated_scores", tensor_payload(self._matrix.scores))
        self.generated_token = len(source.tokens) - 1
        return True

    @traitlets.validate("generated_token")
    def _check_generated_token(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        prompt_length = int(getattr(self, "prompt_length", -1))
        n_tokens = len(getattr(self, "tokens", []))
        if value != -1 and not (0 <= prompt_length <= value < n_tokens):
            raise ValueError(
                f"generated_token={value} is not a generated token: use "
                f"{prompt_length}..{n_tokens - 1}, or -1"
            )
        return value

    @traitlets.observe("generated_token")
    def _on_generated_token(self, change: dict[str, Any]) -> None:
        if change["new"] >= 0:
            self._show_generated_row()

    def _show_generated_row(self) -> None:
        if self._matrix is None:
            return
        position = self.generated_token
        row = self._matrix.row(position - int(self.prompt_length))  # type: ignore[attr-defined]
        self._showing_row = True  # the target position follows without a recomputation
        try:
            self.target_position = position - 1
        finally:
            self._showing_row = False
        self._show(row)  # type: ignore[attr-defined]

    def _recompute_generation(self) -> bool:
        """Called first by ``recompute``: ``True`` when it handled the change -- the row shown
        follows ``generated_token``, or a new method recomputes the matrix."""
        if self._showing_row:
            return True
        if int(getattr(self, "prompt_length", -1)) < 0:
            return False
        if self.generated_token >= 0 and self.target_position != self.generated_token - 1:
            self.generated_token = -1  # a prompt token was clicked: today's map
            return False
        if self.generated_token < 0:
            return False
        if self._matrix is None or self._matrix.method != self.method:  # type: ignore[attr-defined]
            from llmasos_widgets.attribution import attribute_generation

            self.set_trait("status", f"computing {self.method.replace('_', ' ')} …")  # type: ignore[attr-defined]
            self._matrix = attribute_generation(
                self._model,  # type: ignore[attr-defined]
                self._input_ids,  # type: ignore[attr-defined]
                int(self.prompt_length),  # type: ignore[attr-defined]
                method=self.method,  # type: ignore[attr-defined]
                baseline=self.baseline if self.uses_baseline else None,  # type: ignore[attr-defined]
            )
            self.set_trait("generated_scores", tensor_payload(self._matrix.scores))
        self._show_generated_row()
        return True
