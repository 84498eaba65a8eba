// Streaming parsers for .splat, PLY and SPZ. They hand the viewer batches already packed for the GPU:
// 8 uint32 words per splat (two RGBA32UI texels: position + RGBA8, then the 3D covariance as six halves),
// expressed in the OpenGL world of the cameras (x right, y up, z back).

export const WORDS = 8;
// Spherical harmonics of degrees 1 and 2 (8 coefficients x RGB, coefficient-major) as signed bytes, 8 words per
// splat in a second texture; each byte is 128 + 64 v (so |v| < 2, steps of 1/64).
export const SH_WORDS = 8;
export const SH_COEFFS = 8;
export const COV_SCALE = 16; // covariance is stored x16 so small splats keep precision in half floats
const C0 = 0.28209479177387814;
const BATCH = 16384;

const f1 = new Float32Array(1), u1 = new Uint32Array(f1.buffer);
function half(v) {
  f1[0] = v;
  const x = u1[0], sign = (x >>> 16) & 0x8000, e = ((x >>> 23) & 0xff) - 112, m = x & 0x7fffff;
  if (e >= 31) return sign | 0x7bff; // clamp to the largest finite half (also for inf/NaN)
  if (e <= 0) return e < -10 ? sign : sign | (((m | 0x800000) >>> (1 - e)) + 0x1000) >>> 13;
  return sign | ((e << 10) + ((m + 0x1000) >>> 13));
}

function halfToFloat(h) {
  const e = (h >>> 10) & 31, m = h & 1023, s = h & 0x8000 ? -1 : 1;
  if (e === 0) return s * m * 5.960464477539063e-8;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

// A 3-letter axis frame (e.g. RDF, RUB) as the signed permutation taking file axes to RUB (OpenGL).
export function frameMatrix(name) {
  const dirs = { R: [0, 1], L: [0, -1], U: [1, 1], D: [1, -1], B: [2, 1], F: [2, -1] };
  const s = String(name || '').toUpperCase();
  const m = new Float32Array(9), seen = new Set();
  if (s.length !== 3) return null;
  for (let c = 0; c < 3; c++) {
    const d = dirs[s[c]];
    if (!d || seen.has(d[0])) return null;
    seen.add(d[0]);
    m[d[0] * 3 + c] = d[1];
  }
  return m;
}

class Packer {
  constructor(frame, emit) {
    this.m = frameMatrix(frame) || frameMatrix('RDF');
    this.emit = emit;
    const buf = new ArrayBuffer(BATCH * WORDS * 4);
    this.u = new Uint32Array(buf);
    this.f = new Float32Array(buf);
    this.p = new Float32Array(BATCH * 3);
    this.sh = new Uint32Array(BATCH * SH_WORDS);
    this.shBytes = new Uint8Array(this.sh.buffer);
    this.withSH = false;
    this.n = 0;
    this.total = 0;
  }
  // scale linear, quaternion w x y z (any norm), colour and alpha in 0..1; `rest` (optional): the degree 1-2 SH
  // coefficients in the file's frame, rest[3k + c] for coefficient k and channel c
  add(x, y, z, s0, s1, s2, qw, qx, qy, qz, r, g, b, a, rest = null) {
    if (!Number.isFinite(x + y + z)) return;
    if (rest || this.withSH) {
      this.withSH = true;
      const o = this.n * SH_WORDS * 4, bytes = this.shBytes;
      for (let i = 0; i < SH_COEFFS * 3; i++) {
        const v = rest ? rest[i] : 0, q = Math.round(128 + 64 * (Number.isFinite(v) ? v : 0));
        bytes[o + i] = q < 0 ? 0 : q > 255 ? 255 : q;
      }
    }
    const m = this.m, o = this.n * WORDS, p = this.n * 3, f = this.f, u = this.u;
    const X = m[0] * x + m[1] * y + m[2] * z, Y = m[3] * x + m[4] * y + m[5] * z, Z = m[6] * x + m[7] * y + m[8] * z;
    f[o] = X; f[o + 1] = Y; f[o + 2] = Z;
    this.p[p] = X; this.p[p + 1] = Y; this.p[p + 2] = Z;
    const c = (v) => (v <= 0 ? 0 : v >= 1 ? 255 : (v * 255 + 0.5) | 0);
    u[o + 3] = c(r) | (c(g) << 8) | (c(b) << 16) | (c(a) << 24);
    let l = Math.hypot(qw, qx, qy, qz);
    if (!(l > 0)) { qw = 1; qx = qy = qz = 0; l = 1; }
    const w = qw / l, i = qx / l, j = qy / l, k = qz / l;
    if (!(s0 >= 0)) s0 = 0; if (!(s1 >= 0)) s1 = 0; if (!(s2 >= 0)) s2 = 0;
    // R * diag(s), then the frame change on the left: G = M R S, covariance = G G^T
    const a00 = (1 - 2 * (j * j + k * k)) * s0, a01 = 2 * (i * j - w * k) * s1, a02 = 2 * (i * k + w * j) * s2;
    const a10 = 2 * (i * j + w * k) * s0, a11 = (1 - 2 * (i * i + k * k)) * s1, a12 = 2 * (j * k - w * i) * s2;
    const a20 = 2 * (i * k - w * j) * s0, a21 = 2 * (j * k + w * i) * s1, a22 = (1 - 2 * (i * i + j * j)) * s2;
    const g00 = m[0] * a00 + m[1] * a10 + m[2] * a20, g01 = m[0] * a01 + m[1] * a11 + m[2] * a21, g02 = m[0] * a02 + m[1] * a12 + m[2] * a22;
    const g10 = m[3] * a00 + m[4] * a10 + m[5] * a20, g11 = m[3] * a01 + m[4] * a11 + m[5] * a21, g12 = m[3] * a02 + m[4] * a12 + m[5] * a22;
    const g20 = m[6] * a00 + m[7] * a10 + m[8] * a20, g21 = m[6] * a01 + m[7] * a11 + m[8] * a21, g22 = m[6] * a02 + m[7] * a12 + m[8] * a22;
    const S = COV_SCALE;
    u[o + 4] = half(S * (g00 * g00 + g01 * g01 + g02 * g02)) | (half(S * (g00 * g10 + g01 * g11 + g02 * g12)) << 16);
    u[o + 5] = half(S * (g00 * g20 + g01 * g21 + g02 * g22)) | (half(S * (g10 * g10 + g11 * g11 + g12 * g12)) << 16);
    u[o + 6] = half(S * (g10 * g20 + g11 * g21 + g12 * g22)) | (half(S * (g20 * g20 + g21 * g21 + g22 * g22)) << 16);
    u[o + 7] = 0;
    if (++this.n === BATCH) this.flush();
  }
  // The batch's arrays are reused: the receiver must copy them before returning.
  flush() {
    if (!this.n) return;
    this.total += this.n;
    this.emit({
      count: this.n, data: this.u.subarray(0, this.n * WORDS), pos: this.p.subarray(0, this.n * 3),
      sh: this.withSH ? this.sh.subarray(0, this.n * SH_WORDS) : null, frame: this.m,
    });
    this.n = 0;
  }
}

// Reads a response/file stream chunk by chunk, with push-back for format sniffing and header parsing.
class Source {
  constructor(stream, total, onProgress) {
    this.reader = stream.getReader();
    this.total = total;
    this.loaded = 0;
    this.back = [];
    this.onProgress = onProgress || (() => {});
  }
  async next() {
    if (this.back.length) return this.back.pop();
    const { done, value } = await this.reader.read();
    if (done) return null;
    this.loaded += value.length;
    this.onProgress(this.loaded, this.total);
    return value;
  }
  unshift(chunk) { if (chunk && chunk.length) this.back.push(chunk); }
  cancel() { this.cancelled = true; try { this.reader.cancel(); } catch (_) { /* already closed */ } }
}

function concat(a, b) {
  if (!a.length) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a); out.set(b, a.length);
  return out;
}

// Calls fn(bytes, dataView, recordCount) for whole records; keeps the cut-off tail for the next chunk.
async function records(src, size, limit, fn) {
  let rest = new Uint8Array(0), done = 0;
  for (let chunk; done < limit && (chunk = await src.next()) !== null;) {
    const buf = concat(rest, chunk);
    const n = Math.min(Math.floor(buf.length / size), limit - done);
    if (n > 0) fn(buf, new DataView(buf.buffer, buf.byteOffset, n * size), n);
    done += n;
    rest = buf.subarray(n * size);
  }
  return { done, rest };
}

async function parseSplat(src, packer, begin) {
  if (src.total) begin(Math.floor(src.total / 32));
  const { rest } = await records(src, 32, Infinity, (b, dv, n) => {
    for (let i = 0, o = 0; i < n; i++, o += 32) {
      packer.add(dv.getFloat32(o, true), dv.getFloat32(o + 4, true), dv.getFloat32(o + 8, true),
        dv.getFloat32(o + 12, true), dv.getFloat32(o + 16, true), dv.getFloat32(o + 20, true),
        b[o + 28] - 128, b[o + 29] - 128, b[o + 30] - 128, b[o + 31] - 128,
        b[o + 24] / 255, b[o + 25] / 255, b[o + 26] / 255, b[o + 27] / 255);
    }
    packer.flush();
  });
  if (rest.length) throw new Error(`the .splat file is cut short (${rest.length} bytes after the last whole 32-byte record)`);
}

const PLY_TYPES = {
  char: [1, 'getInt8'], int8: [1, 'getInt8'], uchar: [1, 'getUint8'], uint8: [1, 'getUint8'],
  short: [2, 'getInt16'], int16: [2, 'getInt16'], ushort: [2, 'getUint16'], uint16: [2, 'getUint16'],
  int: [4, 'getInt32'], int32: [4, 'getInt32'], uint: [4, 'getUint32'], uint32: [4, 'getUint32'],
  float: [4, 'getFloat32'], float32: [4, 'getFloat32'], double: [8, 'getFloat64'], float64: [8, 'getFloat64'],
};

async function parsePly(src, packer, begin) {
  let head = new Uint8Array(0), end = -1;
  while (end < 0) {
    const chunk = await src.next();
    if (chunk === null) throw new Error('the PLY header never ends (no end_header line)');
    head = concat(head, chunk);
    const text = new TextDecoder('latin1').decode(head.subarray(0, 1 << 20));
    // A line of its own: a comment (Diorama's scene metadata, say) may contain the words.
    const found = /(^|\n)end_header\r?\n/.exec(text);
    if (found) end = found.index + found[0].length;
    else if (head.length > 1 << 20) throw new Error('the PLY header is over 1 MB');
  }
  const lines = new TextDecoder('latin1').decode(head.subarray(0, end)).split(/\r?\n/).map((l) => l.trim());
  if (lines[0] !== 'ply') throw new Error('not a PLY file (it does not start with "ply")');
  let format = '', frame = 'RDF', explicitFrame = false;
  const elements = [];
  for (const line of lines.slice(1)) {
    const w = line.split(/\s+/);
    if (w[0] === 'format') format = w[1];
    else if (w[0] === 'comment' && w[1] === 'coordinate_frame' && frameMatrix(w[2])) { frame = w[2].toUpperCase(); explicitFrame = true; }
    else if (w[0] === 'element') elements.push({ name: w[1], count: parseInt(w[2], 10), props: [], stride: 0, list: false });
    else if (w[0] === 'property' && elements.length) {
      const el = elements[elements.length - 1];
      if (w[1] === 'list') { el.list = true; continue; }
      const t = PLY_TYPES[w[1]];
      if (!t) throw new Error(`PLY property type "${w[1]}" is unknown`);
      el.props.push({ name: w[2], offset: el.stride, get: t[1] });
      el.stride += t[0];
    }
  }
  if (format !== 'binary_little_endian') throw new Error(`PLY format "${format || '?'}" is not supported here (binary_little_endian only)`);
  let skip = 0, vertex = null;
  for (const el of elements) {
    if (el.name === 'vertex') { vertex = el; break; }
    if (el.list) throw new Error(`the PLY element "${el.name}" before the vertices has list properties`);
    skip += el.count * el.stride;
  }
  if (!vertex || vertex.list) throw new Error('the PLY file has no plain "vertex" element');
  const field = (name) => vertex.props.find((p) => p.name === name) || null;
  const need = ['x', 'y', 'z'].map(field);
  if (need.includes(null)) throw new Error('the PLY vertices have no x, y, z');
  const dc = ['f_dc_0', 'f_dc_1', 'f_dc_2'].map(field), rgb = ['red', 'green', 'blue'].map(field);
  const sc = ['scale_0', 'scale_1', 'scale_2'].map(field), rot = ['rot_0', 'rot_1', 'rot_2', 'rot_3'].map(field);
  const op = field('opacity'), al = field('alpha');
  const hasDc = !dc.includes(null), hasRgb = !rgb.includes(null), hasSc = !sc.includes(null), hasRot = !rot.includes(null);
  const byteScale = (p) => (p.get === 'getUint8' ? 1 / 255 : 1);
  // SH of degrees 1-2: INRIA's f_rest_* are channel-major (f_rest_{c * perChannel + k}); FlashWorld's export puts
  // every coefficient in f_dc_*, coefficient-major (f_dc_{3 (k + 1) + c})
  const restNames = vertex.props.filter((p) => /^f_rest_\d+$/.test(p.name)).length;
  const perChannel = restNames / 3;
  const restFields = [];
  if (restNames >= 9 && restNames % 3 === 0) {
    for (let k = 0; k < Math.min(SH_COEFFS, perChannel); k++) for (let c = 0; c < 3; c++) restFields.push(field(`f_rest_${c * perChannel + k}`));
  } else {
    const dcCount = vertex.props.filter((p) => /^f_dc_\d+$/.test(p.name)).length;
    for (let k = 0; k < Math.min(SH_COEFFS, dcCount / 3 - 1); k++) for (let c = 0; c < 3; c++) restFields.push(field(`f_dc_${3 * (k + 1) + c}`));
  }
  const hasRest = restFields.length > 0 && !restFields.includes(null);
  const rest = new Float32Array(SH_COEFFS * 3);
  // FlashWorld's own export (all 27 SH values as f_dc_*, no f_rest_*) is in camera 0's OpenGL frame, as Diorama
  // reads it; a coordinate_frame comment says so explicitly and wins
  const nDc = vertex.props.filter((p) => /^f_dc_\d+$/.test(p.name)).length;
  if (!explicitFrame && nDc > 3 && !vertex.props.some((p) => p.name.startsWith('f_rest_'))) frame = 'RUB';
  packer.m = frameMatrix(frame);
  begin(vertex.count);
  src.unshift(head.subarray(end));
  if (skip) {
    const { done, rest } = await records(src, skip, 1, () => {});
    if (!done) throw new Error('the PLY file ends before its vertices');
    src.unshift(rest);
  }
  const stride = vertex.stride;
  const { done } = await records(src, stride, vertex.count, (b, dv, n) => {
    const v = (p, o) => dv[p.get](o + p.offset, true);
    for (let i = 0, o = 0; i < n; i++, o += stride) {
      let r = 1, g = 1, bl = 1, a = 1, s0 = 0.01, s1 = 0.01, s2 = 0.01, qw = 1, qx = 0, qy = 0, qz = 0;
      if (hasDc) { r = 0.5 + C0 * v(dc[0], o); g = 0.5 + C0 * v(dc[1], o); bl = 0.5 + C0 * v(dc[2], o); }
      else if (hasRgb) { const k = byteScale(rgb[0]); r = v(rgb[0], o) * k; g = v(rgb[1], o) * k; bl = v(rgb[2], o) * k; }
      if (op) a = 1 / (1 + Math.exp(-v(op, o)));
      else if (al) a = v(al, o) * byteScale(al);
      if (hasSc) { s0 = Math.exp(v(sc[0], o)); s1 = Math.exp(v(sc[1], o)); s2 = Math.exp(v(sc[2], o)); }
      if (hasRot) { qw = v(rot[0], o); qx = v(rot[1], o); qy = v(rot[2], o); qz = v(rot[3], o); }
      if (hasRest) for (let i = 0; i < restFields.length; i++) rest[i] = v(restFields[i], o);
      packer.add(v(need[0], o), v(need[1], o), v(need[2], o), s0, s1, s2, qw, qx, qy, qz, r, g, bl, a, hasRest ? rest : null);
    }
    packer.flush();
  });
  if (done < vertex.count) throw new Error(`the PLY file is cut short: ${done} of ${vertex.count} vertices`);
}

const SPZ_FRAMES = ['RUB', 'LDB', 'RDB', 'LUB', 'RUB', 'LDF', 'RDF', 'LUF', 'RUF', 'LFD', 'RFD', 'LFU', 'RFU', 'LBD', 'RBD', 'LBU', 'RBU'];

async function gunzip(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function parseSpz(src, packer, begin) {
  const parts = [];
  let size = 0;
  for (let c; (c = await src.next()) !== null;) { parts.push(c); size += c.length; }
  let bytes = new Uint8Array(size);
  for (let i = 0, o = 0; i < parts.length; o += parts[i].length, i++) bytes.set(parts[i], o);
  if (size < 16) throw new Error(`${size} bytes is too short for SPZ`);
  const peek = new DataView(bytes.buffer);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try { bytes = await gunzip(bytes); } catch (e) { throw new Error(`the SPZ file does not decompress: ${e.message}`); }
  } else if (peek.getUint32(0, true) === 0x5053474e && peek.getUint32(4, true) >= 4) {
    throw new Error('SPZ v4 is not supported in the browser; download .splat');
  } else if (peek.getUint32(0, true) !== 0x5053474e) {
    throw new Error('not an SPZ file: it starts with neither gzip nor NGSP');
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 16 || dv.getUint32(0, true) !== 0x5053474e) throw new Error('the SPZ payload does not start with NGSP');
  const version = dv.getUint32(4, true), n = dv.getUint32(8, true), deg = bytes[12], fb = bytes[13], flags = bytes[14];
  if (version >= 4) throw new Error('SPZ v4 is not supported in the browser; download .splat');
  if (version < 1) throw new Error(`SPZ version ${version} is unknown`);
  if (deg > 4) throw new Error(`SPZ SH degree ${deg} is invalid`);
  const posB = version === 1 ? 6 : 9, rotB = version >= 3 ? 4 : 3, shB = ((deg + 1) ** 2 - 1) * 3;
  const oPos = 16, oA = oPos + n * posB, oC = oA + n, oS = oC + n * 3, oR = oS + n * 3, oSh = oR + n * rotB, oEnd = oSh + n * shB;
  if (bytes.length < oEnd) throw new Error(`the SPZ file is cut short: ${bytes.length} of ${oEnd} bytes`);
  let frame = 'RDF';
  if (flags & 2) {
    for (let at = oEnd; at + 8 <= bytes.length;) {
      const type = dv.getUint32(at, true), len = dv.getUint32(at + 4, true);
      if (type === 0xadbe0003 && len >= 4 && at + 12 <= bytes.length) frame = SPZ_FRAMES[dv.getUint32(at + 8, true)] || frame;
      at += 8 + len;
    }
  }
  packer.m = frameMatrix(frame);
  begin(n);
  const scale = 1 / (1 << fb), q = [0, 0, 0, 0];
  const shCoeffs = (deg + 1) ** 2 - 1, restCount = Math.min(SH_COEFFS, shCoeffs), rest = new Float32Array(SH_COEFFS * 3);
  for (let i = 0; i < n; i++) {
    // hand over what is decoded and let the page breathe: a 4M-splat file would otherwise stall it for a second
    if (i && (i & 0x3ffff) === 0) { packer.flush(); await new Promise((r) => setTimeout(r)); if (src.cancelled) return; }
    let x, y, z;
    if (version === 1) {
      const o = oPos + i * 6;
      x = halfToFloat(dv.getUint16(o, true)); y = halfToFloat(dv.getUint16(o + 2, true)); z = halfToFloat(dv.getUint16(o + 4, true));
    } else {
      const o = oPos + i * 9;
      const fx = (v) => ((v << 8) >> 8) * scale; // sign-extend 24 bits
      x = fx(bytes[o] | (bytes[o + 1] << 8) | (bytes[o + 2] << 16));
      y = fx(bytes[o + 3] | (bytes[o + 4] << 8) | (bytes[o + 5] << 16));
      z = fx(bytes[o + 6] | (bytes[o + 7] << 8) | (bytes[o + 8] << 16));
    }
    if (version >= 3) {
      // smallest three: top 2 bits name the largest of (x, y, z, w); the others, last first, 10 bits each
      let comp = dv.getUint32(oR + i * 4, true), sum = 0;
      const big = comp >>> 30;
      for (let k = 3; k >= 0; k--) {
        if (k === big) continue;
        const mag = comp & 511, neg = (comp >>> 9) & 1;
        comp >>>= 10;
        const v = (Math.SQRT1_2 * mag) / 511;
        q[k] = neg ? -v : v;
        sum += v * v;
      }
      q[big] = Math.sqrt(Math.max(0, 1 - sum));
    } else {
      const o = oR + i * 3;
      q[0] = bytes[o] / 127.5 - 1; q[1] = bytes[o + 1] / 127.5 - 1; q[2] = bytes[o + 2] / 127.5 - 1;
      q[3] = Math.sqrt(Math.max(0, 1 - q[0] * q[0] - q[1] * q[1] - q[2] * q[2]));
    }
    for (let j = 0; j < restCount * 3; j++) rest[j] = (bytes[oSh + i * shCoeffs * 3 + j] - 128) / 128;
    const c = oC + i * 3, s = oS + i * 3, k = C0 / 0.15;
    packer.add(x, y, z, Math.exp(bytes[s] / 16 - 10), Math.exp(bytes[s + 1] / 16 - 10), Math.exp(bytes[s + 2] / 16 - 10),
      q[3], q[0], q[1], q[2],
      0.5 + k * (bytes[c] / 255 - 0.5), 0.5 + k * (bytes[c + 1] / 255 - 0.5), 0.5 + k * (bytes[c + 2] / 255 - 0.5),
      bytes[oA + i] / 255, restCount ? rest : null);
  }
  packer.flush();
}

// The message of a failed API response: the server's {"error": "..."} when it sent one.
export async function responseError(resp) {
  let text = '';
  try { text = await resp.text(); } catch (_) { /* body unreadable */ }
  try { const j = JSON.parse(text); if (j && typeof j.error === 'string') return j.error; } catch (_) { /* not JSON */ }
  const hint = resp.status === 401 ? ' (set the access token at the top of the page)' : '';
  return `${resp.status} ${resp.statusText || 'error'}${hint}${text && text.length < 200 && !text.startsWith('<') ? ': ' + text.trim() : ''}`;
}

export function formatOf(name) {
  const m = /\.(splat|spz|ply)$/i.exec(String(name || '').split(/[?#]/)[0]);
  return m ? m[1].toLowerCase() : null;
}

// Fetches a file the server may still be making: a 202 is asked again after its Retry-After (`onWait` is told), for
// up to half an hour; any other failure throws with the server's message.
export async function fetchWhenReady(url, options = {}, onWait = () => {}) {
  let resp = await fetch(url, options);
  for (let waited = 0; resp.status === 202 && waited < 1800;) {
    const seconds = Math.max(1, +resp.headers.get('Retry-After') || 2);
    onWait(seconds);
    await new Promise((r) => setTimeout(r, seconds * 1000));
    waited += seconds;
    resp = await fetch(url, options);
  }
  if (!resp.ok || resp.status === 202) throw new Error(await responseError(resp));
  return resp;
}

// Loads a URL (with headers) or a File/Blob. Calls onBegin(expectedCount) once the count is known,
// onBatch(batch) as splats are decoded, onProgress(loaded, total) as bytes arrive. Resolves to {count, format}.
export async function loadScene(input, { headers = {}, signal, onBegin, onBatch, onProgress, format } = {}) {
  let stream, total = 0, name;
  if (typeof Blob !== 'undefined' && input instanceof Blob) {
    stream = input.stream(); total = input.size; name = input.name || '';
  } else {
    const resp = await fetchWhenReady(input, { headers, signal });
    if (!resp.body) throw new Error('the response has no body');
    stream = resp.body;
    if (!resp.headers.get('Content-Encoding')) total = parseInt(resp.headers.get('Content-Length') || '0', 10) || 0;
    name = new URL(String(input), location.href).pathname;
  }
  const src = new Source(stream, total, onProgress);
  if (signal) signal.addEventListener('abort', () => src.cancel(), { once: true });
  let fmt = format || formatOf(name);
  if (!fmt) {
    const first = await src.next();
    if (first === null) throw new Error('the file is empty');
    src.unshift(first);
    const magic = first.length >= 4 ? new DataView(first.buffer, first.byteOffset).getUint32(0, true) : 0;
    fmt = first[0] === 0x70 && first[1] === 0x6c && first[2] === 0x79 ? 'ply'
      : (first[0] === 0x1f && first[1] === 0x8b) || magic === 0x5053474e ? 'spz' : 'splat';
  }
  let begun = false;
  const begin = (n) => { if (!begun) { begun = true; onBegin && onBegin(n); } };
  const packer = new Packer('RDF', (b) => { begin(0); onBatch && onBatch(b); });
  try {
    if (fmt === 'splat') await parseSplat(src, packer, begin);
    else if (fmt === 'ply') await parsePly(src, packer, begin);
    else await parseSpz(src, packer, begin);
  } catch (e) {
    // a cancelled read looks like a short file to the parsers; it is not one
    if (signal && signal.aborted) throw new DOMException('aborted', 'AbortError');
    throw e;
  }
  begin(0);
  if (signal && signal.aborted) throw new DOMException('aborted', 'AbortError');
  return { count: packer.total, format: fmt };
}
