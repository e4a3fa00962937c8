"""The local solver: the design's "Huber-loss gradient descent plus L-BFGS" (optax) beside the engine's
Levenberg-Marquardt IRLS, from the same screened starts, on the same objective.

Both refine the best ``N_STARTS[problem]`` starts of one screen (16,384 random starts, linear parameters
profiled), vmapped over the starts in one jitted call each:

* ``lm`` — ``solvers.lm_run``, ``LM_ITERATIONS`` iterations (early stop when every start has stalled);
* ``adam+lbfgs`` — ``optax.adam`` on the Huber objective for ``ADAM_STEPS`` steps, then ``optax.lbfgs`` (zoom
  line search) for ``LBFGS_STEPS`` steps: gradient descent to reach a basin, quasi-Newton to finish it.

Problems: the synthetic joint-law table with a known truth (seed 0, 300 rows, 25 parameters) and the SlimPajama
joint law on one target (2408 rows, 33 parameters), both unbounded (``--quick``: the synthetic table only).
Reported per method: compile time and run time (compiled ahead of time, then run once), best and median
objective, starts within 1e-6 (relative) of the overall best, and for the gradient methods the best objective
reached in LM's run time.

    python -m benchmarks.local_solvers [--quick]

Writes benchmarks/results/local_solvers.json.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.common import RESULTS, objective_at, provenance, synthetic_table
from benchmarks.speed import slimpajama_runs
from mixlaw_jax._io import atomic_write_json
from mixlaw_jax.engine import make_problems, solvers
from mixlaw_jax.engine.devices import Placement
from mixlaw_jax.engine.multistart import model as engine_model
from mixlaw_jax.engine.multistart import model_and_jacobian, screen
from mixlaw_jax.fitting import prepare
from mixlaw_jax.options import Objective

N_SCREENED = 16384
#: Starts refined per problem (fewer on SlimPajama: 2408 rows make the gradient methods' 6000 steps slow).
N_STARTS = {"synthetic": 64, "slimpajama_github": 16}
LM_ITERATIONS = 500
ADAM_STEPS, ADAM_LR = 2000, 1e-2
LBFGS_STEPS = 4000
#: Checkpoints of the gradient methods' best objective (steps), for the equal-time comparison.
TRACE_EVERY = 100
QUICK = {"n_screened": 256, "n_starts": 4, "lm": 20, "adam": 20, "lbfgs": 20, "trace": 10}
BASIN_RTOL = 1e-6


def problem(name: str):
    """(law, run table, target, objective at the truth or None)."""
    if name == "synthetic":
        runs, truth = synthetic_table(0)
        return "joint", runs, "loss", objective_at("joint", truth, runs)
    return "joint", slimpajama_runs(), "github_loss", None


def screened_starts(law: str, runs, target: str, n_screened: int, n_starts: int):
    """The engine's screen (profiled linear parameters) of ``n_screened`` random starts; the best ``n_starts``."""
    law_obj, index, x, space, y = prepare(runs, law, [target], Objective(), None)
    problems = make_problems(y, np.ones_like(y), "raw", "mean")
    starts = space.sample(jax.random.PRNGKey(0), n_screened, float(jnp.mean(x.log_n)), float(jnp.mean(x.log_d)))
    z0, _ = screen(space, x, problems, starts, n_starts, 1e-3, 2048, Placement.create(None, None))
    rows = solvers.Rows(problems.y[0], problems.w[0], problems.c[0])
    return space, x, rows, z0[0]


def lm_method(space, x, rows, n_iter: int):
    model_jac = model_and_jacobian(space, x)

    @jax.jit
    def run(states):
        def one(state):
            return solvers.lm_run(partial(solvers.linearise, model_jac, rows, 1e-3), state, 0, n_iter).f

        return jax.vmap(one)(states)

    return run


def gradient_method(space, x, rows, adam_steps: int, lbfgs_steps: int, trace_every: int):
    """Adam then L-BFGS on f(z); returns the final f per start and the trace of the best f every ``trace_every``
    steps (adam steps first, then L-BFGS steps)."""
    model = engine_model(space, x)
    f = lambda z: solvers.objective(model, rows, 1e-3, z)  # noqa: E731

    @jax.jit
    def run(z0):
        def one(z):
            adam = optax.adam(ADAM_LR)

            def adam_step(carry, _):
                z, state, best = carry
                value, grad = jax.value_and_grad(f)(z)
                grad = jnp.where(jnp.isfinite(grad), grad, 0.0)
                updates, state = adam.update(grad, state)
                return (optax.apply_updates(z, updates), state, jnp.minimum(best, value)), jnp.minimum(best, value)

            (z, _, best), adam_trace = jax.lax.scan(adam_step, (z, adam.init(z), f(z)), None, length=adam_steps)
            lbfgs = optax.lbfgs()
            value_and_grad = optax.value_and_grad_from_state(f)

            def lbfgs_step(carry, _):
                z, state = carry
                value, grad = value_and_grad(z, state=state)
                updates, state = lbfgs.update(grad, state, z, value=value, grad=grad, value_fn=f)
                return (optax.apply_updates(z, updates), state), value

            (z, _), lbfgs_trace = jax.lax.scan(lbfgs_step, (z, lbfgs.init(z)), None, length=lbfgs_steps)
            final = f(z)
            trace = jnp.concatenate(
                [
                    adam_trace,
                    jnp.minimum(best, jax.lax.cummin(jnp.where(jnp.isfinite(lbfgs_trace), lbfgs_trace, jnp.inf))),
                ]
            )
            return jnp.minimum(final, trace[-1]), trace[trace_every - 1 :: trace_every]

        return jax.vmap(one)(z0)

    return run


def timed(fn, *args):
    """(compile seconds, run seconds, output): compiled ahead of time, then run once."""
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return compile_seconds, time.perf_counter() - start, out


def run(quick: bool) -> dict:
    q = (
        QUICK
        if quick
        else {
            "n_screened": N_SCREENED,
            "lm": LM_ITERATIONS,
            "adam": ADAM_STEPS,
            "lbfgs": LBFGS_STEPS,
            "trace": TRACE_EVERY,
        }
    )
    out = {"quick": quick, "settings": q, "problems": []}
    for name in ("synthetic",) if quick else ("synthetic", "slimpajama_github"):
        law, runs, target, at_truth = problem(name)
        n_starts = q["n_starts"] if quick else N_STARTS[name]
        space, x, rows, z0 = screened_starts(law, runs, target, q["n_screened"], n_starts)
        lm_cold, lm_warm, lm_f = timed(lm_method(space, x, rows, q["lm"]), solvers.start_states(z0))
        gd_cold, gd_warm, (gd_f, trace) = timed(gradient_method(space, x, rows, q["adam"], q["lbfgs"], q["trace"]), z0)
        lm_f, gd_f, trace = np.asarray(lm_f), np.asarray(gd_f), np.asarray(trace)
        best = float(min(lm_f.min(), gd_f.min()))
        steps = q["adam"] + q["lbfgs"]
        per_checkpoint = gd_warm / trace.shape[1]
        at_lm_time = (
            trace.min(axis=0)[min(int(lm_warm / per_checkpoint), trace.shape[1]) - 1]
            if lm_warm >= per_checkpoint
            else None
        )
        in_basin = lambda f: int(np.sum(f <= best * (1 + BASIN_RTOL)))  # noqa: E731
        row = {
            "problem": name,
            "law": law,
            "target": target,
            "rows": int(runs.n_rows),
            "parameters": space.size,
            "truth_objective": at_truth,
            "best_objective": best,
            "lm": {
                "iterations": q["lm"],
                "compile_s": lm_cold,
                "warm_s": lm_warm,
                "best": float(lm_f.min()),
                "in_basin": in_basin(lm_f),
                "median": float(np.median(lm_f)),
            },
            "adam+lbfgs": {
                "adam_steps": q["adam"],
                "lbfgs_steps": q["lbfgs"],
                "compile_s": gd_cold,
                "warm_s": gd_warm,
                "best": float(gd_f.min()),
                "in_basin": in_basin(gd_f),
                "median": float(np.median(gd_f)),
                "best_at_lm_time": None if at_lm_time is None else float(at_lm_time),
                "trace_every_steps": q["trace"],
                "best_trace": trace.min(axis=0).tolist(),
            },
            "starts": n_starts,
            "total_steps_gradient": steps,
        }
        print(
            {k: v for k, v in row.items() if k != "adam+lbfgs"}
            | {"adam+lbfgs": {k: v for k, v in row["adam+lbfgs"].items() if k != "best_trace"}},
            flush=True,
        )
        out["problems"].append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script")
    args = parser.parse_args()
    out = run(args.quick) | {"provenance": provenance()}
    atomic_write_json(RESULTS / ("local_solvers_quick.json" if args.quick else "local_solvers.json"), out)


if __name__ == "__main__":
    main()
