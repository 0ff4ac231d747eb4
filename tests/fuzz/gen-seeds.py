#!/usr/bin/env python3
"""Writes the seed corpora, apart from the valid IPC frames (gen-ipc-seeds.c).

    gen-seeds.py VECTORS

VECTORS is the file of real deepstream 7.0.2 ws-binary frames captured on
loopback, tests/wire/vectors.txt (one "[conn] C>S|S>C hex..." line per
frame); each becomes a file in corpus-wire/.  The malformed and edge cases
of both corpora are built here byte by byte, so each one says what it is.
The files are committed: run this again only to add cases.
"""
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
WIRE = os.path.join(HERE, "corpus-wire")
IPC = os.path.join(HERE, "corpus-ipc")


def put(directory, name, data):
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


# ---- protobuf, by hand ----

def varint(v):
    v &= (1 << 64) - 1  # int32/int64 negatives are 10 bytes
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def f_varint(field, v):
    return varint(field << 3) + varint(v)


def f_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return varint(field << 3 | 2) + varint(len(b)) + b


def outer(topic, inner=None):
    m = f_varint(2, topic)
    if inner is not None:
        m += f_bytes(3, inner)
    return m


def payload(body):
    return varint(len(body)) + body


PARSER, CONNECTION, AUTH, EVENT, RECORD = 1, 2, 3, 4, 5


def wire_seeds(vectors):
    n = 0
    with open(vectors) as f:
        for line in f:
            m = re.match(r"\s*\[(\w)\]\s+(C>S|S>C)\s+([0-9a-f ]+)$", line)
            if not m:
                continue
            data = bytes.fromhex(m.group(3))
            topic = data[2] if len(data) > 2 else 0
            direction = "c2s" if m.group(2) == "C>S" else "s2c"
            n += 1
            put(WIRE, "vec-%02d-%s-topic%d" % (n, direction, topic), data)
    if n == 0:
        sys.exit("no vectors in %s" % vectors)

    emit = payload(outer(EVENT, f_varint(1, 2) + f_bytes(2, '{"a":1}') +
                         f_bytes(6, "news")))
    cases = {
        # The prefix must be a varint equal to the bytes after it.
        "bad-empty": b"",
        "bad-prefix-long": bytes([emit[0] + 1]) + emit[1:],
        "bad-prefix-short": bytes([emit[0] - 1]) + emit[1:],
        "bad-prefix-trailing-byte": emit + b"\x00",
        "bad-prefix-truncated": b"\x80",
        "bad-prefix-11-bytes": b"\xff" * 10 + b"\x01",
        "bad-prefix-10th-byte": b"\xff" * 9 + b"\x02",
        "bad-prefix-huge": varint(1 << 63) + b"\x10\x04",
        # Broken protobuf.
        "bad-no-topic": payload(f_bytes(3, f_varint(1, 2))),
        "bad-wire-type-7": payload(b"\x17\x00"),
        "bad-length-past-end": payload(b"\x10\x04\x1a\x0a\x08\x02"),
        "bad-inner-garbage": payload(outer(EVENT, b"\xff\xff\xff")),
        "bad-inner-truncated-varint": payload(outer(EVENT, b"\x08\xff")),
        "bad-topic-truncated-varint": payload(b"\x10\xff\xff"),
        # Text must be UTF-8 without NUL.
        "bad-utf8-overlong": payload(outer(EVENT, f_bytes(2, b"\xc0\x80"))),
        "bad-utf8-surrogate": payload(outer(EVENT, f_bytes(6, b"\xed\xa0\x80"))),
        "bad-utf8-past-max": payload(outer(EVENT, f_bytes(3, b"\xf4\x90\x80\x80"))),
        "bad-utf8-truncated": payload(outer(CONNECTION, f_bytes(5, b"ws:\xe2\x82"))),
        "bad-utf8-lone-continuation": payload(outer(AUTH, f_bytes(2, b"\x80"))),
        "bad-nul-in-name": payload(outer(EVENT, f_bytes(6, b"a\x00b"))),
        "bad-nul-in-names": payload(outer(EVENT, f_bytes(7, "ok") + f_bytes(7, b"\x00"))),
        "bad-nul-in-parser-data": payload(outer(PARSER, f_bytes(2, b"\x00"))),
        # Decodes: topics we do not map carry only the topic.
        "ok-topic-negative": payload(outer(-1, b"")),
        "ok-topic-unknown": payload(outer(200, b"\x08\x01")),
        "ok-topic-record-garbage-inner": payload(outer(RECORD, b"\xff\xff")),
        "ok-topic-int32-max": payload(outer(0x7FFFFFFF)),
        "ok-topic-twice": payload(f_varint(2, 1) + outer(EVENT, f_varint(1, 2))),
        "ok-event-no-inner": payload(outer(EVENT)),
        "ok-event-empty-inner": payload(outer(EVENT, b"")),
        "ok-event-all-fields": payload(outer(EVENT,
            f_varint(1, 106) + f_bytes(2, '{"x":[1,2]}') + f_bytes(3, "c9") +
            f_varint(4, 1) + f_varint(5, 0) + f_bytes(6, "a/b") +
            f_bytes(7, "one") + f_bytes(7, "") + f_bytes(7, "three") +
            f_bytes(8, "sub") + f_varint(10, EVENT) + f_varint(11, 3))),
        "ok-event-empty-strings": payload(outer(EVENT,
            f_bytes(2, "") + f_bytes(3, "") + f_bytes(6, "") + f_bytes(7, ""))),
        "ok-event-unknown-action": payload(outer(EVENT, f_varint(1, 9999))),
        "ok-event-negative-actions": payload(outer(EVENT,
            f_varint(1, -5) + f_varint(11, -2147483648))),
        "ok-event-action-64bit": payload(outer(EVENT, f_varint(1, (1 << 40) + 3))),
        "ok-event-bool-2": payload(outer(EVENT, f_varint(5, 2))),
        "ok-event-repeated-data": payload(outer(EVENT,
            f_bytes(2, "first") + f_bytes(2, "last"))),
        "ok-event-unicode": payload(outer(EVENT,
            f_bytes(6, "caf\u00e9/\U0001F389") + f_bytes(2, '"\u20ac"'))),
        "ok-unknown-fields": payload(f_varint(1, 7) + outer(EVENT,
            f_varint(1, 2) + f_varint(15, 1) + f_bytes(16, "skip") +
            varint(17 << 3 | 5) + b"\x01\x02\x03\x04" +
            varint(18 << 3 | 1) + b"\x00" * 8 + f_bytes(6, "n"))),
        "ok-parser-unknown-topic": payload(outer(PARSER,
            f_varint(1, 1) + f_bytes(2, "9") + f_varint(8, 9) + f_varint(9, 1))),
        "ok-connection-all-fields": payload(outer(CONNECTION,
            f_varint(1, 7) + f_bytes(2, '"ws://other:6020"') + f_varint(3, 0) +
            f_varint(4, 1) + f_bytes(5, "ws://h/ds") + f_bytes(6, "0.1a") +
            f_bytes(7, "7.0.5") + f_bytes(8, "c"))),
        "ok-auth-flags": payload(outer(AUTH,
            f_varint(1, 4) + f_varint(3, 1) + f_varint(4, 0) +
            f_bytes(2, '"bad password"'))),
    }
    # For the encode direction of fuzz-wire.c: topic selector, action,
    # flags, original action, then NUL-separated text fields.
    def enc(sel, action, flags, orig, *texts):
        return (struct.pack("<BiBi", sel, action, flags, orig) +
                b"\0".join(t.encode() for t in texts))

    cases.update({
        "enc-parser": enc(0, 1, 0x10, 9, "bad topic"),
        "enc-connection-all": enc(1, 5, 0x0f, 0, "", "ws://h:6020/ds",
                                  "0.1a", "7.0.5", "javascript"),
        "enc-auth": enc(2, 2, 0x05, 0, '{"username":"alice"}'),
        "enc-event-negative": enc(3, -1, 0x1f, -2147483648, '{"a":1}', "c",
                                  "n/\u00e9", "one", "", "three"),
        # Over 16 KiB: a 3-byte length prefix.
        "enc-event-long-data": enc(3, 2, 0, 0, "x" * 17000, "", "big"),
    })
    for name, data in cases.items():
        put(WIRE, name, data)


# ---- msgpack, by hand ----

def mp_str(s):
    if isinstance(s, str):
        s = s.encode()
    n = len(s)
    if n < 32:
        return bytes([0xA0 | n]) + s
    if n < 256:
        return b"\xd9" + bytes([n]) + s
    if n < 65536:
        return b"\xda" + struct.pack(">H", n) + s
    return b"\xdb" + struct.pack(">I", n) + s


def mp_int(i):
    if 0 <= i < 128:
        return bytes([i])
    if -32 <= i < 0:
        return struct.pack(">b", i)
    if 0 <= i < 1 << 32:
        return b"\xce" + struct.pack(">I", i)
    if 0 <= i < 1 << 64:
        return b"\xcf" + struct.pack(">Q", i)
    return b"\xd3" + struct.pack(">q", i)


def mp_map(pairs):
    """pairs: list of (key bytes, value bytes), already encoded."""
    assert len(pairs) < 16
    return bytes([0x80 | len(pairs)]) + b"".join(k + v for k, v in pairs)


def K(s):
    return mp_str(s)


def frame(body):
    return struct.pack(">I", len(body)) + body


def ipc_seeds():
    max_frame = 1024 * 1024 + 64 * 1024
    sub = [(K("t"), mp_int(400)), (K("id"), mp_int(1)), (K("name"), K("news"))]
    every_type = [
        b"\xc0", b"\xc2", b"\xc3", b"\xca" + b"\x00" * 4, b"\xcb" + b"\x00" * 8,
        b"\xc4\x01x", b"\xc5\x00\x01x", b"\xc6\x00\x00\x00\x01x",
        b"\xc7\x01\x05x", b"\xc8\x00\x01\x05x", b"\xc9\x00\x00\x00\x01\x05x",
        b"\xd4\x01x", b"\xd5\x01xx", b"\xd6\x01" + b"x" * 4,
        b"\xd7\x01" + b"x" * 8, b"\xd8\x01" + b"x" * 16,
        b"\xcc\xff", b"\xcd\xff\xff", b"\xce\xff\xff\xff\xff", b"\xcf" + b"\xff" * 8,
        b"\xd0\x80", b"\xd1\x80\x00", b"\xd2\x80\x00\x00\x00", b"\xd3\x80" + b"\x00" * 7,
        b"\xe0", b"\xd9\x01x", b"\xda\x00\x01x", b"\xdb\x00\x00\x00\x01x",
        b"\xdc\x00\x01\xc0", b"\xdd\x00\x00\x00\x01\xc0",
        b"\xde\x00\x01\xc0\xc0", b"\xdf\x00\x00\x00\x01\xc0\xc0",
    ]
    # One map of 16+ pairs needs map16.
    all_values = b"\xde" + struct.pack(">H", len(every_type) + 1) + K("t") + mp_int(999)
    for k, v in enumerate(every_type):
        all_values += K("u%d" % k) + v

    def nested(depth):
        return b"\x91" * depth + b"\xc0"

    cases = {
        # Framing.
        "bad-header-short": b"\x00\x00",
        "bad-header-over-max": struct.pack(">I", max_frame + 1) + b"\x80",
        "bad-header-all-ones": b"\xff\xff\xff\xff",
        "bad-header-max-truncated": struct.pack(">I", max_frame) + b"\x81\xa1t\x00",
        "bad-body-empty": frame(b""),
        "bad-body-truncated": struct.pack(">I", 10) + mp_map(sub)[:6],
        # Structure.
        "bad-not-a-map": frame(b"\x91\x00"),
        "bad-map-claims-huge": frame(b"\xdf\xff\xff\xff\xff" + K("t") + mp_int(100)),
        "bad-array-claims-huge": frame(mp_map([(K("t"), mp_int(100)),
                                               (K("x"), b"\xdd\xff\xff\xff\xff")])),
        "bad-str-claims-huge": frame(mp_map([(K("t"), mp_int(100)),
                                             (K("msg"), b"\xdb\x7f\xff\xff\xff")])),
        "bad-bin-claims-huge": frame(mp_map([(K("t"), mp_int(100)),
                                             (K("x"), b"\xc6\xff\xff\xff\xff")])),
        "bad-ext-truncated": frame(mp_map([(K("t"), mp_int(100)), (K("x"), b"\xc7\x05")])),
        "bad-too-deep": frame(mp_map([(K("t"), mp_int(100)), (K("x"), nested(9))])),
        "ok-deep-enough": frame(mp_map([(K("t"), mp_int(100)), (K("x"), nested(7))])),
        "bad-deep-key": frame(mp_map([(nested(9), b"\xc0"), (K("t"), mp_int(100))])),
        "bad-trailing-byte": frame(mp_map(sub) + b"\xc0"),
        "bad-c1": frame(mp_map([(K("t"), mp_int(100)), (K("x"), b"\xc1")])),
        "bad-truncated-scalar": frame(b"\x81" + K("t") + b"\xcd\x01"),
        # Value types.
        "bad-no-t": frame(mp_map([(K("id"), mp_int(1))])),
        "bad-t-negative": frame(mp_map([(K("t"), mp_int(-1))])),
        "bad-t-string": frame(mp_map([(K("t"), K("100"))])),
        "bad-t-nil": frame(mp_map([(K("t"), b"\xc0")])),
        "bad-t-over-int-max": frame(mp_map([(K("t"), mp_int(1 << 31))])),
        "bad-id-over-uint32": frame(mp_map([(K("t"), mp_int(200)), (K("id"), mp_int(1 << 32))])),
        "bad-id-negative": frame(mp_map([(K("t"), mp_int(200)), (K("id"), mp_int(-1))])),
        "bad-code-bigint": frame(mp_map([(K("t"), mp_int(111)), (K("code"), mp_int((1 << 64) - 1))])),
        "bad-code-float": frame(mp_map([(K("t"), mp_int(111)), (K("code"), b"\xcb" + b"\x00" * 8)])),
        "bad-name-int": frame(mp_map(sub[:2] + [(K("name"), mp_int(5))])),
        "bad-name-bin": frame(mp_map(sub[:2] + [(K("name"), b"\xc4\x01x")])),
        "bad-name-too-long": frame(mp_map(sub[:2] + [(K("name"), mp_str("n" * 1025))])),
        "bad-name-nul": frame(mp_map(sub[:2] + [(K("name"), mp_str(b"a\x00b"))])),
        "bad-msg-overlong-utf8": frame(mp_map([(K("t"), mp_int(111)), (K("code"), mp_int(-5)),
                                               (K("msg"), mp_str(b"\xc0\xaf"))])),
        "bad-data-surrogate": frame(mp_map(sub[:2] + [(K("name"), K("n")),
                                                      (K("data"), mp_str(b"\xed\xb0\x80"))])),
        "bad-state-past-max": frame(mp_map([(K("t"), mp_int(300)),
                                            (K("state"), mp_str(b"\xf4\x90\x80\x80"))])),
        # Decodes.
        "ok-name-max": frame(mp_map(sub[:2] + [(K("name"), mp_str("n" * 1024))])),
        "ok-id-nil": frame(mp_map([(K("t"), mp_int(110)), (K("id"), b"\xc0")])),
        "ok-at-nil": frame(mp_map([(K("t"), mp_int(300)), (K("state"), K("OPEN")),
                                   (K("at"), b"\xc0")])),
        "ok-strings-nil": frame(mp_map(sub[:2] + [(K("name"), b"\xc0"), (K("data"), b"\xc0"),
                                                  (K("msg"), b"\xc0"), (K("state"), b"\xc0")])),
        "ok-key-not-string": frame(mp_map([(mp_int(1), mp_int(2)), (b"\xc0", b"\xc0")] + sub)),
        "ok-key-container": frame(mp_map([(b"\x92\x01\x02", b"\x80")] + sub)),
        "ok-key-bin-t": frame(mp_map([(b"\xc4\x01t", mp_int(5))] + sub)),
        "ok-repeated-keys": frame(mp_map(sub + [(K("t"), mp_int(401)), (K("name"), K("last"))])),
        "ok-code-aliases": frame(mp_map([(K("t"), mp_int(100)), (K("v"), mp_int(1)),
                                         (K("client"), K("x"))])),
        "ok-result-alias": frame(mp_map([(K("t"), mp_int(403)), (K("id"), mp_int(3)),
                                         (K("result"), mp_int(1))])),
        "ok-text-keys-mixed": frame(mp_map([(K("t"), mp_int(201)), (K("id"), mp_int(1)),
                                            (K("reason"), K("r")), (K("json"), K("{}"))])),
        "ok-int-widths": frame(mp_map([(K("t"), b"\xd1\x01\x91"), (K("id"), b"\xcd\x00\x07"),
                                       (K("code"), b"\xd3" + struct.pack(">q", -(1 << 63))),
                                       (K("at"), b"\xcf" + struct.pack(">Q", (1 << 63) - 1))])),
        "ok-t-int-max": frame(mp_map([(K("t"), mp_int((1 << 31) - 1))])),
        "ok-t-zero": frame(mp_map([(K("t"), mp_int(0))])),
        "ok-str8-key": frame(b"\x81" + b"\xd9\x01t" + mp_int(200)),
        "ok-every-value-type": frame(all_values),
        # Streams: what follows a bad frame is still framed.
        "stream-good-bad-good": frame(mp_map(sub)) + frame(b"\xc1") + frame(mp_map(sub)),
        "stream-good-then-over-max": frame(mp_map(sub)) + struct.pack(">I", 1 << 31),
        "stream-good-then-partial": frame(mp_map(sub)) + frame(mp_map(sub))[:7],
    }
    # For the encode direction of fuzz-ipc.c: type index, flags (1 id,
    # 2 code, 4 name, 8 data, 16 text, 32 state), id, code, at, then
    # NUL-separated name, data, text, state.
    def enc(idx, flags, id_, code, at, *texts):
        return (struct.pack("<BBIqq", idx, flags, id_, code, at) +
                b"\0".join(t.encode() for t in texts))

    cases.update({
        "enc-emit": enc(13, 1 | 4 | 8, 12, 0, 0, "news", '{"a":1}'),
        "enc-state": enc(10, 16 | 32, 0, 0, -1, "", "", "reason", "OPEN"),
        "enc-error-extremes": enc(3, 1 | 2 | 16, 0xFFFFFFFF, -(1 << 63),
                                  (1 << 63) - 1, "", "", "msg"),
        "enc-name-max": enc(11, 1 | 4, 1, 0, 0, "n" * 1024),
        "enc-name-over-max": enc(11, 1 | 4, 1, 0, 0, "n" * 1025),
        "enc-str16": enc(15, 4 | 8 | 16 | 32, 0, 0, 0, "e", "d" * 300,
                         "t" * 300, "s"),
    })
    for name, data in cases.items():
        put(IPC, name, data)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    os.makedirs(WIRE, exist_ok=True)
    os.makedirs(IPC, exist_ok=True)
    wire_seeds(sys.argv[1])
    ipc_seeds()


if __name__ == "__main__":
    main()
