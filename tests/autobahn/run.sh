#!/usr/bin/env bash
# WebSocket conformance: the Autobahn test cases (run by kosoku, from PyPI, under Python 3)
# against examples/autobahn_echo with the heartbeat and without it (--bare). The wrapped
# server must pass every case the bare one passes. Writes tests/autobahn/summary.md.
#
#   tests/autobahn/run.sh        (needs the venv of .ci/run, with kosoku: WS_HEARTBEAT_VENV,
#                                 else peers-venv in cargo's target directory)
#
# Paths come from cargo (`cargo metadata` for the target directory, the build's JSON messages
# for the example's executable), so CARGO_TARGET_DIR is respected.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
json_field() { # python expression on `m`, one JSON message per line on stdin
    python3 -c "import json, sys
for line in sys.stdin:
    if line.startswith('{'):
        m = json.loads(line)
        v = $1
        if v: print(v)"
}
target_dir=$(cargo metadata --format-version 1 --no-deps | json_field 'm["target_directory"]')
venv=${WS_HEARTBEAT_VENV:-$target_dir/peers-venv}
venv=$(cd "$venv" && pwd)
out=$target_dir/autobahn
rm -rf "$out"
mkdir -p "$out"
server_bin=$(cargo build -q --release --example autobahn_echo --message-format=json \
    | json_field 'm.get("executable") if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "autobahn_echo" else None' \
    | tail -n 1)
[ -x "$server_bin" ] || { echo "cargo reported no executable for autobahn_echo" >&2; exit 1; }

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() { # name, server flags...
    local name=$1; shift
    local port; port=$(free_port)
    "$server_bin" "127.0.0.1:$port" "$@" > "$out/$name-server.log" 2>&1 &
    local server=$!
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    # kosoku exits non-zero when any case fails (the unimplemented ones do): compare.py decides.
    (cd "$out" && "$venv/bin/kosoku" "127.0.0.1:$port" -p 2 -o "$name" > "$name.log" 2>&1) || true
    kill "$server"
    echo "$name: $(tail -n 1 "$out/$name.log")"
}

run bare --bare
run heartbeat
"$venv/bin/python" tests/autobahn/compare.py "$out/bare/index.json" "$out/heartbeat/index.json" "$root/tests/autobahn/summary.md"
