#!/usr/bin/env bash
# WebSocket conformance: the Autobahn test cases (run by kosoku, from PyPI, under Python 3)
# against examples/autobahn_echo with the heartbeat and without it (--bare). The wrapped
# server must pass every case the bare one passes. Writes tests/autobahn/summary.md.
#
#   tests/autobahn/run.sh        (needs the venv of .ci/run: target/peers-venv with kosoku)
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${WS_HEARTBEAT_VENV:-target/peers-venv}
out=target/autobahn
rm -rf "$out"
mkdir -p "$out"
cargo build -q --release --example autobahn_echo

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() { # name, server flags...
    local name=$1; shift
    local port; port=$(free_port)
    target/release/examples/autobahn_echo "127.0.0.1:$port" "$@" > "$out/$name-server.log" 2>&1 &
    local server=$!
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    # kosoku exits non-zero when any case fails (the unimplemented ones do): compare.py decides.
    (cd "$out" && "../../$venv/bin/kosoku" "127.0.0.1:$port" -p 2 -o "$name" > "$name.log" 2>&1) || true
    kill "$server"
    echo "$name: $(tail -n 1 "$out/$name.log")"
}

run bare --bare
run heartbeat
"$venv/bin/python" tests/autobahn/compare.py "$out/bare/index.json" "$out/heartbeat/index.json" tests/autobahn/summary.md
