"""Law forms and the registry that maps names to them.

Users add their own with :func:`register_law`::

    law = Law("my_law", params=(Param("E"), Param("A", positive=True)), terms=my_terms)
    register_law(law)
"""

from __future__ import annotations

from ..errors import MixlawError
from ._base import Inputs, Law, Param, log_prediction, raw_prediction, scaled_log_h
from .data_mixing import mixing_exp
from .mixture import additive, full, joint, log_mix, simple
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
    try:
        return _REGISTRY[law]
    except KeyError:
        raise MixlawError(f"unknown law {law!r}; available: {', '.join(available_laws())}") from None


def available_laws() -> list[str]:
    return sorted(_REGISTRY)


for _law in (chinchilla, additive, joint, full, simple, mixing_exp):
    register_law(_law)

__all__ = [
    "Inputs",
    "Law",
    "Param",
    "available_laws",
    "get_law",
    "log_mix",
    "log_prediction",
    "raw_prediction",
    "register_law",
    "scaled_log_h",
]
