"""The optimal mixtures of one fit (``MixtureResult``) and their JSON file format (kind "mixture", schema 1).

For budgets b (model size N_b, training tokens D_b) and objectives o — each target t alone, f_t(h) = L_t(N, D, h),
then the weighted mean f(h) = Σ_t w_t L_t(N, D, h) — a result holds h*_bo = argmin_{h ∈ F(D_b)} f_o(h) (the
optimal domain weights of Shukor et al. 2025, "Scaling Laws for Optimal Data Mixtures"), the predicted loss of
every target there, and the same at a reference mixture (uniform by default), whose difference is the predicted
gain of h*.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from .. import _io
from ..data import index_of
from ..errors import MixlawError

MIXTURE_SCHEMA_VERSION = 1
#: name of the weighted-combination objective (after the per-target objectives).
WEIGHTED = "weighted"


@dataclasses.dataclass
class MixtureResult:
    """Optimal mixtures for a set of budgets (index b) and objectives (index o), from one fit.

    Objectives are the chosen targets, each on its own, then ``"weighted"``: Σ_t w_t L_t with the normalised
    ``target_weights``. Domains (index i) are in the order of ``fit.weight_columns``.

    Attributes:
      law: registry name of the fitted law.
      domains: domain (weight column) names, k of them.
      targets: the targets optimised, T of them.
      objectives: ``targets + ("weighted",)``, O = T + 1 of them.
      target_weights: (T,) weights w_t of the weighted objective (sum to 1).
      n, d: (B, O) model size N and tokens D of each solution, or None when not given (laws without N or D).
        ``optimal_mixture`` uses the same (N, D) for every objective; ``compute_optimal`` picks them per objective.
      compute: (B,) FLOPs budgets C for ``compute_optimal``, else None.
      h: (B, O, k) optimal mixture h* per budget and objective.
      loss: (B, O, T) predicted loss of every target at that h*.
      objective: (B, O) objective value at h* (L_t for a target objective, Σ_t w_t L_t for ``"weighted"``).
      reference_h: (k,) reference mixture (uniform unless given).
      reference_loss, reference_objective: the same as ``loss`` and ``objective`` at ``reference_h`` (same N, D).
      lower, upper: (B, O, k) bounds on h_i that applied (weight bounds, token budget caps U_i / D, fixed domains).
      active: (B, O, k) strings: ``"fixed"`` (lower = upper), ``"lower"`` / ``"upper"`` (h*_i within 1e-6 of that
        bound), or ``""`` (free).
      starts_at_best: (B, O) how many starts reached the best objective (within 1e-9 relative).
      settings: the request: targets, target weights, ``bounds`` (the ``weight_bounds`` argument; the key keeps
        its name so that files written before the rename load alike), token budget, fixed, reference, starts, seed,
        method (and ``compute_optimal``'s search).
      provenance: seed, package versions, and the fit's table hash.
      unlimited_h, unlimited_objective: for a law that reads the pools (``repetition_aware``) and finite pools,
        h* (B, O, k) and the objective (B, O) of the same law with every pool unlimited (the law without data
        limits), under the same bounds and budgets; else None.
      unlimited_n, unlimited_d: (B, O) the N and D of that plan without limits: those of ``n`` and ``d`` for
        ``optimal_mixture``; for ``compute_optimal``, the split of the same FLOPs budget that the law without
        limits prefers (it spends more on tokens when no pool runs out); else None.
    """

    law: str
    domains: tuple[str, ...]
    targets: tuple[str, ...]
    objectives: tuple[str, ...]
    target_weights: np.ndarray
    n: np.ndarray | None
    d: np.ndarray | None
    compute: np.ndarray | None
    h: np.ndarray
    loss: np.ndarray
    objective: np.ndarray
    reference_h: np.ndarray
    reference_loss: np.ndarray
    reference_objective: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    active: np.ndarray
    starts_at_best: np.ndarray
    settings: dict
    provenance: dict
    unlimited_h: np.ndarray | None = None
    unlimited_objective: np.ndarray | None = None
    unlimited_n: np.ndarray | None = None
    unlimited_d: np.ndarray | None = None

    @property
    def limit_cost(self) -> np.ndarray | None:
        """(B, O) the loss the data limits cost: objective at h* minus the objective of the same law with every pool
        unlimited at its own h* (``unlimited_h``; for ``compute_optimal`` at its own split of the same compute,
        ``unlimited_n`` and ``unlimited_d``); None when the law does not read the pools."""
        return None if self.unlimited_objective is None else self.objective - self.unlimited_objective

    @property
    def gain(self) -> np.ndarray:
        """(B, O) predicted improvement of h* over the reference mixture: reference_objective - objective."""
        return self.reference_objective - self.objective

    @property
    def epochs(self) -> np.ndarray | None:
        """(B, O, k) epochs of each domain at h*, e_i = h*_i D / U_i (0 for an unlimited domain), when a token budget
        was given and D is known; else None."""
        budget = self.settings.get("token_budget")
        if not budget or self.d is None:
            return None
        pools = np.array([budget.get(d, np.inf) for d in self.domains], dtype=float)
        return self.h * self.d[..., None] / pools

    def mixture(self, objective: str = WEIGHTED) -> pd.DataFrame:
        """h* for one objective as a DataFrame: one row per budget, one column per domain."""
        o = index_of(self.objectives, objective, "objective")
        frame = pd.DataFrame(self.h[:, o, :], columns=list(self.domains))
        frame.index.name = "budget"
        return frame

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: one row per budget x objective x domain.

        Columns: ``budget`` (index b), ``C`` (compute_optimal only), ``N``, ``D`` (when known), ``objective``
        (target name or ``"weighted"``), ``domain``, ``h`` (h*_i), ``lower``, ``upper``, ``active``, ``reference_h``,
        then per (budget, objective), repeated on each domain row: ``loss`` (objective value at h*),
        ``reference_loss`` (at the reference mixture) and ``gain`` (reference_loss - loss).
        Per-target losses at each h* are in the ``loss`` array attribute.
        """
        n_budgets, n_obj, k = self.h.shape
        b, o, i = (a.ravel() for a in np.meshgrid(np.arange(n_budgets), np.arange(n_obj), np.arange(k), indexing="ij"))
        columns = {"budget": b}
        if self.compute is not None:
            columns["C"] = self.compute[b]
        if self.n is not None:
            columns["N"] = self.n[b, o]
        if self.d is not None:
            columns["D"] = self.d[b, o]
        columns.update(
            {
                "objective": np.asarray(self.objectives, dtype=object)[o],
                "domain": np.asarray(self.domains, dtype=object)[i],
                "h": self.h[b, o, i],
                "lower": self.lower[b, o, i],
                "upper": self.upper[b, o, i],
                "active": self.active[b, o, i],
                "reference_h": self.reference_h[i],
                "loss": self.objective[b, o],
                "reference_loss": self.reference_objective[b, o],
                "gain": self.gain[b, o],
            }
        )
        return pd.DataFrame(columns)

    def to_dict(self) -> dict:
        def arr(a):
            return None if a is None else np.asarray(a).tolist()

        return {
            "kind": "mixture",
            "schema_version": MIXTURE_SCHEMA_VERSION,
            "law": self.law,
            "domains": list(self.domains),
            "targets": list(self.targets),
            "objectives": list(self.objectives),
            "target_weights": arr(self.target_weights),
            "n": arr(self.n),
            "d": arr(self.d),
            "compute": arr(self.compute),
            "h": arr(self.h),
            "loss": arr(self.loss),
            "objective": arr(self.objective),
            "reference_h": arr(self.reference_h),
            "reference_loss": arr(self.reference_loss),
            "reference_objective": arr(self.reference_objective),
            "lower": arr(self.lower),
            "upper": arr(self.upper),
            "active": arr(self.active),
            "starts_at_best": arr(self.starts_at_best),
            "settings": self.settings,
            "provenance": self.provenance,
            "unlimited_h": arr(self.unlimited_h),
            "unlimited_objective": arr(self.unlimited_objective),
            "unlimited_n": arr(self.unlimited_n),
            "unlimited_d": arr(self.unlimited_d),
        }

    @classmethod
    def from_dict(cls, p: dict) -> MixtureResult:
        """The inverse of :meth:`to_dict` (no checks beyond the types of the arrays)."""

        def arr(key, dtype=float):
            return None if p.get(key) is None else np.asarray(p[key], dtype=dtype)

        return cls(
            law=p["law"],
            domains=tuple(p["domains"]),
            targets=tuple(p["targets"]),
            objectives=tuple(p["objectives"]),
            target_weights=arr("target_weights"),
            n=arr("n"),
            d=arr("d"),
            compute=arr("compute"),
            h=arr("h"),
            loss=arr("loss"),
            objective=arr("objective"),
            reference_h=arr("reference_h"),
            reference_loss=arr("reference_loss"),
            reference_objective=arr("reference_objective"),
            lower=arr("lower"),
            upper=arr("upper"),
            active=arr("active", str),
            starts_at_best=arr("starts_at_best", np.int64),
            settings=p["settings"],
            provenance=p["provenance"],
            unlimited_h=arr("unlimited_h"),
            unlimited_objective=arr("unlimited_objective"),
            unlimited_n=arr("unlimited_n"),
            unlimited_d=arr("unlimited_d"),
        )

    def save(self, path) -> None:
        """Write the result as versioned JSON (kind "mixture", schema 1), atomically."""
        _io.atomic_write_json(path, self.to_dict())


def load_mixture(path) -> MixtureResult:
    """Read a :class:`MixtureResult` written by ``MixtureResult.save``; arrays come back identical.

    Args:
      path: the JSON file.

    Returns:
      The :class:`MixtureResult`; a :class:`MixlawError` for missing, corrupt, other-kind or other-version files.
    """
    payload = _io.read_json(path, "mixture", MIXTURE_SCHEMA_VERSION)
    try:
        out = MixtureResult.from_dict(payload)
    except (KeyError, TypeError, ValueError) as err:
        raise MixlawError(f"{path} is not a valid mixture file: {err!r}") from None
    shape = (len(out.objectives), len(out.domains))
    h_shape = np.shape(out.h)
    if len(h_shape) != 3 or h_shape[1:] != shape:
        raise MixlawError(f"{path}: h has shape {h_shape}, expected (budgets, {shape[0]}, {shape[1]})")
    return out
