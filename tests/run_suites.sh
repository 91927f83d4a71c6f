#!/usr/bin/env bash
# `make test`: the backend-independent tests once, and the tests marked per_backend under each backend, one pytest
# process each (Keras fixes its backend at import), JOBS at a time (default 2: this project's machines have 2
# cores). Each prints its whole log when it ends; the exit status is 1 when any failed.
set -u
PY=${PY:-.venv/bin/python}
JOBS=${JOBS:-2}
LOCK=$(mktemp)
trap 'rm -f "$LOCK"' EXIT

suite() {
    local name=$1 log rc start
    log=$(mktemp)
    start=$(date +%s)
    if [ "$name" = once ]; then
        KERAS_BACKEND=jax "$PY" -m pytest tests -q -m "not per_backend" >"$log" 2>&1
    else
        KERAS_BACKEND=$name "$PY" -m pytest tests -q -m per_backend >"$log" 2>&1
    fi
    rc=$?
    {
        flock 9
        if [ "$name" = once ]; then echo "=== backend-independent tests (exit $rc, $(( $(date +%s) - start )) s)"
        else echo "=== tests under KERAS_BACKEND=$name (exit $rc, $(( $(date +%s) - start )) s)"; fi
        cat "$log"
    } 9>"$LOCK"
    rm -f "$log"
    return $rc
}

status=0
running=0
# Longest first, so that the last to start is a short one.
for name in tensorflow once jax torch; do
    if [ "$running" -ge "$JOBS" ]; then
        wait -n || status=1
        running=$((running - 1))
    fi
    suite "$name" &
    running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
    wait -n || status=1
    running=$((running - 1))
done
exit $status
