"""SAE hook names <-> our residual sites (0 = ``emb``, ``i`` = ``after L{i-1}``).

Files name the activations an SAE reads in their library's vocabulary. We read the residual
stream only, so every name maps to one site or is refused with the list of names we read:

===========================================  =========  ===========================
name in the file                             site       written by
===========================================  =========  ===========================
``blocks.{i}.hook_resid_pre``                ``i``      SAELens / TransformerLens
``blocks.{i}.hook_resid_post``               ``i + 1``  SAELens, Llama Scope
``hook_embed``                               ``0``      SAELens (embedding SAEs)
``layers.{i}`` / ``model.layers.{i}``        ``i + 1``  sparsify, HF module paths
===========================================  =========  ===========================

Everything else (MLP or attention outputs, ``attn.hook_z``, ``hook_resid_mid``, head
indices) is a site no residual-stream view can show, and is refused rather than guessed.
"""

from __future__ import annotations

import re

from llmasos_widgets.tracing import site_label

SUPPORTED_HOOKS = (
    "blocks.{i}.hook_resid_pre (site i), blocks.{i}.hook_resid_post (site i+1), "
    "hook_embed (site 0, emb), layers.{i} / model.layers.{i} (site i+1)"
)

_PRE = re.compile(r"blocks\.(\d+)\.hook_resid_pre")
_POST = re.compile(r"blocks\.(\d+)\.hook_resid_post")
_LAYER = re.compile(r"(?:model\.)?layers\.(\d+)")


def site_for_hook(hook_name: str, *, where: str) -> int:
    """Our residual site for ``hook_name``; ``where`` names the file in the error."""
    if match := _PRE.fullmatch(hook_name):
        return int(match.group(1))
    if match := _POST.fullmatch(hook_name):
        return int(match.group(1)) + 1
    if match := _LAYER.fullmatch(hook_name):
        return int(match.group(1)) + 1
    if hook_name == "hook_embed":
        return 0
    raise ValueError(
        f"{where} reads {hook_name!r}, which is not a residual-stream site; SAEs over MLP or "
        f"attention outputs cannot be shown here. Residual sites read: {SUPPORTED_HOOKS}"
    )


def hook_for_site(site: int) -> str:
    """SAELens's (TransformerLens's) name for residual site ``site``: ``after L{i}`` is
    ``blocks.{i}.hook_resid_post``, ``emb`` is ``blocks.0.hook_resid_pre``."""
    if site < 0:
        raise ValueError(f"residual sites are 0 (emb) or more, got {site}")
    return "blocks.0.hook_resid_pre" if site == 0 else f"blocks.{site - 1}.hook_resid_post"


def resolve_site(found: int | None, given: int | None, *, hook: str, where: str) -> int:
    """The site from the file (``found``) unless the caller gave one; a disagreement is an
    error, since one of them is wrong about which activations the SAE reads."""
    if given is not None and found is not None and given != found:
        raise ValueError(
            f"{where} reads {hook!r} = site {found} ({site_label(found)}), but site={given} "
            f"({site_label(given)}) was passed; drop site= or load the SAE for that site"
        )
    site = given if given is not None else found
    if site is None:
        raise ValueError(
            f"{where} does not say which residual site it reads; pass site= "
            "(0 = emb, i = after L{i-1})"
        )
    return site
