#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_decoders (tests/fuzz/corpus/).

Python standard library only: the msgpack bytes are written by hand from the
format specification, so the seeds do not depend on the encoder under test.
Input layout (see fuzz_decoders.cpp): byte 0 holds flags (bit 0 worker
protocol, bit 1 tight limits, bit 2 envelope mode); in envelope mode the
frames follow, separated by the byte 0xC1, which msgpack never uses.

    python3 tests/fuzz/make_corpus.py [--out DIR]
"""
import argparse
import os
import struct

# ---- a minimal msgpack writer ----------------------------------------------------------


class F32:
    """A float to be written as float32 (0xca)."""

    def __init__(self, v):
        self.v = v


class Raw:
    """Bytes inserted as they are (hostile headers, ext types)."""

    def __init__(self, b):
        self.b = b


def pack(v):
    if isinstance(v, Raw):
        return v.b
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v <= 0x7F:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack(">b", v)
        if v > 0:
            for tag, fmt, top in ((0xCC, ">B", 0xFF), (0xCD, ">H", 0xFFFF),
                                  (0xCE, ">I", 0xFFFFFFFF), (0xCF, ">Q", 2**64 - 1)):
                if v <= top:
                    return bytes([tag]) + struct.pack(fmt, v)
        for tag, fmt, lo in ((0xD0, ">b", -2**7), (0xD1, ">h", -2**15),
                             (0xD2, ">i", -2**31), (0xD3, ">q", -2**63)):
            if v >= lo:
                return bytes([tag]) + struct.pack(fmt, v)
        raise ValueError(v)
    if isinstance(v, F32):
        return b"\xca" + struct.pack(">f", v.v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        v = v.encode("utf-8", "surrogateescape")
        n = len(v)
        if n < 32:
            return bytes([0xA0 | n]) + v
        if n <= 0xFF:
            return b"\xd9" + struct.pack(">B", n) + v
        if n <= 0xFFFF:
            return b"\xda" + struct.pack(">H", n) + v
        return b"\xdb" + struct.pack(">I", n) + v
    if isinstance(v, (bytes, bytearray)):
        n = len(v)
        if n <= 0xFF:
            return b"\xc4" + struct.pack(">B", n) + bytes(v)
        if n <= 0xFFFF:
            return b"\xc5" + struct.pack(">H", n) + bytes(v)
        return b"\xc6" + struct.pack(">I", n) + bytes(v)
    if isinstance(v, (list, tuple)):
        n = len(v)
        head = bytes([0x90 | n]) if n < 16 else (
            b"\xdc" + struct.pack(">H", n) if n <= 0xFFFF else b"\xdd" + struct.pack(">I", n))
        return head + b"".join(pack(e) for e in v)
    if isinstance(v, dict):
        n = len(v)
        head = bytes([0x80 | n]) if n < 16 else (
            b"\xde" + struct.pack(">H", n) if n <= 0xFFFF else b"\xdf" + struct.pack(">I", n))
        return head + b"".join(pack(k) + pack(x) for k, x in v.items())
    raise TypeError(type(v))


# ---- message bodies (field names = protocol.hpp members) --------------------------------

BLOB = b"\x89PNG\r\n\x1a\n-tiny-"  # no 0xC1 byte: it separates frames
assert b"\xc1" not in BLOB

PARAMS = {
    "steps": 20, "cfg": 4.5, "seed": -1, "size": "1024x1024", "hdr": False,
    "neg": -123456789012, "half": F32(0.5), "none": None, "list": [1, 2.0, "three", [True]],
    "nested": {"a": {"b": {"c": 1}}}, "bytes": b"\x00\x01\x02",
    "text": "line\n\t\"quoted\"\\ \x01\x1f caf\u00e9 \U0001F600",
    "bad_utf8": Raw(b"\xa6\xff\xfe\xc3\x28\xed\xa0"),
    "big": 2**63 - 1, "tiny": 5e-324, "huge": 1e308,
}

ERROR = {"req": 7, "job": "j-42", "code": "timeout", "message": "deadline passed"}
JOB_INFO = {"req": 3, "job": "j-42", "service": "image", "model": "qwen-image", "state": "failed",
            "priority": 9, "attempts": 2, "position": 0, "waiting_for": "", "worker": "w7",
            "created_s": 1795423269.5, "updated_s": 1795423270.25, "error": ERROR}

BODIES = {
    "submit": {"req": 1, "service": "image", "model": "qwen-image", "params": PARAMS,
               "inputs": [{"name": "init", "mime": "image/png", "size": len(BLOB)}],
               "priority": 7, "timeout_ms": 60000, "key": "idem-1"},
    "jobref": {"req": 2, "job": "j-42"},
    "list": {"req": 3, "service": "text", "limit": 10},
    "workers": {"req": 4},
    "accepted": {"req": 1, "job": "j-42", "existing": True},
    "queued": {"job": "j-42", "position": 3, "waiting_for": "no worker advertises model 'x'"},
    "started": {"job": "j-42", "worker": "w7", "attempt": 2},
    "progress": {"job": "j-42", "step": 3, "total": 20, "eta_s": 1.5, "message": "denoising",
                 "preview": {"name": "preview", "mime": "image/png", "size": len(BLOB)}},
    "partial": {"job": "j-42", "seq": 0, "data": {"text": "Hello", "tokens": [9707, 11]}},
    "result": {"job": "j-42", "outputs": [{"name": "image", "mime": "image/png", "size": len(BLOB)}],
               "data": {"text": "done"}, "metrics": {"steps_per_s": 2.5, "tokens": 12}},
    "error": ERROR,
    "cancelled": {"job": "j-42"},
    "jobinfo": JOB_INFO,
    "joblist": {"req": 5, "jobs": [JOB_INFO, {"job": "j-43", "state": "queued"}]},
    "workerlist": {"req": 6, "services": [{"service": "echo", "workers": 2, "models": ["echo"],
                                           "capacity": 4, "load": 1, "queued": 0}]},
    "ready": {"service": "text", "models": ["qwen3-0.6b", "qwen2.5-0.5b"], "capacity": 4,
              "device": "cuda:0", "version": "0.1.0", "name": "host:1234"},
    "job": {"job": "j-42", "service": "image", "model": "qwen-image", "params": PARAMS,
            "inputs": [{"name": "init", "mime": "image/png", "size": len(BLOB)}],
            "attempt": 1, "timeout_ms": 5000},
    "heartbeat": {},
    "cancel": {"job": "j-42"},
    "disconnect": {"reason": "shutting down"},
    "valuemap": PARAMS,
}

# (body name, command byte, blob frames) per protocol.
CLIENT = [("submit", 0x01, [BLOB]), ("jobref", 0x02, []), ("jobref", 0x03, []),
          ("jobref", 0x04, []), ("jobref", 0x05, []), ("list", 0x06, []), ("workers", 0x07, []),
          ("accepted", 0x11, []), ("queued", 0x12, []), ("started", 0x13, []),
          ("progress", 0x14, [BLOB]), ("partial", 0x15, []), ("result", 0x16, [BLOB]),
          ("error", 0x17, []), ("cancelled", 0x18, []), ("jobinfo", 0x19, []),
          ("joblist", 0x1A, []), ("workerlist", 0x1B, [])]
WORKER = [("ready", 0x21, []), ("job", 0x22, [BLOB]), ("heartbeat", 0x23, []),
          ("progress", 0x24, [BLOB]), ("partial", 0x25, []), ("result", 0x26, [BLOB]),
          ("error", 0x27, []), ("cancel", 0x28, []), ("disconnect", 0x29, [])]

FLAG_WORKER, FLAG_TIGHT, FLAG_ENVELOPE = 1, 2, 4
SEP = b"\xc1"


def envelope(flags, frames):
    for f in frames[2:]:
        assert SEP not in f, "a frame must not contain the separator"
    return bytes([flags | FLAG_ENVELOPE]) + SEP.join(frames)


def nested(depth):
    v = 1
    for _ in range(depth):
        v = [v]
    return v


def seeds():
    out = {}
    for name, body in BODIES.items():
        out["body-" + name] = bytes([0]) + pack(body)
    out["body-tight-submit"] = bytes([FLAG_TIGHT]) + pack(BODIES["submit"])
    for name, cmd, blobs in CLIENT:
        out["env-client-%02x-%s" % (cmd, name)] = envelope(
            0, [b"MMGC01", bytes([cmd]), pack(BODIES[name])] + blobs)
    for name, cmd, blobs in WORKER:
        out["env-worker-%02x-%s" % (cmd, name)] = envelope(
            FLAG_WORKER, [b"MMGW01", bytes([cmd]), pack(BODIES[name])] + blobs)

    # Hostile bodies: each must be refused with a ProtocolError.
    hostile = {
        "array32-4g": {"req": 1, "service": "x", "params": {"a": Raw(b"\xdd\xff\xff\xff\xff")}},
        "map32-4g": Raw(b"\xdf\xff\xff\xff\xff"),
        "array16-nested": Raw(b"\x81\xa1a" + b"\xdc\xff\xff" * 40),
        "deep-20": {"service": "x", "params": {"d": nested(20)}},
        "truncated": pack(BODIES["submit"])[:-7],
        "trailing": pack(BODIES["jobref"]) + b"\x00garbage",
        "ext-fixext4": {"job": "j", "x": Raw(b"\xd6\x01abcd")},
        "ext8": {"service": "x", "params": {"e": Raw(b"\xc7\x02\x05ab")}},
        "int-key": {1: "one", "job": "j"},
        "uint64-max-param": {"service": "x", "params": {"n": 2**64 - 1}},
        "not-a-map": pack([1, 2, 3]),
        "wrong-types": {"req": "one", "service": 5, "params": [1], "inputs": {"a": 1},
                        "priority": "high", "timeout_ms": -1, "key": b"k"},
        "priority-10": {"service": "image", "priority": 10},
        "service-bad-chars": {"service": "im age/../", "req": 1},
        "capacity-0": {"service": "text", "capacity": 0},
        "blob-wrong-types": {"job": "j", "outputs": [{"name": 1, "mime": None, "size": "big"}]},
        "str32-huge": {"job": Raw(b"\xdb\x7f\xff\xff\xff")},
        "bin32-huge": {"job": "j", "data": {"b": Raw(b"\xc6\xff\xff\xff\xff")}},
        "empty": b"",
        "nil-field": Raw(b"\x81\xa3job\xc0"),
    }
    for name, body in hostile.items():
        raw = body if isinstance(body, bytes) else pack(body)
        out["hostile-" + name] = bytes([0]) + raw
    out["hostile-tight-wide-map"] = bytes([FLAG_TIGHT]) + pack({str(i): i for i in range(12)})

    # Hostile envelopes.
    jobref = pack(BODIES["jobref"])
    out["env-bad-protocol"] = envelope(0, [b"MMGC02", b"\x03", jobref])
    out["env-worker-frame-on-client"] = envelope(0, [b"MMGW01", b"\x03", jobref])
    out["env-two-byte-command"] = envelope(0, [b"MMGC01", b"\x03\x00", jobref])
    out["env-two-frames"] = envelope(0, [b"MMGC01", b"\x03"])
    out["env-unknown-command"] = envelope(0, [b"MMGC01", b"\x7f", jobref])
    out["env-blob-count-mismatch"] = envelope(0, [b"MMGC01", b"\x01", pack(BODIES["submit"])])
    out["env-blob-size-mismatch"] = envelope(
        0, [b"MMGC01", b"\x01", pack(BODIES["submit"]), BLOB + b"x"])
    out["env-tight-too-many-blobs"] = envelope(
        FLAG_TIGHT | FLAG_WORKER, [b"MMGW01", b"\x26", pack(BODIES["result"])] + [BLOB] * 6)
    big = {"job": "j-1", "outputs": [{"name": "o", "size": 200}], "data": {}}
    out["env-tight-result-over-total"] = envelope(
        FLAG_TIGHT | FLAG_WORKER, [b"MMGW01", b"\x26", pack(big), b"\x00" * 200])
    return out


# Dictionary for libFuzzer: protocol frames, every field name as a msgpack
# string, and the headers that matter (big counts, ext, the separator).
FIELDS = sorted({"req", "service", "model", "params", "inputs", "priority", "timeout_ms", "key",
                 "job", "limit", "existing", "position", "waiting_for", "worker", "attempt",
                 "step", "total", "eta_s", "message", "preview", "seq", "data", "outputs",
                 "metrics", "code", "state", "attempts", "created_s", "updated_s", "error",
                 "jobs", "services", "workers", "models", "capacity", "load", "queued", "device",
                 "version", "name", "mime", "size", "reason"})
TOKENS = [b"MMGC01", b"MMGW01", b"\xc1", b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff",
          b"\xdc\xff\xff", b"\xde\xff\xff", b"\xdb\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff",
          b"\xd6\x01", b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff", b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"]
TOKENS += [pack(s) for s in ("queued", "running", "succeeded", "failed", "cancelled",
                             "invalid_request", "too_large", "not_found")]


def dictionary():
    lines = ["# generated by make_corpus.py"]
    for tok in [pack(f) for f in FIELDS] + TOKENS:
        lines.append('"%s"' % "".join(chr(b) if 0x20 <= b < 0x7f and chr(b) not in '"\\' else "\\x%02x" % b
                                       for b in tok))
    return "\n".join(lines) + "\n"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(here, "corpus"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    items = seeds()
    for name, data in sorted(items.items()):
        with open(os.path.join(args.out, name), "wb") as f:
            f.write(data)
    with open(os.path.join(here, "fuzz.dict"), "w") as f:
        f.write(dictionary())
    print("wrote %d seeds to %s and fuzz.dict" % (len(items), args.out))


if __name__ == "__main__":
    main()
