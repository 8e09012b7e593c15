#!/usr/bin/env bash
# Instructions per echoed message (one round trip), counted by callgrind: the same figure on
# any machine, whatever its load. Each kind of echoing end runs alone in its own process;
# the count of a short run is subtracted from a long one, leaving the per-message cost.
#
# tungstenite zero-fills its read buffer before every read attempt (tungstenite-rs#547), and
# how much it zeroes depends on the buffer's history, not on the code around it: the last
# two columns leave that memset out, which is the fair comparison of the code paths.
#
#   benches/instructions.sh        (needs valgrind: apt-get install valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
# A bench's executable as cargo reports it (CARGO_TARGET_DIR may put it anywhere).
executable() {
    cargo bench --bench "$1" --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line) if line.startswith("{") else {}
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$1"
}
bin=$(executable overhead)
# Background mode and sessions have benches of their own (a fourth end in overhead changes
# the other three).
bin_background=$(executable background)
bin_session=$(executable session)

out=$(mktemp)
trap 'rm -f "$out"' EXIT

count() { # kind, round trips, bytes -> "total memset"
    if [ "$1" = background ]; then
        BACKGROUND_ONLY="$2:$3" valgrind --tool=callgrind --callgrind-out-file="$out" "$bin_background" >/dev/null 2>&1
    elif [ "${1%%:*}" = session ]; then
        SESSION_ONLY="${1#session:}:$2:$3" valgrind --tool=callgrind --callgrind-out-file="$out" "$bin_session" >/dev/null 2>&1
    else
        OVERHEAD_ONLY="$1:$2:$3" valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" >/dev/null 2>&1
    fi
    callgrind_annotate "$out" | awk '
        /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
        /__memset/ { gsub(",", "", $1); memset += $1 }
        END { print total, memset + 0 }'
}

ratio() { awk -v p="$1" -v b="$2" 'BEGIN { printf "%+.2f%%", (p / b - 1) * 100 }'; }

printf '%-6s %-12s %10s %8s %14s %8s\n' bytes kind instr/msg vs_bare "without memset" vs_bare
for size in 20 16384; do
    if [ "$size" -le 1024 ]; then short=1000 long=11000; else short=100 long=1100; fi
    bare=
    for kind in bare heartbeat select_loop background session:heartbeat session:session; do
        read -r a_total a_memset < <(count "$kind" "$short" "$size")
        read -r b_total b_memset < <(count "$kind" "$long" "$size")
        per=$(( (b_total - a_total) / (long - short) ))
        own=$(( (b_total - b_memset - a_total + a_memset) / (long - short) ))
        [ -n "$bare" ] || { bare=$per; bare_own=$own; }
        printf '%-6s %-12s %10d %8s %14d %8s\n' "$size" "$kind" "$per" "$(ratio "$per" "$bare")" \
            "$own" "$(ratio "$own" "$bare_own")"
    done
done
