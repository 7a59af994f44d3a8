#!/bin/sh
# The long versions of the reliability tests, then a long fuzz run.
#
#   scripts/soak.sh                 # 3 soak rounds + 30 minutes of fuzzing
#   SOAK_ROUNDS=1 FUZZ_SECONDS=600 scripts/soak.sh
#
# PISTON_SOAK=1 switches tests/reliability to its soak sizes (60,000 resets
# under ASan, 3,000 slowloris connections, 10 rounds over 10,000 keep-alive
# connections, the whole fuzz corpus replayed over TCP, ...). Each round's
# figures go to build/reliability-figures-soak-N.json. Traffic stays on
# 127.0.0.1; every loop and every read in the tests is bounded.
set -eu
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-/usr/bin/python3}
SOAK_ROUNDS=${SOAK_ROUNDS:-3}
FUZZ_SECONDS=${FUZZ_SECONDS:-1800}
FUZZ_SEED=${FUZZ_SEED:-0}
SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"

make all
make BUILD=build-asan CC=clang OPT=-O1 SAN="$SAN" all
make dev node  # the Python and Node hosts of the host tests

i=1
while [ "$i" -le "$SOAK_ROUNDS" ]; do
    echo "soak: round $i of $SOAK_ROUNDS"
    PISTON_SOAK=1 PISTON_FIGURES="build/reliability-figures-soak-$i.json" \
        "$PYTHON" -m pytest -q tests/reliability
    i=$((i + 1))
done

echo "soak: fuzzing for ${FUZZ_SECONDS}s"
make fuzz FUZZ_SECONDS="$FUZZ_SECONDS" FUZZ_SEED="$FUZZ_SEED"
echo "soak: done"
