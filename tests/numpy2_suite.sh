#!/usr/bin/env bash
# Run the client-side tests under numpy 2 against a real server started from the main venv.
# nvidia-pytriton pins numpy<2, so the server's venv cannot have numpy 2; perfprobe itself must.
# usage: tests/numpy2_suite.sh MAIN_VENV NUMPY2_VENV
set -euo pipefail
main_venv=$1
np2_venv=$2
log=$(mktemp)
"$main_venv/bin/perfprobe" serve --free-ports --models tests/models >"$log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 900); do
  grep -q "Ctrl-C to stop" "$log" && break
  kill -0 $server 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.2
done
http=$(grep -oP 'HTTP\s+http://\K\S+' "$log")
grpc=$(grep -oP 'gRPC\s+\K\S+' "$log")
"$np2_venv/bin/python" -c 'import numpy; assert numpy.__version__ >= "2", numpy.__version__; print("numpy", numpy.__version__)'
PERFPROBE_TEST_SERVER="$http,$grpc" "$np2_venv/bin/python" -m pytest -q -ra -p no:cacheprovider \
  tests/test_datatypes.py tests/test_client.py tests/test_remote_model.py tests/test_cli.py \
  tests/test_library.py tests/test_engine_unit.py tests/test_spread_unit.py tests/test_processes.py \
  tests/test_sequences_unit.py tests/test_grpc_wire.py tests/test_intervals.py
