"""Law forms and the registry that maps names to them.

Users add their own with :func:`register_law`::

    law = Law("my_law", params=(Param("E"), Param("A", positive=True)), terms=my_terms)
    register_law(law)

Two families are built on demand, each law registered (as by :func:`get_law`) when it is made, and found by name
later (e.g. by ``load_fit`` in a new process): ``implicit_mixing_law(M)`` (``mixing_exp_implicit_M<M>``) and
``bimix_law(i)`` (``bimix_d<i>``), and ``repetition_aware(law)`` (``<law>_repetition``).
"""

from __future__ import annotations

import re

from ..errors import MixlawError
from ._base import Inputs, Law, Param, log_prediction, raw_prediction, scaled_log_h
from .bimix import bimix, domain_index
from .data_constrained import chinchilla_overfit, muennighoff
from .data_mixing import implicit_law, latent_domain_count, mixing_exp, mixing_exp_implicit
from .mixture import additive, additive_mixture, full, joint, log_mix, simple
from .repetition import SUFFIX as _REPETITION
from .repetition import repetition_form
from .scaling import chinchilla

_REGISTRY: dict[str, Law] = {}


def register_law(law: Law, *, overwrite: bool = False) -> Law:
    """Add ``law`` to the registry under ``law.name`` and return it."""
    if law.name in _REGISTRY and not overwrite:
        raise MixlawError(f"a law named {law.name!r} is already registered (pass overwrite=True)")
    _REGISTRY[law.name] = law
    return law


def get_law(law: str | Law) -> Law:
    """The law named ``law``, or ``law`` itself when it already is a Law.

    A Law not yet registered is registered here, under its name: results (fits, mixtures, bootstraps) refer to
    their law by name, so that they can predict, be saved and be loaded again. A different law already holding
    that name is an error.
    """
    if isinstance(law, Law):
        known = _REGISTRY.setdefault(law.name, law)
        if known is not law and known != law:
            raise MixlawError(
                f"another law is registered as {law.name!r}: give yours another name, or register it "
                f"with register_law(law, overwrite=True)"
            )
        return law
    if law in _REGISTRY:
        return _REGISTRY[law]
    for pattern, build in _FAMILIES:
        match = re.fullmatch(pattern, law) if isinstance(law, str) else None
        if match:
            return build(match.group(1))
    raise MixlawError(f"unknown law {law!r}; available: {', '.join(available_laws())}")


def available_laws() -> list[str]:
    return sorted(_REGISTRY)


def implicit_mixing_law(latent_domains: int) -> Law:
    """Ye et al.'s implicit mixing law with M = ``latent_domains`` latent domains (``laws.data_mixing``),
    L(h) = c + sum_m K_m exp(t_m . h), registered as ``mixing_exp_implicit_M<M>``; M must be a whole number >= 1."""
    m = latent_domain_count(latent_domains)
    return get_law(implicit_law(m, f"mixing_exp_implicit_M{m}"))


def bimix_law(domain: int) -> Law:
    """Ge et al.'s BiMix law for the loss on weight column ``domain`` (0-based; ``laws.bimix``),
    L(h, D) = h_domain^(-alpha) (B / D^beta + C), registered as ``bimix_d<domain>``."""
    i = domain_index(domain)
    return get_law(bimix(i, f"bimix_d{i}"))


#: Names of the laws built on demand: (pattern, builder of the number in the name).
def repetition_aware(law: str | Law) -> Law:
    """The repetition-aware form of a mixture law (``laws.repetition``): the law at each domain's effective tokens
    with diminishing returns on repeats, plus an overfitting penalty; exactly the law where no domain repeats.
    Registered as ``<law>_repetition``."""
    base = get_law(law)
    made = _REGISTRY.get(base.name + _REPETITION)
    return made if made is not None else get_law(repetition_form(base))


_FAMILIES = (
    (r"mixing_exp_implicit_M([1-9][0-9]*)", lambda m: implicit_mixing_law(int(m))),
    (r"bimix_d(0|[1-9][0-9]*)", lambda i: bimix_law(int(i))),
    (r"(.+)" + _REPETITION, repetition_aware),
)

for _law in (
    chinchilla,
    additive,
    joint,
    full,
    simple,
    mixing_exp,
    additive_mixture,
    mixing_exp_implicit,
    bimix(0, "bimix"),
    muennighoff,
    chinchilla_overfit,
):
    register_law(_law)

__all__ = [
    "Inputs",
    "Law",
    "Param",
    "available_laws",
    "bimix_law",
    "get_law",
    "implicit_mixing_law",
    "log_mix",
    "log_prediction",
    "raw_prediction",
    "register_law",
    "repetition_aware",
    "scaled_log_h",
]
