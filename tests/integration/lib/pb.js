'use strict';
// Just enough protobuf to read and write deepstream ws-binary frames by hand
// (docs/deepstream-protocol.md, section 1): frame = varint(len(M)) || M,
// M = {topic: 2, message: 3}.
// Written independently of @deepstream/protobuf so a test can check bytes
// against a second implementation.

const TOPIC = { PARSER: 1, CONNECTION: 2, AUTH: 3, EVENT: 4, RECORD: 5, RPC: 6, PRESENCE: 7 };
const CONNECTION = {
  ERROR: 1, PING: 2, PONG: 3, ACCEPT: 4, CHALLENGE: 5, REJECT: 6, REDIRECT: 7,
  AUTHENTICATION_TIMEOUT: 100, INVALID_MESSAGE: 101,
};
const AUTH = { REQUEST: 2, AUTH_SUCCESSFUL: 3, AUTH_UNSUCCESSFUL: 4, TOO_MANY_AUTH_ATTEMPTS: 100 };

function encodeVarint(n) {
  let v = BigInt.asUintN(64, BigInt(n)); // negatives: 10-byte two's complement
  const out = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return Buffer.from(out);
}

function readVarint(buf, pos) {
  let v = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++];
    v |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) return { value: v, pos };
    shift += 7n;
  }
  throw new Error('varint longer than 10 bytes');
}

// Decodes one message into {fieldNo: [values]}: varints as Number (int32
// semantics), length-delimited fields as Buffer. Fixed32/64 are skipped.
function decodeFields(buf) {
  const fields = {};
  let pos = 0;
  while (pos < buf.length) {
    const tag = readVarint(buf, pos);
    pos = tag.pos;
    const no = Number(tag.value >> 3n);
    const wt = Number(tag.value & 7n);
    let val;
    if (wt === 0) {
      const r = readVarint(buf, pos);
      pos = r.pos;
      val = Number(BigInt.asIntN(32, r.value));
    } else if (wt === 2) {
      const r = readVarint(buf, pos);
      const len = Number(r.value);
      if (r.pos + len > buf.length) throw new Error('truncated length-delimited field');
      val = buf.subarray(r.pos, r.pos + len);
      pos = r.pos + len;
    } else if (wt === 1) {
      pos += 8;
      continue;
    } else if (wt === 5) {
      pos += 4;
      continue;
    } else {
      throw new Error(`unsupported wire type ${wt}`);
    }
    (fields[no] = fields[no] || []).push(val);
  }
  return fields;
}

// Decodes a whole frame: {topic, inner: {fieldNo: [values]}, raw}.
// Bytes after the length-prefixed message are ignored, as the server does.
function decodeFrame(frame) {
  const r = readVarint(frame, 0);
  const len = Number(r.value);
  if (r.pos + len > frame.length) throw new Error('frame shorter than its length prefix');
  const outer = decodeFields(frame.subarray(r.pos, r.pos + len));
  const topic = outer[2] ? outer[2][0] : 0;
  const inner = outer[3] ? decodeFields(outer[3][0]) : {};
  return { topic, inner, action: inner[1] ? inner[1][0] : 0 };
}

function field(no, wt, payload) {
  const tag = encodeVarint((no << 3) | wt);
  if (wt === 0) return Buffer.concat([tag, encodeVarint(payload)]);
  const b = Buffer.isBuffer(payload) ? payload : Buffer.from(String(payload), 'utf8');
  return Buffer.concat([tag, encodeVarint(b.length), b]);
}

// fields: array of [no, 'varint'|'bytes', value], written in the order given.
function encodeMessage(fields) {
  return Buffer.concat(fields.map(([no, kind, v]) => field(no, kind === 'varint' ? 0 : 2, v)));
}

function encodeFrame(topic, innerFields) {
  const m = Buffer.concat([field(2, 0, topic), field(3, 2, encodeMessage(innerFields))]);
  return Buffer.concat([encodeVarint(m.length), m]);
}

// CONNECTION messages; url is field 5.
function connectionFrame(action, url) {
  const f = [[1, 'varint', action]];
  if (url !== undefined) f.push([5, 'bytes', url]);
  return encodeFrame(TOPIC.CONNECTION, f);
}

function hex(buf) {
  return [...buf].map((b) => b.toString(16).padStart(2, '0')).join(' ');
}

function fromHex(s) {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

module.exports = {
  TOPIC, CONNECTION, AUTH,
  encodeVarint, readVarint, decodeFields, decodeFrame, encodeMessage, encodeFrame, connectionFrame,
  hex, fromHex,
};
