"""``train_sae``: a TopK sparse autoencoder trained on one residual site's activations.

The recipe is OpenAI's TopK SAE (Gao et al. 2024, github.com/openai/sparse_autoencoder):

* inputs scaled so the mean row norm is ``sqrt(d_in)`` (kept as ``config.input_scale``), so
  one learning rate fits every model width;
* ``b_dec`` starts at the mean of the first chunk's rows, ``W_enc`` at ``W_dec.T``;
* loss: MSE normalised by the batch's variance, plus ``aux_coefficient`` times the AuxK
  loss: the ``aux_k`` largest pre-activations among *dead* latents (silent for
  ``dead_window`` tokens) must reconstruct the residual error, which pulls them back to life;
* Adam (``lr = 2e-4 / sqrt(d_sae / 2**14)`` unless given); the decoder-row-parallel part of
  the gradient is removed and decoder rows are renormalised to unit norm after each step, so
  a latent's activation is its contribution's length;
* optionally (``resample_every``), dead latents are re-initialised toward high-loss inputs,
  Anthropic's "Towards Monosemanticity" resampling: each takes the direction of a batch row
  drawn with probability proportional to the square of its reconstruction loss.

Activations come from :func:`llmasos_widgets.probing.activations` (local or, with
``client=``, on a Dask cluster), ``chunk_texts`` texts at a time, so memory is bounded by a
chunk, not the corpus. Texts are split into training and held-out ones before anything is
collected; every random draw comes from ``seed``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch

from llmasos_widgets.features._report import SAETrainingReport
from llmasos_widgets.features._sae import SAEConfig, SparseAutoencoder
from llmasos_widgets.features._sae_files import save_sae
from llmasos_widgets.features._transcoder import Transcoder
from llmasos_widgets.probing import Reads, activations

Positions = int | Literal["last", "all"]

# Latents silent this many batches count as dead (OpenAI: 10M tokens of 131k-token batches).
_DEAD_BATCHES = 50
# A resampled latent's encoder norm, as a fraction of the live ones' mean (Anthropic: 0.2)
_RESAMPLED_ENCODER_NORM = 0.2


def _split(texts: list[str], held_out: float, seed: int) -> tuple[list[str], list[str]]:
    """Distinct texts to (train, held out); a text's copies stay on one side."""
    if not 0 < held_out < 1:
        raise ValueError(f"held_out must be a fraction in (0, 1), got {held_out!r}")
    distinct = list(dict.fromkeys(texts))
    if len(distinct) < 2:
        raise ValueError("train_sae needs at least two distinct texts (some are held out)")
    order = np.random.default_rng(seed).permutation(len(distinct))
    n_held = min(len(distinct) - 1, max(1, round(held_out * len(distinct))))
    held = {distinct[i] for i in order[:n_held]}
    return [t for t in texts if t not in held], [t for t in distinct if t in held]


def sites_collector(
    model: Any,
    sites: list[int],
    positions: Positions,
    skip_bos: bool,
    client: Any,
    batch_size: int,
    read: Reads = "residual",
) -> Callable[[list[str]], dict[int, np.ndarray]]:
    """``collect(texts)``: each site's rows of those texts, from one pass of the model."""

    def collect(texts: list[str]) -> dict[int, np.ndarray]:
        acts = activations(
            model, texts, layers=sites, positions=positions, batch_size=batch_size,
            progress=False, client=client, read=read,
        )  # fmt: skip
        keep: Any = slice(None)
        if skip_bos:
            # each text's first token: <bos> where the tokenizer adds one, else the attention
            # sink (SmolLM2, no <bos>: 140x the other rows' norm at its middle site); either
            # way a huge-norm outlier a dictionary would spend latents on and FVE be ruled by
            keep = acts.positions != 0
        return {site: np.asarray(acts[site])[keep] for site in sites}

    return collect


def _collector(
    model: Any,
    site: int,
    positions: Positions,
    skip_bos: bool,
    client: Any,
    batch_size: int,
    read: Reads = "residual",
) -> Callable[[list[str]], np.ndarray]:
    collect_sites = sites_collector(model, [site], positions, skip_bos, client, batch_size, read)
    return lambda texts: collect_sites(texts)[site]


def _chunks(
    texts: list[str], size: int, collect: Callable[[list[str]], np.ndarray], epochs: int
) -> Iterator[np.ndarray]:
    """Each epoch's chunks of activations; one chunk is collected once and reused."""
    parts = [texts[i : i + size] for i in range(0, len(texts), size)]
    cached = collect(parts[0]) if len(parts) == 1 else None
    for _ in range(epochs):
        for part in parts:
            yield cached if cached is not None else collect(part)


def _normalised_mse(recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    variance = (x - x.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-12)
    return (recon - x).pow(2).sum(-1).mean() / variance


Dictionary = SparseAutoencoder | Transcoder
DictionaryT = TypeVar("DictionaryT", SparseAutoencoder, Transcoder)
# training rows -> (input, target) of the dictionary, in the units it is trained in
Split = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _same(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return rows, rows  # an SAE reconstructs its input


def _predict(dictionary: Dictionary, features: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if isinstance(dictionary, Transcoder):
        return dictionary.decode(features, x)
    return dictionary.decode(features)


class _Trainer:
    """One TopK dictionary's optimisation state: Adam, each latent's tokens since it last
    fired. An SAE reconstructs its input; a transcoder predicts its target (``split`` turns
    a batch of training rows into both)."""

    def __init__(
        self,
        dictionary: Dictionary,
        lr: float,
        aux_k: int,
        aux_coefficient: float,
        window: int,
        split: Split = _same,
        seed: int = 0,
    ) -> None:
        self.dictionary = dictionary
        self.split = split
        self.width = dictionary.W_dec.shape[0]
        self.k = int(dictionary.config.k or 1)
        self.aux_k = aux_k
        self.aux_coefficient = aux_coefficient
        self.window = window
        # an SAE's decoder rows are in scaled units; the AuxK target (its error) is not
        self.aux_scale = float(getattr(dictionary.config, "input_scale", 1.0))
        self.optimizer = torch.optim.Adam(dictionary.parameters(), lr=lr, eps=6.25e-10)
        self.since_fired = torch.zeros(self.width, dtype=torch.long, device=dictionary.W_dec.device)
        self.tokens = 0
        self.resampled = 0
        self.generator = torch.Generator().manual_seed(seed)

    def dead(self) -> torch.Tensor:
        return self.since_fired >= min(self.window, max(self.tokens, 1))

    def step(self, rows: torch.Tensor) -> float:
        dictionary = self.dictionary
        x, target = self.split(rows)
        pre = dictionary.pre_activations(x)
        values, indices = torch.topk(pre, self.k, dim=-1)
        features = torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))
        recon = _predict(dictionary, features, x)
        mse = _normalised_mse(recon, target)
        loss = mse + self.aux_coefficient * self._aux_loss(pre, target - recon.detach())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            grad, rows = dictionary.W_dec.grad, dictionary.W_dec
            if grad is not None:  # the part that would only change row norms is wasted
                grad -= (grad * rows).sum(-1, keepdim=True) * rows
            self.optimizer.step()
            rows.div_(rows.norm(dim=-1, keepdim=True).clamp_min(1e-8))
            fired = (features > 0).any(0)
            self.since_fired += len(x)
            self.since_fired[fired] = 0
        self.tokens += len(x)
        return float(mse.detach())

    @torch.no_grad()
    def resample(self, x: torch.Tensor) -> int:
        """Re-initialise every dead latent of an SAE toward a row of ``x`` drawn with
        probability proportional to its squared reconstruction loss (Anthropic's resampling,
        2023): the decoder row becomes that row's direction as the SAE sees it (scaled, minus
        ``b_dec``), the encoder column the same direction at ``_RESAMPLED_ENCODER_NORM`` of the
        live columns' mean norm, ``b_enc`` 0, and Adam's moments of those entries 0. A
        resampled latent still counts as dead until it fires. Returns how many were resampled."""
        sae = self.dictionary
        if not isinstance(sae, SparseAutoencoder):
            raise TypeError("resampling is built for SAEs (train_sae's resample_every)")
        dead = self.dead().nonzero()[:, 0]
        loss = (sae(x) - x.to(sae.W_dec.dtype)).pow(2).sum(-1).double().cpu()
        if len(dead) == 0 or float(loss.sum()) == 0.0:
            return 0
        weights = loss.pow(2)
        replace = len(dead) > int((weights > 0).sum())
        rows = torch.multinomial(weights, len(dead), replace, generator=self.generator)
        centred = x[rows.to(x.device)].to(sae.W_dec.dtype) * sae.config.input_scale - sae.b_dec
        directions = centred / centred.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        live = ~self.dead()
        norm = sae.W_enc[:, live].norm(dim=0).mean() if bool(live.any()) else torch.tensor(1.0)
        sae.W_dec[dead] = directions
        sae.W_enc[:, dead] = directions.T * (_RESAMPLED_ENCODER_NORM * norm)
        sae.b_enc[dead] = 0.0
        for parameter, index in ((sae.W_dec, dead), (sae.W_enc, (slice(None), dead))):
            for moment in self.optimizer.state.get(parameter, {}).values():
                if isinstance(moment, torch.Tensor) and moment.dim() > 0:
                    moment[index] = 0.0
        for moment in self.optimizer.state.get(sae.b_enc, {}).values():
            if isinstance(moment, torch.Tensor) and moment.dim() > 0:
                moment[dead] = 0.0
        self.resampled += len(dead)
        return len(dead)

    def _aux_loss(self, pre: torch.Tensor, error: torch.Tensor) -> torch.Tensor:
        dead = self.dead()
        n_dead = int(dead.sum())
        if n_dead == 0 or self.aux_coefficient == 0:
            return pre.new_zeros(())
        masked = pre.masked_fill(~dead, float("-inf"))
        values, indices = torch.topk(masked, min(self.aux_k, n_dead), dim=-1)
        features = torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))
        aux = features @ self.dictionary.W_dec / self.aux_scale  # no bias: error has none
        return torch.nan_to_num(_normalised_mse(aux, error))


@torch.no_grad()
def _fit(
    dictionary: Dictionary, rows: np.ndarray, batch: int, split: Split = _same
) -> tuple[float, float]:
    """(FVE of the target, L0) of ``dictionary`` on ``rows``, exactly over all of them."""
    device = dictionary.W_dec.device
    rows_all = torch.from_numpy(np.ascontiguousarray(rows))
    mean = split(rows_all)[1].double().mean(0).to(device)
    error = total = active = 0.0
    for start in range(0, len(rows), batch):
        x, target = split(rows_all[start : start + batch].to(device))
        features = dictionary.encode(x)
        recon = _predict(dictionary, features, x)
        error += float((recon - target).double().pow(2).sum())
        total += float((target.double() - mean).pow(2).sum())
        active += float((features > 0).sum())
    return 1.0 - error / max(total, 1e-30), active / max(len(rows), 1)


def _check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def train_sae(
    model: Any,
    site: int,
    texts: Sequence[str],
    *,
    width: int | None = None,
    k: int = 32,
    positions: Positions = "all",
    epochs: int = 1,
    batch_size: int = 4096,
    lr: float | None = None,
    seed: int = 0,
    held_out: float = 0.1,
    aux_k: int | None = None,
    aux_coefficient: float = 1 / 32,
    dead_window: int | None = None,
    resample_every: int | None = None,
    skip_bos: bool = True,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    chunk_texts: int = 4096,
    activation_batch_size: int = 32,
    client: Any = None,
    device: str | torch.device | None = None,
) -> SAETrainingReport:
    """Train a TopK SAE of ``width`` latents on residual site ``site`` of ``model``.

    Args:
        model: an ``ExplainableModel`` (or, with ``client=``, a name each worker loads).
        site: residual site, 0 = ``emb``, ``i`` = ``after L{i-1}``.
        texts: the corpus; ``held_out`` of its distinct texts are kept out of training and
            score the result.
        width: latents (``d_sae``); default 16 x hidden size.
        k: latents kept per token.
        positions: which tokens of each text train it, as in ``activations``: ``"all"``
            (default; each text's first token, ``<bos>`` or the attention sink, skipped while
            ``skip_bos``), ``"last"``, or one int for every text (negative: from the end).
        epochs: passes over the training texts; batch_size: tokens per optimiser step.
        lr: Adam's learning rate; default ``2e-4 / sqrt(width / 2**14)`` (OpenAI's scaling).
        aux_k / aux_coefficient / dead_window: the AuxK loss; defaults ``min(2k, width)``,
            1/32, and 50 batches' tokens (at most one epoch's rows).
        resample_every: every this many steps, latents dead by ``dead_window`` are
            re-initialised toward high-loss rows of that step's batch (Anthropic's
            resampling); default ``None``: never.
        checkpoint_dir: with it, the SAE is saved (SAELens format, ``save_sae``) to
            ``checkpoint_dir/step-{step}`` every ``checkpoint_every`` steps and to
            ``checkpoint_dir/final`` at the end.
        chunk_texts: texts whose activations are held in memory at once.
        client: a Dask client: activations are collected on its workers.
        device: where the SAE trains; default the model's device.

    Returns:
        :class:`SAETrainingReport`: ``report.sae`` plus held-out FVE, L0 and dead latents.
    """
    site = _check_int("site", site, 0)
    if resample_every is not None:
        _check_int("resample_every", resample_every)
    train_texts, held_texts, first, chunks = _stream(
        model, site, texts, "residual", k=k, epochs=epochs, batch_size=batch_size,
        positions=positions, held_out=held_out, seed=seed, skip_bos=skip_bos,
        checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
        chunk_texts=chunk_texts, activation_batch_size=activation_batch_size, client=client,
    )  # fmt: skip
    d_in = first.shape[1]
    width = _width(width, d_in, k)
    scale = _mean_norm_scale(first)
    config = SAEConfig(
        d_in=d_in, d_sae=width, site=site, activation="topk", k=k, input_scale=scale,
        model_name=_model_name(model), metadata=_provenance(positions, seed, "train_sae"),
    )  # fmt: skip
    sae = _seeded(SparseAutoencoder, config, seed)
    device = _device(model, device)
    sae.to(device)
    with torch.no_grad():
        sae.b_dec.copy_(torch.from_numpy(first.mean(0) * scale))
    trainer = _trainer(
        sae, lr, k, aux_k, aux_coefficient, dead_window, batch_size, len(first), seed=seed
    )
    run = _optimise(
        trainer, first, chunks, batch_size=batch_size, seed=seed,
        checkpoint_every=checkpoint_every, resample_every=resample_every,
        save=None if checkpoint_dir is None else lambda name: _save(sae, checkpoint_dir, name),
    )  # fmt: skip
    held = run.collect_held(held_texts)
    fve, l0 = _fit(sae, held, batch_size)
    train_fve, _ = _fit(sae, run.last_rows, batch_size)
    return SAETrainingReport(
        sae=sae.eval(), fve=fve, train_fve=train_fve, l0=l0, held_out_tokens=len(held),
        **run.report_fields(trainer, batch_size, epochs, len(train_texts), len(held_texts)),
    )  # fmt: skip


def _mean_norm_scale(rows: np.ndarray) -> float:
    """The factor that makes the mean row norm ``sqrt(d)``: one learning rate for every width."""
    return math.sqrt(rows.shape[1]) / float(np.linalg.norm(rows, axis=1).mean() or 1.0)


def _provenance(positions: Positions, seed: int, trainer: str) -> dict[str, Any]:
    """The metadata a trained dictionary saves beside its weights."""
    return {
        "positions": positions if isinstance(positions, str) else "custom",
        "seed": seed,
        "trained_by": f"llmasos_widgets.{trainer}",
    }


def _seeded(cls: Callable[[Any], DictionaryT], config: Any, seed: int) -> DictionaryT:
    """``cls(config)`` initialised from ``seed`` without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(config)


def _model_name(model: Any) -> str:
    return str(getattr(model, "name", model if isinstance(model, str) else ""))


def _device(model: Any, device: str | torch.device | None) -> str | torch.device:
    return device if device is not None else (getattr(model, "device", None) or "cpu")


def _width(width: int | None, d_in: int, k: int) -> int:
    width = 16 * d_in if width is None else _check_int("width", width)
    if k > width:
        raise ValueError(f"k={k} exceeds width={width}; keep at most as many latents as exist")
    return width


def _stream(
    model: Any,
    site: int,
    texts: Sequence[str],
    read: Reads,
    *,
    k: int,
    epochs: int,
    batch_size: int,
    positions: Positions,
    held_out: float,
    seed: int,
    skip_bos: bool,
    checkpoint_dir: Any,
    checkpoint_every: int | None,
    chunk_texts: int,
    activation_batch_size: int,
    client: Any,
    collect: Callable[[list[str]], np.ndarray] | None = None,
) -> tuple[list[str], list[str], np.ndarray, _Chunks]:
    """Check the options a dictionary trainer shares, split the texts, and open the stream
    of training chunks: (train texts, held-out texts, first chunk, the chunks after it).
    ``collect`` replaces the default collector of ``site``'s rows (e.g. one shared by
    several sites)."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a list of strings; wrap a single text as [text]")
    texts = list(texts)
    for name, value in (("k", k), ("epochs", epochs), ("batch_size", batch_size)):
        _check_int(name, value)
    _check_int("chunk_texts", chunk_texts)
    if checkpoint_every is not None:
        _check_int("checkpoint_every", checkpoint_every)
        if checkpoint_dir is None:
            raise ValueError("checkpoint_every needs checkpoint_dir= (where to write them)")
    if not (
        positions in ("all", "last")
        or (isinstance(positions, int) and not isinstance(positions, bool))
    ):
        # one position per text would have to follow the texts through the split and chunks
        raise ValueError(
            f"positions must be 'all', 'last' or one int for every text, got {positions!r}"
        )
    train_texts, held_texts = _split(texts, held_out, seed)
    if collect is None:
        collect = _collector(model, site, positions, skip_bos, client, activation_batch_size, read)
    chunks = _Chunks(collect, _chunks(train_texts, chunk_texts, collect, epochs))
    first = next(chunks.rows)
    if len(first) == 0:
        raise ValueError("no training tokens: every row was <bos>; pass longer texts")
    return train_texts, held_texts, first, chunks


@dataclass(frozen=True)
class _Chunks:
    collect: Callable[[list[str]], np.ndarray]
    rows: Iterator[np.ndarray]


def _trainer(
    dictionary: Dictionary,
    lr: float | None,
    k: int,
    aux_k: int | None,
    aux_coefficient: float,
    dead_window: int | None,
    batch_size: int,
    first_rows: int,
    split: Split = _same,
    seed: int = 0,
) -> _Trainer:
    width = dictionary.W_dec.shape[0]
    window = dead_window or min(_DEAD_BATCHES * batch_size, first_rows)
    return _Trainer(
        dictionary, lr or 2e-4 / math.sqrt(width / 2**14), aux_k or min(2 * k, width),
        aux_coefficient, _check_int("dead_window", window), split, seed,
    )  # fmt: skip


@dataclass
class _Run:
    """What the optimisation loop leaves behind for the report."""

    collect_held: Callable[[list[str]], np.ndarray]
    losses: list[float]
    saved: list[Path]
    seconds: float
    last_rows: np.ndarray
    resample_every: int | None = None

    def report_fields(
        self, trainer: _Trainer, batch_size: int, epochs: int, n_train: int, n_held: int
    ) -> dict[str, Any]:
        return {
            "dead_latents": int(trainer.dead().sum()),
            "dead_window": min(trainer.window, trainer.tokens),
            "steps": len(self.losses),
            "tokens": trainer.tokens,
            "seconds": self.seconds,
            "loss": np.asarray(self.losses, dtype=np.float64),
            "checkpoints": tuple(self.saved),
            "metadata": {"lr": trainer.optimizer.param_groups[0]["lr"], "aux_k": trainer.aux_k,
                         "batch_size": batch_size, "epochs": epochs, "n_train_texts": n_train,
                         "n_held_out_texts": n_held, "resample_every": self.resample_every,
                         "resampled": trainer.resampled},
        }  # fmt: skip


def _optimise(
    trainer: _Trainer,
    first: np.ndarray,
    chunks: _Chunks,
    *,
    batch_size: int,
    seed: int,
    checkpoint_every: int | None,
    save: Callable[[str], Path] | None,
    resample_every: int | None = None,
) -> _Run:
    """Every chunk's rows, shuffled, ``batch_size`` at a time through ``trainer``; checkpoints
    through ``save(name)`` every ``checkpoint_every`` steps and at the end."""
    device = trainer.dictionary.W_dec.device
    shuffle = np.random.default_rng([seed, 1])
    losses: list[float] = []
    saved: list[Path] = []
    seconds = 0.0
    last_rows = first
    for rows in _prepend(first, chunks.rows):
        last_rows = rows
        order = shuffle.permutation(len(rows))
        begin = time.perf_counter()
        for start in range(0, len(rows), batch_size):
            x = torch.from_numpy(rows[order[start : start + batch_size]]).to(device)
            losses.append(trainer.step(x))
            if resample_every and len(losses) % resample_every == 0:
                trainer.resample(x)
            if save is not None and checkpoint_every and len(losses) % checkpoint_every == 0:
                seconds += time.perf_counter() - begin
                saved.append(save(f"step-{len(losses):07d}"))
                begin = time.perf_counter()
        seconds += time.perf_counter() - begin
    if save is not None:
        saved.append(save("final"))
    return _Run(chunks.collect, losses, saved, seconds, last_rows, resample_every)


def _prepend(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _save(sae: SparseAutoencoder, directory: Any, name: str) -> Path:
    path = Path(directory) / name
    save_sae(sae, path)
    return path
