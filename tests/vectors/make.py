#!/usr/bin/env python3
"""Writes tests/vectors/wire.json: the wire vectors both implementations check, the Rust one
(src/vectors.rs) and the JavaScript one (js/test/vectors.test.mjs). Each case says what a
frame is, written from PROTOCOL.md and the protocols' documentation, not computed by either
implementation. Run it after adding a case: python3 tests/vectors/make.py

Frames: {"text": "..."} or {"hex": "0a0b..."} (binary). Families:
- heartbeat: what a received frame is under a heartbeat shape (json, text, binary with their
  defaults): a ping and its answer (JSON answers compared as values), a pong and the sequence
  number it echoes (null: none, it answers the latest ping), or data;
- escape: what a data message a side sends becomes on the wire under a shape (control, json,
  text, binary);
- session: what a frame a side receives in a session is, once welcomed, the receiving side
  having sent 10 data messages, none acknowledged: data (unescaped), an acknowledgement with
  its count, ignored (a message of a later version), or a violation (closed with 1002, a
  browser 4002). `to` says which side receives it: either, client or server.
"""
import json, os

DLE = "\u0010"

def t(s): return {"text": s}
def b(*parts):
    out = bytearray()
    for p in parts:
        out += bytes(p) if isinstance(p, (list, bytes, bytearray)) else p
    return {"hex": out.hex()}
def cmd(command, payload, declared=None):
    declared = len(payload) if declared is None else declared
    return bytes([command >> 8, command & 0xff]) + declared.to_bytes(4, "big") + bytes(payload)

heartbeat = []
def ping(shape, frame, answer, note=""): heartbeat.append({"shape": shape, "frame": frame, "is": "ping", "answer": answer, "note": note})
def pong(shape, frame, seq, note=""): heartbeat.append({"shape": shape, "frame": frame, "is": "pong", "seq": seq, "note": note})
def data(shape, frame, note=""): heartbeat.append({"shape": shape, "frame": frame, "is": "data", "note": note})

# --- JSON: {"type":"ping"} / {"type":"pong"}, at most 1024 bytes, nothing after the object.
def jping(text, answer_obj, note=""): ping("json", t(text), {"json": answer_obj}, note)
jping('{"type":"ping"}', {"type": "pong"})
jping('{"type":"ping","id":7}', {"type": "pong", "id": 7}, "other fields echoed")
jping('{"type":"ping","seq":5}', {"type": "pong", "seq": 5})
jping('{"type":"ping","seq":7,"interval":30000}', {"type": "pong", "seq": 7, "interval": 30000}, "an interval request, echoed")
jping('{"type":"ping","id":"abc","ts":1.5}', {"type": "pong", "id": "abc", "ts": 1.5})
jping(' {"type":"ping"}', {"type": "pong"}, "JSON white space before")
jping('\n\t\r {"type":"ping"}', {"type": "pong"}, "every JSON white space before")
jping('{"type":"ping"} \n', {"type": "pong"}, "white space after")
jping('{"type" : "ping"}', {"type": "pong"}, "white space inside")
jping('{"type":"p\\u0069ng"}', {"type": "pong"}, "the value written with an escape")
jping('{"id":1,"type":"ping"}', {"id": 1, "type": "pong"}, "the field not first")
jping('{"type":"pong","type":"ping"}', {"type": "pong"}, "a field given twice: the last wins")
jping('{"type":"ping","nested":{"type":"pong"}}', {"type": "pong", "nested": {"type": "pong"}}, "only the top-level field counts")
jping('{"type":"ping","a":[1,2,{"b":null}]}', {"type": "pong", "a": [1, 2, {"b": None}]})
jping('{"type":"ping","emoji":"\U0001F600"}', {"type": "pong", "emoji": "\U0001F600"})
jping('{"type":"ping","x":"\\u00e9\\n"}', {"type": "pong", "x": "\u00e9\n"})
jping('{"type":"ping","t":true,"f":false,"n":null}', {"type": "pong", "t": True, "f": False, "n": None})
jping('{"type":"ping","neg":-3,"big":4294967296}', {"type": "pong", "neg": -3, "big": 4294967296})
pad = 1024 - len('{"type":"ping","pad":""}')
jping('{"type":"ping","pad":"' + "x" * pad + '"}', {"type": "pong", "pad": "x" * pad}, "exactly 1024 bytes")
def jpong(text, seq, note=""): pong("json", t(text), seq, note)
jpong('{"type":"pong"}', None, "no number: it answers the latest ping")
jpong('{"type":"pong","seq":42}', 42)
jpong('{"type":"pong","seq":0}', 0)
jpong(' {"type":"pong","seq":3}', 3)
jpong('{"seq":8,"type":"pong"}', 8, "the number first")
jpong('{"type":"pong","seq":"42"}', None, "a string is no number")
jpong('{"type":"pong","seq":-1}', None, "negative")
jpong('{"type":"pong","seq":1.5}', None, "not an integer")
jpong('{"type":"pong","seq":5.0}', 5, "an integer, written with a fraction")
jpong('{"type":"pong","seq":1e2}', 100, "an integer, written with an exponent")
jpong('{"type":"pong","seq":9007199254740991}', 9007199254740991, "the largest a browser reads exactly")
jpong('{"type":"pong","seq":9007199254740992}', None, "beyond what a browser reads exactly")
jpong('{"type":"pong","seq":null}', None)
jpong('{"type":"pong","seq":[1]}', None)
jpong('{"type":"pong","id":9}', None, "no seq field")
jpong('{"type":"pong","seq":1,"seq":2}', 2, "a field given twice: the last wins")
for text, note in [
    ('{"type":"ping"', "truncated"), ('{"type":"ping"}x', "something after"), ('{"type":"pong"},', "a comma after"),
    ('[{"type":"ping"}]', "an array"), ('{"type":["ping"]}', "the value in an array"), ('{"type":{"ping":1}}', "the value an object"),
    ('{"Type":"ping"}', "another field"), ('{"type":"ping2"}', "another value"), ('{"type":"PING"}', "case differs"),
    ('"ping"', "a JSON string"), ('ping', "the text shape's ping"), ('', "empty"), ('{', "a brace"), ('{}', "an empty object"),
    ('{"type":null}', "null"), ('{"type":1}', "a number"), ('\ufeff{"type":"ping"}', "a byte order mark is no JSON white space"),
    ('\u2003{"type":"ping"}', "an em space is no JSON white space"), ('{"type":"ping"}{"type":"ping"}', "two objects"),
    ('{"type":"ping",}', "a trailing comma"), ("{'type':'ping'}", "single quotes"), ('{"type":"ping" /* c */}', "a comment"),
    ('{"type":"ping","pad":"' + "x" * (pad + 1) + '"}', "1025 bytes"),
    ('{"type":"ping","pad":"' + "\u00e9" * 600 + '"}', "under 1024 characters, over 1024 bytes"),
    ('{"type":"pong","seq":3', "a truncated pong"), ('{"type":"ping\\u0000"}', "a value with a NUL"),
]:
    data("json", t(text), note)
data("json", b(b'{"type":"ping"}'), "a binary frame: the JSON shape is text")
data("json", b(b'{"type":"pong","seq":3}'), "a binary frame")

# --- Text: exactly "ping" / "pong".
ping("text", t("ping"), t("pong"))
pong("text", t("pong"), None)
for text, note in [("ping ", "a space after"), (" ping", "a space before"), ("Ping", "case"), ("pingpong", "both"),
                   ("", "empty"), ("pong\n", "a newline after"), ("PONG", "case"), ("p\u0000ing", "a NUL inside"),
                   ('{"type":"ping"}', "the JSON shape's ping"), ("pin", "truncated")]:
    data("text", t(text), note)
data("text", b(b"ping"), "a binary frame: the text shape is text")
data("text", b(b"pong"), "a binary frame")

# --- BinaryCommand: BE u16 command (100 ping, 101 pong), BE u32 length, that many bytes (at most 1024).
ping("binary", b(cmd(100, [])), b(cmd(101, [])), "empty payload")
ping("binary", b(cmd(100, range(8))), b(cmd(101, range(8))), "our ping's sequence number")
ping("binary", b(cmd(100, list(range(8)) + [0, 0, 0x75, 0x30])), b(cmd(101, list(range(8)) + [0, 0, 0x75, 0x30])), "with an interval")
ping("binary", b(cmd(100, [0xff, 0xfe, 0x80, 0xc3, 0x28])), b(cmd(101, [0xff, 0xfe, 0x80, 0xc3, 0x28])), "invalid UTF-8 in the payload")
ping("binary", b(cmd(100, [7] * 1024)), b(cmd(101, [7] * 1024)), "1024 bytes of payload")
ping("binary", b(cmd(100, [0x10, 0x10])), b(cmd(101, [0x10, 0x10])), "a payload of DLEs")
pong("binary", b(cmd(101, (42).to_bytes(8, "big"))), 42)
pong("binary", b(cmd(101, (2**40 + 5).to_bytes(8, "big"))), 2**40 + 5)
pong("binary", b(cmd(101, (7).to_bytes(8, "big") + bytes([0, 0, 0x75, 0x30]))), 7, "the first 8 of 12 bytes")
pong("binary", b(cmd(101, [])), None, "no number")
pong("binary", b(cmd(101, [1, 2, 3, 4])), None, "4 bytes: no number")
pong("binary", b(cmd(101, [0] * 9)), None, "9 bytes: no number")
for frame, note in [
    (cmd(100, range(8), declared=9), "a declared length over the payload"), (cmd(100, range(8), declared=7), "under it"),
    (cmd(100, [0] * 1025), "1025 bytes of payload"), (cmd(102, []), "another command"), (cmd(0x6400, []), "the command's bytes swapped"),
    (bytes([0, 100, 0, 0, 0]), "5 bytes"), (bytes([0, 100]), "2 bytes"), (b"", "empty"), (bytes([0]), "1 byte"),
    (cmd(100, [], declared=0xFFFFFFFF), "a huge declared length"), (cmd(101, [1], declared=0), "a pong with a byte more"),
]:
    data("binary", b(frame), note)
data("binary", t("\u0000d\u0000\u0000\u0000\u0000"), "a text frame: the binary shape is binary")

# --- escape: what a data message becomes on the wire.
escape = []
def esc(shape, msg, wire, note=""): escape.append({"shape": shape, "data": msg, "wire": wire, "note": note})
def same(shape, msg, note=""): esc(shape, msg, msg, note)
for shape in ["control", "json", "text", "binary"]:
    esc(shape, t(DLE + "hi"), t(DLE * 3 + "hi"), "a text that begins with DLE")
    esc(shape, t(DLE), t(DLE * 3), "DLE alone")
    esc(shape, t(DLE * 2 + "x"), t(DLE * 4 + "x"), "what looks escaped already")
    esc(shape, b([0x10, 1, 2]), b([0x10, 0x10, 0x10, 1, 2]), "binary that begins with 0x10")
    esc(shape, b([0x10]), b([0x10, 0x10, 0x10]), "0x10 alone")
    same(shape, t("hello"))
    same(shape, t(""), "empty text")
    same(shape, b([]), "empty binary")
    same(shape, b([0xff, 0xfe, 0x80]), "invalid UTF-8")
    same(shape, t("x" + DLE), "DLE not first")
for msg in ['{"type":"ping"}', '{"type":"pong","seq":1}', '{"x":"pong"}', '{"a":"\\n"}', ' {"type":"ping"}', '\t\n{"ping":1}',
            '{"type":"p\\u0069ng"}', '{"type":"ping"', '{"type":"ping"}x', '{"Type":"PING","v":"ping"}']:
    esc("json", t(msg), t(DLE * 2 + msg), "a JSON lookalike: it begins with {, and holds ping, pong or a backslash")
    same("control", t(msg), "no lookalike under control frames")
    same("text", t(msg), "no lookalike under the text shape")
for msg, note in [('{"a":1}', "no ping, pong or backslash"), ('[{"type":"ping"}]', "not an object"), ('x{"type":"ping"}', "not first"),
                  ('\ufeff{"type":"ping"}', "a byte order mark is no JSON white space"), ('\u2003{"type":"ping"}', "an em space is none either"),
                  ('{"type":"ping","pad":"' + "x" * pad + 'x"}', "1025 bytes"), ("ping", "the text shape's ping"), ("PING", "")]:
    same("json", t(msg), note)
esc("json", t('{"type":"ping","pad":"' + "x" * pad + '"}'), t(DLE * 2 + '{"type":"ping","pad":"' + "x" * pad + '"}'), "1024 bytes")
same("json", b(b'{"type":"ping"}'), "binary is never a JSON lookalike")
esc("text", t("ping"), t(DLE * 2 + "ping"), "the text shape's ping")
esc("text", t("pong"), t(DLE * 2 + "pong"), "its pong")
same("text", t("ping "), "not exactly")
same("text", b(b"ping"), "binary is never a text lookalike")
same("json", t("ping"), "not a JSON lookalike")
esc("binary", b(cmd(100, range(8))), b(bytes([0x10, 0x10]) + cmd(100, range(8))), "a binary ping")
esc("binary", b(cmd(101, [])), b(bytes([0x10, 0x10]) + cmd(101, [])), "a binary pong")
same("binary", b(cmd(100, range(8), declared=9)), "a malformed command is no lookalike")
same("binary", b(cmd(102, [])), "another command")
same("json", b(cmd(100, range(8))), "a binary ping under the JSON shape")
same("binary", t("\u0000d\u0000\u0000\u0000\u0000"), "text is never a binary lookalike")

# --- session: a frame received once welcomed, having sent 10 unacknowledged data messages.
session = []
def s(frame, is_, to="either", note="", **extra): session.append({"to": to, "frame": frame, "is": is_, "note": note, **extra})
s(t("hello"), "data", data=t("hello"))
s(t(""), "data", data=t(""), note="empty text")
s(t(DLE * 2 + "hello"), "data", data=t("hello"), note="escaped")
s(t(DLE * 2), "data", data=t(""), note="escaped, empty")
s(t(DLE * 3 + "ack 1"), "data", data=t(DLE + "ack 1"), note="an escaped lookalike of an ack")
s(t(DLE * 2 + '{"type":"ping"}'), "data", data=t('{"type":"ping"}'), note="an escaped heartbeat lookalike")
s(t("x" + DLE + "ack 1"), "data", data=t("x" + DLE + "ack 1"), note="DLE not first")
s(b([1, 2, 3]), "data", data=b([1, 2, 3]))
s(b([]), "data", data=b([]), note="empty binary")
s(b([0x10, 0x10, 0xff, 0x80]), "data", data=b([0xff, 0x80]), note="escaped binary")
s(b([0x10, 0x10]), "data", data=b([]), note="escaped empty binary")
s(b([0xff, 0x10]), "data", data=b([0xff, 0x10]), note="0x10 not first")
s(b([0x10]), "violation", note="a reserved binary frame: 0x10 alone")
s(b([0x10, 0xff]), "violation", note="reserved: 0x10 then not 0x10")
s(b([0x10, 0x11, 0x10]), "violation", note="reserved")
s(b(DLE.encode() + b"ack 1"), "violation", note="a session message in a binary frame is reserved")
for n in [0, 1, 5, 10]:
    s(t(DLE + f"ack {n}"), "ack", count=n)
s(t(DLE + "ack 5 and more"), "ack", count=5, note="later words ignored")
s(t(DLE + "ack 05"), "ack", count=5, note="a leading zero")
for word, note in [("ack 11", "beyond what was sent"), ("ack", "no number"), ("ack -1", "a sign"), ("ack +5", "a sign"),
                   ("ack 1.5", "a fraction"), ("ack x", "not a number"), ("ack  5", "two spaces"), ("ack 5 ", "a trailing space: an empty word is ignored"),
                   ("ack 18446744073709551616", "beyond u64"), ("ack 123456789012345678901", "21 digits"),
                   ("ack " + "1" * 300, "over 256 bytes")]:
    if note.startswith("a trailing space"):
        s(t(DLE + word), "ack", count=5, note=note)
    else:
        s(t(DLE + word), "violation", note=note)
for n in [0, 5, 10]:
    s(t(DLE + f"finish {n}"), "finish", count=n, note="the server's finish to a client, the client's answer to a server (section 8): an acknowledgement too")
for word, note in [("finish 11", "beyond what was sent"), ("finish", "no number"), ("finish x", "not a number")]:
    s(t(DLE + word), "violation", note=note)
s(t(DLE + "ack 5 " + "x" * 300), "violation", note="a session message over 256 bytes")
s(t(DLE + "gossip " + "x" * 300), "violation", note="over 256 bytes, whatever its name")
for word, note in [("gossip 1 2", "a name this version does not know"), ("", "DLE alone"), (" ack 5", "an empty name"),
                   ("ACK 5", "names are case-sensitive"), ("acknowledge 5", "another name"), ("welcome2 1", "another name")]:
    s(t(DLE + word), "ignored", note=note)
TOKEN = "0123456789abcdef0123456789abcdef"
s(t(DLE + f"welcome 1 {TOKEN} 0 1000 30000"), "violation", to="client", note="a second welcome")
s(t(DLE + f"hello 1 resume {TOKEN} {TOKEN} 0"), "violation", to="client", note="a hello to a client")
s(t(DLE + f"hello 1 new {TOKEN} {TOKEN} 1000"), "violation", to="client", note="a hello to a client")
s(t(DLE + f"welcome 1 {TOKEN} 0 1000 30000"), "violation", to="server", note="a welcome to a server")
s(t(DLE + f"hello 1 resume {TOKEN} {TOKEN} 0"), "violation", to="server", note="a hello once welcomed")
s(t(DLE + "welcome 1"), "violation", to="client", note="a malformed welcome")
s(t(DLE + "hello"), "violation", to="server", note="a malformed hello")

out = {"about": __doc__.strip().split("\n\n")[0].replace("\n", " "), "heartbeat": heartbeat, "escape": escape, "session": session}
path = os.path.join(os.path.dirname(__file__), "wire.json")
with open(path, "w", encoding="utf-8") as f:
    json.dump(out, f, ensure_ascii=True, indent=1)
    f.write("\n")
print(f"{len(heartbeat)} heartbeat, {len(escape)} escape, {len(session)} session cases: {len(heartbeat) + len(escape) + len(session)}")
