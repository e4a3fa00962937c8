#!/usr/bin/env bash
# Issue 5's accelerator measurements: the speed benchmark (the engine's ladder; the CPU baselines are left out,
# their times would not compare with the dev machine's) and the scaling sweep, in float64 and float32, with the
# same scripts as on the CPU.
#
#   bash benchmarks/gpu.sh OUT PART [PART ...]     PART: speed-float64 speed-float32 scaling-float64 scaling-float32
#
# Each speed problem runs in its own process under a time limit, so that one slow problem cannot lose the others'
# results. Environment: MIXLAW_GPU_PROBLEMS (default "chinchilla synthetic joint additive"), MIXLAW_GPU_LIMIT
# (seconds per process, default 300), and the benchmarks' own variables (MIXLAW_SCALING_AXES, ...).
# Writes OUT/<part>-<problem>.json (speed), OUT/<part>.json (scaling) and appends to OUT/log.txt. The data are
# read from ../shared/data as on the CPU (or $MIXLAW_SHARED_DATA); MIXLAW_BENCH_COMMIT names the commit sent (the copy's .git may be stale).
# Streams sharing one GPU need XLA_PYTHON_CLIENT_PREALLOCATE=false and an XLA_PYTHON_CLIENT_MEM_FRACTION that adds up to
# less than 1 (JAX otherwise takes 75% of the memory per process); a process still running 15 s after its limit is killed.
# The interpreter is $MIXLAW_PYTHON (default python3: on the device image the python3 on PATH has JAX and the
# packages; a symlink to it named `python` lost them in session 20, since a venv is found from the link's path).
#
# One device call does it all (a session has 15 device minutes, a machine takes 1-2 to start; one command <= 600 s):
#   here:  mkdir -p .gpu_data && cp -r ../shared/data/chinchilla_epoch ../shared/data/slimpajama .gpu_data/
#          (.gpu_data/ is in .git/info/exclude; name it in the call's carry)
#   call:  export MIXLAW_SHARED_DATA=.gpu_data XLA_PYTHON_CLIENT_PREALLOCATE=false XLA_PYTHON_CLIENT_MEM_FRACTION=.3
#          MIXLAW_GPU_LIMIT=480; bash benchmarks/gpu.sh $OUT/speed speed-float64 &
#          MIXLAW_SCALING_AXES=domains_additive bash benchmarks/gpu.sh $OUT/add scaling-float64 &
#          MIXLAW_SCALING_AXES=domains_joint bash benchmarks/gpu.sh $OUT/joint scaling-float64 & wait
#          with timeout_s 560 (the streams' limit + the kill's 15 s + a margin); at most 8 files come back.
set -u
out=$1
shift
mkdir -p "$out"
python=${MIXLAW_PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MIXLAW_SPEED_BASELINES=none
work=$(mktemp -d)
for part in "$@"; do
    kind=${part%-*}
    dtype=${part#*-}
    if [ "$kind" = speed ]; then
        for problem in ${MIXLAW_GPU_PROBLEMS:-chinchilla synthetic joint additive}; do
            echo "== $part $problem ($(date -u +%H:%M:%S))"
            MIXLAW_SPEED_PROBLEMS=$problem timeout --kill-after=15 "${MIXLAW_GPU_LIMIT:-300}" \
                "$python" -m benchmarks --only speed --dtype "$dtype" --out "$work/$part-$problem" &&
                cp "$work/$part-$problem/speed.json" "$out/$part-$problem.json"
        done
    else
        echo "== $part ($(date -u +%H:%M:%S))"
        timeout --kill-after=15 "${MIXLAW_GPU_LIMIT:-300}" "$python" -m benchmarks --only scaling --dtype "$dtype" --out "$work/$part" &&
            cp "$work/$part/scaling.json" "$out/$part.json"
    fi
done 2>&1 | tee -a "$out/log.txt"
