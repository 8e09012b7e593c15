"""Compares two kosoku (Autobahn) reports: every case the bare server passes, the wrapped one
must pass too. Writes a Markdown summary. Usage: compare.py BARE.json WRAPPED.json OUT.md"""
import collections
import json
import sys

PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}


def load(path):
    (agent,) = json.load(open(path)).values()
    return agent


def key(case):
    return [int(part) for part in case.split(".")]


bare, wrapped = load(sys.argv[1]), load(sys.argv[2])
regressions = [
    case
    for case in sorted(bare, key=key)
    if bare[case]["behavior"] in PASSING
    and (wrapped[case]["behavior"] not in PASSING or wrapped[case]["behaviorClose"] not in PASSING)
]
counts = {name: collections.Counter(r["behavior"] for r in report.values()) for name, report in (("bare", bare), ("heartbeat", wrapped))}
behaviors = sorted(set(counts["bare"]) | set(counts["heartbeat"]))
lines = [
    "# Autobahn conformance (kosoku)",
    "",
    "`tests/autobahn/run.sh`: the Autobahn cases against `examples/autobahn_echo`, bare and",
    "with the heartbeat (interval 60 s, first tick after exactly one interval, so that no ping",
    "of ours lands inside a case: the cases compare event lists strictly). UNIMPLEMENTED is",
    "permessage-deflate (cases 12 and 13), which tungstenite does not offer.",
    "",
    "| behavior | bare | heartbeat |",
    "|---|---|---|",
    *[f"| {b} | {counts['bare'][b]} | {counts['heartbeat'][b]} |" for b in behaviors],
    "",
    f"Cases: {len(bare)}. Passed bare but not with the heartbeat: {len(regressions)}"
    + (f" ({', '.join(regressions)})." if regressions else "."),
    "",
]
open(sys.argv[3], "w").write("\n".join(lines))
print("\n".join(lines))
sys.exit(1 if regressions else 0)
