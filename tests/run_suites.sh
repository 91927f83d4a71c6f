#!/usr/bin/env bash
# `make test`: the backend-independent tests once, and the tests marked per_backend under each backend, one pytest
# process each (Keras fixes its backend at import). JOBS lanes (default 2: this project's machines have 2 cores)
# take suites from one queue (in the order below). Where there are at least as many CPUs as lanes, each lane is
# pinned to its own CPUs: every backend sizes its thread pools to the CPUs it may use, and two suites whose pools
# each want every core oversubscribe the machine (unpinned, one TensorFlow test took 11 s in one run, 76 s in the
# next).
# Each suite prints its whole log when it ends; the exit status is 1 when any failed.
set -u
PY=${PY:-.venv/bin/python}
BIN=$(dirname "$PY")
JOBS=${JOBS:-2}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The backend-independent tests in three parts, so that the lanes end together: the files that start backend
# processes, the commands that run benchmark processes or packages, and the rest (any new file joins the rest).
SLOW_ONCE=(tests/test_engine.py tests/test_model_same_start.py tests/test_model_cross_backend.py
           tests/test_progress_overhead.py tests/test_session.py tests/test_runner.py tests/test_parity.py
           tests/test_environments.py tests/test_plugin.py)
MID_ONCE=(tests/test_ab.py tests/test_bisect.py tests/test_matrix.py tests/test_gpu_check.py)

suite() {
    local name=$1 log rc start
    log=$(mktemp -p "$WORK")
    start=$(date +%s)
    case $name in
        once-processes) KERAS_BACKEND=jax "$PY" -m pytest -q --durations=6 -m "not per_backend" "${SLOW_ONCE[@]}" >"$log" 2>&1 ;;
        once-commands) KERAS_BACKEND=jax "$PY" -m pytest -q --durations=6 -m "not per_backend" "${MID_ONCE[@]}" \
                           >"$log" 2>&1 ;;
        once-rest) KERAS_BACKEND=jax "$PY" -m pytest tests -q --durations=6 -m "not per_backend" \
                       "${SLOW_ONCE[@]/#/--ignore=}" "${MID_ONCE[@]/#/--ignore=}" >"$log" 2>&1 ;;
        lint) { "$BIN/ruff" check . && "$BIN/lint-imports"; } >"$log" 2>&1 ;;
        *) KERAS_BACKEND=$name "$PY" -m pytest tests -q --durations=6 -m per_backend >"$log" 2>&1 ;;
    esac
    rc=$?
    {
        flock 9
        case $name in
            once-*) echo "=== backend-independent tests, ${name#once-} (exit $rc, $(( $(date +%s) - start )) s)" ;;
            lint) echo "=== ruff and import-linter (exit $rc, $(( $(date +%s) - start )) s)" ;;
            *) echo "=== tests under KERAS_BACKEND=$name (exit $rc, $(( $(date +%s) - start )) s)" ;;
        esac
        cat "$log"
    } 9>"$WORK/print.lock"
    return $rc
}

# Measured (fresh clone d0d4d50, 2 lanes): once-processes 183 s, tensorflow 165, jax 160, once-rest 80,
# once-commands 69, torch 65, lint under 1 s. In this order one lane takes once-processes then jax, the other
# tensorflow, once-rest, once-commands and torch (379 s against 343: test_plugin's refusals, which start pytest
# processes, moved from once-rest to once-processes since).
printf '%s\n' once-processes tensorflow once-rest jax once-commands torch lint >"$WORK/queue"

next_suite() {
    flock 8
    head -n 1 "$WORK/queue"
    sed -i 1d "$WORK/queue"
} 8>"$WORK/queue.lock"

read -r -a CPUS <<<"$("$PY" -c 'import os; print(*sorted(os.sched_getaffinity(0)))' 2>/dev/null)"

lane() {
    local lane=$1 name mine=() i
    if [ "${#CPUS[@]}" -ge "$JOBS" ] && command -v taskset >/dev/null; then
        for ((i = lane; i < ${#CPUS[@]}; i += JOBS)); do mine+=("${CPUS[$i]}"); done
        local IFS=,
        taskset -cp "${mine[*]}" "$BASHPID" >/dev/null
    fi
    while name=$(next_suite) && [ -n "$name" ]; do
        suite "$name" || touch "$WORK/failed"
    done
}

for ((k = 0; k < JOBS; k++)); do
    lane "$k" &
done
wait
[ ! -e "$WORK/failed" ]
