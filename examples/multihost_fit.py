"""One fit sharded over every device of several processes (hosts) with ``jax.distributed``.

Every process runs this script with the same arguments except ``--process-id`` (docs/multihost.md):

    python examples/multihost_fit.py --coordinator localhost:12345 --num-processes 2 --process-id 0 &
    python examples/multihost_fit.py --coordinator localhost:12345 --num-processes 2 --process-id 1

Each process reads the same table and makes the same ``mj.fit`` call; the engine splits the batch over the
global device mesh and every process receives the whole result. Process 0 writes ``--out``; every process
prints one JSON line with its view of the devices and the fitted coordinates (as hex floats).
"""

from __future__ import annotations

import argparse
import json

import jax


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coordinator", required=True, help="host:port of process 0")
    parser.add_argument("--num-processes", type=int, required=True)
    parser.add_argument("--process-id", type=int, required=True)
    parser.add_argument("--table", help="CSV with weight_*, model_size, n_tokens, *_loss (default: bundled example)")
    parser.add_argument("--law", default="additive")
    parser.add_argument("--quick", action="store_true", help="256 starts, one short stage (a smoke run)")
    parser.add_argument("--out", help="write the fit here (process 0)")
    args = parser.parse_args()

    # before anything else touches JAX's backends
    jax.distributed.initialize(
        coordinator_address=args.coordinator, num_processes=args.num_processes, process_id=args.process_id
    )
    import mixlaw_jax as mj
    from mixlaw_jax.datasets import example_path

    runs = mj.load_runs(
        args.table or example_path(), weights="weight_*", N="model_size", D="n_tokens", targets="*_loss"
    )
    search = mj.Search(256, ((8, 30),)) if args.quick else mj.Search()
    result = mj.fit(runs, args.law, search=search)
    if args.out and jax.process_index() == 0:
        result.save(args.out)
    print(
        json.dumps(
            {
                "process": jax.process_index(),
                "processes": jax.process_count(),
                "devices": jax.device_count(),
                "local_devices": jax.local_device_count(),
                "objective": [float(v) for v in result.objective],
                "coordinates": [[float(v).hex() for v in row] for row in result.coordinates],
            }
        ),
        flush=True,
    )
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
