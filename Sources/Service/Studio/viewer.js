// WebGL2 Gaussian-splat viewer: one instanced quad per splat, EWA projection in the vertex shader,
// back-to-front order from sort-worker.js, orbit and fly controls, camera frustums as lines.
import { WORDS, COV_SCALE, SH_WORDS } from './loaders.js';
import { backToFront } from './sort-worker.js';

// ---- quaternions [w, x, y, z] and small vector helpers (exported for the studio) ----
export const qmul = (a, b) => [
  a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3],
  a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2],
  a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1],
  a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0],
];
export const qconj = (q) => [q[0], -q[1], -q[2], -q[3]];
export const qnorm = (q) => { const l = Math.hypot(...q) || 1; return q.map((v) => v / l); };
export const qaxis = (axis, angle) => {
  const l = Math.hypot(...axis) || 1, s = Math.sin(angle / 2) / l;
  return [Math.cos(angle / 2), axis[0] * s, axis[1] * s, axis[2] * s];
};
export function qrot(q, v) {
  const [w, x, y, z] = q, tx = 2 * (y * v[2] - z * v[1]), ty = 2 * (z * v[0] - x * v[2]), tz = 2 * (x * v[1] - y * v[0]);
  return [v[0] + w * tx + y * tz - z * ty, v[1] + w * ty + z * tx - x * tz, v[2] + w * tz + x * ty - y * tx];
}
// Shortest rotation taking unit vector a onto unit vector b (as three.js's setFromUnitVectors does).
export function qfromUnit(a, b) {
  const r = a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + 1;
  if (r < 1e-8) return qnorm(Math.abs(a[0]) > Math.abs(a[2]) ? [0, -a[1], a[0], 0] : [0, 0, -a[2], a[1]]);
  return qnorm([r, a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]);
}
// Slerp with the hemisphere flip FlashWorld uses.
export function slerp(a, b, t) {
  a = qnorm(a); b = qnorm(b);
  let d = a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3];
  if (d < 0) { b = b.map((v) => -v); d = -d; }
  const th = Math.acos(Math.min(1, d));
  if (th < 1e-5) return a;
  const s = Math.sin(th), wa = Math.sin((1 - t) * th) / s, wb = Math.sin(t * th) / s;
  return qnorm(a.map((v, i) => v * wa + b[i] * wb));
}
export const vadd = (a, b, k = 1) => [a[0] + b[0] * k, a[1] + b[1] * k, a[2] + b[2] * k];
export const vsub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
export const vlerp = (a, b, t) => a.map((v, i) => v + (b[i] - v) * t);

const TEX_W = 4096, PER_ROW = TEX_W / 2; // two texels per splat

const SPLAT_VS = `#version 300 es
precision highp float; precision highp int; precision highp usampler2D;
uniform usampler2D u_data;
uniform usampler2D u_sh;
uniform bool u_shOn;
uniform vec3 u_eye;
uniform mat3 u_shFrame;
uniform mat4 u_view, u_proj;
uniform vec2 u_focal, u_viewport, u_tan;
layout(location = 0) in vec2 a_corner;
layout(location = 1) in uint a_index;
out vec4 v_color;
out vec2 v_uv;
void main() {
  ivec2 tc = ivec2(int(a_index % ${PER_ROW}u) * 2, int(a_index / ${PER_ROW}u));
  uvec4 t0 = texelFetch(u_data, tc, 0);
  vec4 cam = u_view * vec4(uintBitsToFloat(t0.xyz), 1.0);
  vec4 clip = u_proj * cam;
  float lim = 1.2 * clip.w;
  if (cam.z > -0.02 || abs(clip.x) > lim || abs(clip.y) > lim) { gl_Position = vec4(0.0, 0.0, 2.0, 1.0); return; }
  uvec4 t1 = texelFetch(u_data, tc + ivec2(1, 0), 0);
  vec2 a = unpackHalf2x16(t1.x), b = unpackHalf2x16(t1.y), c = unpackHalf2x16(t1.z);
  mat3 S = mat3(a.x, a.y, b.x, a.y, b.y, c.x, b.x, c.x, c.y) * ${(1 / COV_SCALE).toFixed(8)};
  float z = -cam.z;
  vec2 xy = clamp(cam.xy / z, -1.3 * u_tan, 1.3 * u_tan) * z; // keeps the Jacobian sane off screen
  mat3 J = mat3(u_focal.x / z, 0.0, 0.0, 0.0, u_focal.y / z, 0.0,
                u_focal.x * xy.x / (z * z), u_focal.y * xy.y / (z * z), 0.0);
  mat3 T = J * mat3(u_view);
  mat3 V = T * S * transpose(T);
  float d00 = V[0][0] + 0.3, d01 = V[0][1], d11 = V[1][1] + 0.3;
  float mid = 0.5 * (d00 + d11), r = length(vec2(0.5 * (d00 - d11), d01));
  float l1 = mid + r, l2 = max(mid - r, 0.0);
  vec2 e1 = abs(d01) > 1e-9 ? normalize(vec2(d01, l1 - d00)) : (d00 >= d11 ? vec2(1.0, 0.0) : vec2(0.0, 1.0));
  vec2 e2 = vec2(-e1.y, e1.x);
  vec2 off = a_corner.x * min(3.0 * sqrt(l1), 2048.0) * e1 + a_corner.y * min(3.0 * sqrt(l2), 2048.0) * e2;
  gl_Position = vec4(clip.xy / clip.w + off * 2.0 / u_viewport, 0.0, 1.0);
  v_uv = a_corner * 3.0;
  uint col = t0.w;
  v_color = vec4(float(col & 255u), float((col >> 8) & 255u), float((col >> 16) & 255u), float(col >> 24)) / 255.0;
  if (u_shOn) {
    // Degrees 1 and 2, evaluated for the direction from the eye in the file's own frame (where the SH were fitted).
    uvec4 s0 = texelFetch(u_sh, tc, 0), s1 = texelFetch(u_sh, tc + ivec2(1, 0), 0);
    uint w[8] = uint[8](s0.x, s0.y, s0.z, s0.w, s1.x, s1.y, s1.z, s1.w);
    vec3 d = normalize(u_shFrame * (uintBitsToFloat(t0.xyz) - u_eye));
    float x = d.x, y = d.y, z = d.z;
    float basis[8] = float[8](-0.4886025119029199 * y, 0.4886025119029199 * z, -0.4886025119029199 * x,
      1.0925484305920792 * x * y, -1.0925484305920792 * y * z, 0.31539156525252005 * (2.0 * z * z - x * x - y * y),
      -1.0925484305920792 * x * z, 0.5462742152960396 * (x * x - y * y));
    vec3 rgb = v_color.rgb;
    for (int k = 0; k < 8; k++) {
      for (int c = 0; c < 3; c++) {
        int i = 3 * k + c;
        float v = (float((w[i >> 2] >> (8u * uint(i & 3))) & 255u) - 128.0) / 64.0;
        rgb[c] += basis[k] * v;
      }
    }
    v_color.rgb = clamp(rgb, 0.0, 1.0);
  }
}`;

const SPLAT_FS = `#version 300 es
precision highp float;
in vec4 v_color;
in vec2 v_uv;
out vec4 o;
void main() {
  float d2 = dot(v_uv, v_uv);
  if (d2 > 9.0) discard;
  float a = v_color.a * exp(-0.5 * d2);
  if (a < 1.0 / 255.0) discard;
  o = vec4(v_color.rgb * a, a); // premultiplied; blended ONE, ONE_MINUS_SRC_ALPHA back to front
}`;

const LINE_VS = `#version 300 es
uniform mat4 u_vp;
layout(location = 0) in vec3 a_pos;
layout(location = 1) in vec3 a_col;
out vec3 v_col;
void main() { v_col = a_col; gl_Position = u_vp * vec4(a_pos, 1.0); }`;

const LINE_FS = `#version 300 es
precision mediump float;
in vec3 v_col;
out vec4 o;
void main() { o = vec4(v_col, 1.0); }`;

function program(gl, vs, fs) {
  const p = gl.createProgram();
  for (const [type, src] of [[gl.VERTEX_SHADER, vs], [gl.FRAGMENT_SHADER, fs]]) {
    const s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error('shader: ' + gl.getShaderInfoLog(s));
    gl.attachShader(p, s);
  }
  gl.linkProgram(p);
  if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error('program: ' + gl.getProgramInfoLog(p));
  const u = {};
  for (let i = 0, n = gl.getProgramParameter(p, gl.ACTIVE_UNIFORMS); i < n; i++) {
    const name = gl.getActiveUniform(p, i).name;
    u[name] = gl.getUniformLocation(p, name);
  }
  return { p, u };
}

const typing = (e) => {
  const t = e.target;
  // sliders keep their arrow keys too
  return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName) && !/^(checkbox|button|radio|file)$/.test(t.type));
};

export class Viewer {
  constructor(canvas, { preserve = false } = {}) {
    this.canvas = canvas;
    const gl = canvas.getContext('webgl2', { antialias: false, alpha: false, depth: false, stencil: false, preserveDrawingBuffer: preserve });
    if (!gl) throw new Error('WebGL2 is not available in this browser');
    this.gl = gl;
    this.bg = [26, 26, 26];
    this.pos = [0, 0, 0]; this.quat = [1, 0, 0, 0]; this.fov = 60;
    this.mode = 'orbit'; this.orbitDist = 2; this.speed = 1;
    this.fixed = null; this.aspect = null;
    this.held = new Set();
    this.onChange = null; this.onStats = null;
    this.waiters = [];
    this.gen = 0; this.count = 0; this.capacity = 0; this.loading = false;
    this.data = new Uint32Array(0); this.texRows = 0;
    this.shData = null; this.shFrame = new Float32Array([1, 0, 0, 0, 1, 0, 0, 0, 1]); this.shTex = gl.createTexture(); this.shRows = 0; this.dirtyLo = 0; this.dirtyHi = 0; this.pending = [];
    this.drawCount = 0; this.orderTotal = 0; this.sortBusy = false; this.sortedView = null; this.sortedCount = -1;
    this.lineCount = 0; this.needsDraw = true;

    this.splat = program(gl, SPLAT_VS, SPLAT_FS);
    this.line = program(gl, LINE_VS, LINE_FS);
    this.tex = gl.createTexture();
    this.vao = gl.createVertexArray();
    gl.bindVertexArray(this.vao);
    gl.bindBuffer(gl.ARRAY_BUFFER, gl.createBuffer());
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    gl.enableVertexAttribArray(0);
    gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 0, 0);
    this.orderBuf = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, this.orderBuf);
    gl.bufferData(gl.ARRAY_BUFFER, 4, gl.DYNAMIC_DRAW);
    gl.enableVertexAttribArray(1);
    gl.vertexAttribIPointer(1, 1, gl.UNSIGNED_INT, 0, 0);
    gl.vertexAttribDivisor(1, 1);
    this.lineVao = gl.createVertexArray();
    gl.bindVertexArray(this.lineVao);
    this.lineBuf = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, this.lineBuf);
    gl.enableVertexAttribArray(0);
    gl.vertexAttribPointer(0, 3, gl.FLOAT, false, 24, 0);
    gl.enableVertexAttribArray(1);
    gl.vertexAttribPointer(1, 3, gl.FLOAT, false, 24, 12);
    gl.bindVertexArray(null);
    this.maxRows = gl.getParameter(gl.MAX_TEXTURE_SIZE);

    this.worker = new Worker(new URL('./sort-worker.js', import.meta.url), { type: 'module' });
    this.worker.onmessage = (e) => this.sorted(e.data);
    // without the worker (a blocked module worker), sort on this thread rather than never draw
    this.worker.onerror = (e) => { console.error('sort worker', e.message); this.worker = null; this.sortBusy = false; };
    this.bindInput();
    this.last = performance.now();
    this.frames = 0; this.fpsT = this.last; this.fps = 0;
    const loop = (t) => { requestAnimationFrame(loop); this.frame(t); };
    requestAnimationFrame(loop);
  }

  // ---- scene data ----
  beginScene(expected = 0) {
    this.gen++;
    this.count = 0; this.drawCount = 0; this.orderTotal = 0; this.pending = []; this.sortedCount = -1;
    this.dirtyLo = this.dirtyHi = 0;
    this.loading = true;
    this.data = new Uint32Array(0); this.capacity = 0; // let the last scene's memory go
    this.shData = null;
    this.reserve(Math.max(expected, 1));
    if (this.worker) this.worker.postMessage({ type: 'reset', gen: this.gen, capacity: this.capacity });
    this.needsDraw = true;
  }
  reserve(n) {
    if (n <= this.capacity) return;
    const cap = Math.ceil(Math.max(n, this.capacity * 1.5) / PER_ROW) * PER_ROW;
    if (cap / PER_ROW > this.maxRows) throw new Error(`the scene is too large for this GPU (${n} splats)`);
    const next = new Uint32Array(cap * WORDS);
    next.set(this.data.subarray(0, this.count * WORDS));
    this.data = next;
    if (this.shData) {
      const sh = new Uint32Array(cap * SH_WORDS);
      sh.set(this.shData.subarray(0, this.count * SH_WORDS));
      this.shData = sh;
    }
    this.capacity = cap;
  }
  append(batch) {
    this.reserve(this.count + batch.count);
    this.data.set(batch.data, this.count * WORDS);
    if (batch.sh) {
      // the SH texture exists only for scenes that have SH; earlier splats of the scene get zeros
      if (!this.shData) this.shData = new Uint32Array(this.capacity * SH_WORDS).fill(0x80808080);
      this.shData.set(batch.sh, this.count * SH_WORDS);
      // the inverse of the file-to-view frame change (a signed permutation): view directions back into the file's frame
      const m = batch.frame;
      this.shFrame = new Float32Array([m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8]]);
    } else if (this.shData) this.shData.fill(0x80808080, this.count * SH_WORDS, (this.count + batch.count) * SH_WORDS);
    this.pending.push(batch.pos.slice());
    if (this.dirtyHi <= this.dirtyLo) this.dirtyLo = this.count;
    this.count += batch.count;
    this.dirtyHi = this.count;
  }
  endScene() { this.loading = false; this.needsDraw = true; }
  clearScene() { this.beginScene(0); this.endScene(); }

  // Resolves with the number of pixels differing from the background once everything loaded is sorted and drawn.
  // Timers also drive frames meanwhile: headless Chromium under virtual time may stop animation frames.
  whenDrawn() {
    const pump = () => { if (this.waiters.length) { this.frame(performance.now()); setTimeout(pump, 16); } };
    setTimeout(pump, 16);
    return new Promise((resolve) => { this.waiters.push(resolve); this.needsDraw = true; });
  }

  // ---- camera ----
  setPose(pos, quat) { this.pos = pos.slice(); this.quat = qnorm(quat); this.changed(); }
  setFov(deg) { this.fov = deg; this.changed(); }
  setAspect(a) { this.aspect = a; this.needsDraw = true; }
  setFixedSize(w, h) { this.fixed = { w, h }; this.needsDraw = true; }
  setMode(m) { this.mode = m; this.changed(); }
  changed() { this.needsDraw = true; if (this.onChange) this.onChange(); }
  forward() { return qrot(this.quat, [0, 0, -1]); }

  // Key cameras (white) and interpolated ones (grey) as frustum outlines; path through the keys.
  setCameras(keys, interp, fov, aspect) {
    this.lastCameras = [keys, interp, fov, aspect];
    const v = this.guides ? Viewer.guideLines() : [], depth = 0.15, hh = depth * Math.tan((fov * Math.PI) / 360), hw = hh * aspect;
    const seg = (a, b, c) => v.push(...a, ...c, ...b, ...c);
    const frustum = (cam, c) => {
      const at = (x, y, z) => vadd(cam.pos, qrot(cam.quat, [x, y, z]));
      const o = cam.pos, k = [at(-hw, -hh, -depth), at(hw, -hh, -depth), at(hw, hh, -depth), at(-hw, hh, -depth)];
      for (let i = 0; i < 4; i++) { seg(o, k[i], c); seg(k[i], k[(i + 1) % 4], c); }
      const top = at(0, hh * 1.6, -depth); // which way is up
      seg(k[3], top, c); seg(top, k[2], c);
    };
    for (const cam of interp || []) frustum(cam, [0.5, 0.5, 0.5]);
    for (let i = 0; keys && i < keys.length; i++) {
      frustum(keys[i], [1, 1, 1]);
      if (i) seg(keys[i - 1].pos, keys[i].pos, [0.95, 0.75, 0.3]);
    }
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.lineBuf);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array(v), gl.DYNAMIC_DRAW);
    this.lineCount = v.length / 6;
    this.needsDraw = true;
  }

  viewMatrix() {
    const [w, x, y, z] = this.quat, p = this.pos;
    // rows of the camera-to-world rotation
    const r = [
      [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
      [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
      [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ];
    const m = new Float32Array(16);
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) m[j * 4 + i] = r[j][i];
      m[12 + i] = -(r[0][i] * p[0] + r[1][i] * p[1] + r[2][i] * p[2]);
    }
    m[15] = 1;
    return m;
  }
  projMatrix(aspect) {
    const f = 1 / Math.tan((this.fov * Math.PI) / 360), n = 0.02, far = 1000, m = new Float32Array(16);
    m[0] = f / aspect; m[5] = f; m[10] = (far + n) / (n - far); m[11] = -1; m[14] = (2 * far * n) / (n - far);
    return m;
  }

  // ---- input ----
  bindInput() {
    const c = this.canvas;
    let drag = null;
    c.addEventListener('contextmenu', (e) => e.preventDefault());
    c.addEventListener('pointerdown', (e) => {
      try { c.setPointerCapture(e.pointerId); } catch (_) { /* synthetic or already gone */ }
      drag = { x: e.clientX, y: e.clientY, pan: e.button === 2 || e.button === 1 || e.shiftKey };
      c.focus({ preventScroll: true });
    });
    c.addEventListener('pointermove', (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      drag.x = e.clientX; drag.y = e.clientY;
      if (drag.pan || e.shiftKey) this.pan(dx, dy);
      else if (this.mode === 'orbit') this.orbit(dx * 0.006, dy * 0.006);
      else this.look(dx * 0.003, dy * 0.003);
    });
    const up = () => { drag = null; };
    c.addEventListener('pointerup', up);
    c.addEventListener('pointercancel', up);
    c.addEventListener('wheel', (e) => {
      e.preventDefault();
      const d = e.deltaY * (e.deltaMode === 1 ? 16 : 1);
      if (this.mode === 'orbit') this.zoom(Math.exp(d * 0.0015));
      else this.move([0, 0, d * 0.002 * this.speed]);
    }, { passive: false });
    window.addEventListener('keydown', (e) => {
      this.shift = e.shiftKey;
      if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
      if (/^(Key[WASDRFQE]|Arrow(Up|Down|Left|Right))$/.test(e.code)) { this.held.add(e.code); e.preventDefault(); }
      if (e.code === 'KeyV') this.setMode(this.mode === 'orbit' ? 'fly' : 'orbit');
    });
    window.addEventListener('keyup', (e) => { this.shift = e.shiftKey; this.held.delete(e.code); });
    window.addEventListener('blur', () => this.held.clear());
  }
  target() { return vadd(this.pos, this.forward(), this.orbitDist); }
  orbit(yaw, pitch) {
    const t = this.target(), right = qrot(this.quat, [1, 0, 0]);
    const r = qmul(qaxis([0, 1, 0], -yaw), qaxis(right, -pitch));
    this.quat = qnorm(qmul(r, this.quat));
    this.pos = vadd(t, qrot(r, vsub(this.pos, t)));
    this.changed();
  }
  look(yaw, pitch) {
    this.quat = qnorm(qmul(qmul(qaxis([0, 1, 0], -yaw), this.quat), qaxis([1, 0, 0], -pitch)));
    this.changed();
  }
  pan(dx, dy) {
    const k = (2 * this.orbitDist * Math.tan((this.fov * Math.PI) / 360)) / (this.canvas.clientHeight || 1);
    this.move([-dx * k, dy * k, 0]);
  }
  zoom(f) {
    const t = this.target();
    this.orbitDist = Math.min(Math.max(this.orbitDist * f, 0.05), 500);
    this.pos = vadd(t, this.forward(), -this.orbitDist);
    this.changed();
  }
  move(local) { this.pos = vadd(this.pos, qrot(this.quat, local)); this.changed(); }

  keys(dt) {
    if (!this.held.size) return;
    const h = (c) => (this.held.has(c) ? 1 : 0), s = this.speed * dt * (this.shift ? 4 : 1);
    const mv = [h('KeyD') - h('KeyA'), h('KeyR') - h('KeyF'), h('KeyS') - h('KeyW')];
    if (mv.some((v) => v)) this.move(mv.map((v) => v * s));
    const roll = h('KeyQ') - h('KeyE');
    if (roll) { this.quat = qnorm(qmul(this.quat, qaxis([0, 0, 1], roll * dt * 1.2))); this.changed(); }
    const yaw = h('ArrowRight') - h('ArrowLeft'), pitch = h('ArrowDown') - h('ArrowUp');
    if (yaw || pitch) {
      if (this.mode === 'orbit') this.orbit(yaw * dt * 1.2, pitch * dt * 1.2);
      else this.look(yaw * dt * 1.2, pitch * dt * 1.2);
    }
  }

  // ---- frame loop ----
  resize() {
    const c = this.canvas, parent = c.parentElement;
    let w, h, dpr = Math.min(window.devicePixelRatio || 1, 2);
    if (this.fixed) { ({ w, h } = this.fixed); dpr = 1; } else {
      w = parent.clientWidth; h = parent.clientHeight;
      if (this.aspect && w > 0 && h > 0) { if (w / h > this.aspect) w = h * this.aspect; else h = w / this.aspect; }
      w = Math.max(1, Math.floor(w)); h = Math.max(1, Math.floor(h));
    }
    const pw = Math.max(1, Math.round(w * dpr)), ph = Math.max(1, Math.round(h * dpr));
    if (c.width !== pw || c.height !== ph || c.style.width !== w + 'px' || c.style.height !== h + 'px') {
      c.width = pw; c.height = ph; c.style.width = w + 'px'; c.style.height = h + 'px';
      this.needsDraw = true;
    }
  }

  flushData() {
    const gl = this.gl;
    const rows = this.capacity / PER_ROW;
    if (rows > this.texRows || (this.gen !== this.texGen)) {
      gl.bindTexture(gl.TEXTURE_2D, this.tex);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA32UI, TEX_W, Math.max(rows, 1), 0, gl.RGBA_INTEGER, gl.UNSIGNED_INT, null);
      for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, gl.NEAREST);
      this.texRows = Math.max(rows, 1); this.texGen = this.gen;
      this.dirtyLo = 0; this.dirtyHi = this.count;
    }
    if (this.shData && (rows > this.shRows || this.gen !== this.shGen)) {
      gl.bindTexture(gl.TEXTURE_2D, this.shTex);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA32UI, TEX_W, Math.max(rows, 1), 0, gl.RGBA_INTEGER, gl.UNSIGNED_INT, null);
      for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, gl.NEAREST);
      this.shRows = Math.max(rows, 1); this.shGen = this.gen;
      this.dirtyLo = 0; this.dirtyHi = this.count;
    }
    if (this.dirtyHi > this.dirtyLo) {
      const r0 = Math.floor(this.dirtyLo / PER_ROW), r1 = Math.ceil(this.dirtyHi / PER_ROW);
      gl.bindTexture(gl.TEXTURE_2D, this.tex);
      gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, r0, TEX_W, r1 - r0, gl.RGBA_INTEGER, gl.UNSIGNED_INT, this.data, r0 * TEX_W * 4);
      if (this.shData) {
        gl.bindTexture(gl.TEXTURE_2D, this.shTex);
        gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, r0, TEX_W, r1 - r0, gl.RGBA_INTEGER, gl.UNSIGNED_INT, this.shData, r0 * TEX_W * 4);
      }
      this.dirtyLo = this.dirtyHi = this.count;
    }
    // positions go to the worker only after their texels are uploaded, so a sort never names missing splats
    if (this.pending.length) {
      let n = 0;
      for (const p of this.pending) n += p.length;
      const all = new Float32Array(n);
      for (let i = 0, o = 0; i < this.pending.length; o += this.pending[i].length, i++) all.set(this.pending[i], o);
      this.pending = [];
      if (this.worker) this.worker.postMessage({ type: 'append', gen: this.gen, pos: all }, [all.buffer]);
    }
  }

  requestSort(view) {
    if (this.sortBusy || this.count === 0) return;
    const same = this.sortedView && this.sortedCount === this.count && view.every((v, i) => Math.abs(v - this.sortedView[i]) < 1e-5);
    if (same) return;
    this.sortedView = view; this.sortedCount = this.count;
    if (!this.worker) {
      this.useOrder(backToFront(new Float32Array(this.data.buffer), WORDS, this.count, view), this.count);
      return;
    }
    this.sortBusy = true;
    this.worker.postMessage({ type: 'sort', gen: this.gen, view });
  }
  sorted(m) {
    this.sortBusy = false;
    if (m.gen !== this.gen) { this.sortedView = null; return; }
    if (m.total < this.orderTotal) return; // older than the synchronous sort already shown
    this.useOrder(m.order, m.total);
  }
  useOrder(order, total) {
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.orderBuf);
    gl.bufferData(gl.ARRAY_BUFFER, order.length ? order : new Uint32Array(1), gl.DYNAMIC_DRAW);
    this.drawCount = order.length;
    this.orderTotal = total;
    this.needsDraw = true;
  }

  frame(now) {
    const dt = Math.min(0.1, (now - this.last) / 1000);
    this.last = now;
    this.keys(dt);
    this.resize();
    this.flushData();
    const view = this.viewMatrix();
    this.requestSort(view);
    if (this.waiters.length && !this.loading && !this.pending.length && this.orderTotal !== this.count) {
      // the test hook waits on this frame; headless virtual time does not wait for workers, so sort here
      this.useOrder(backToFront(new Float32Array(this.data.buffer), WORDS, this.count, view), this.count);
    }
    const complete = !this.loading && this.orderTotal === this.count && !this.pending.length;
    if (!this.needsDraw && !(complete && this.waiters.length)) return;
    this.needsDraw = false;
    this.draw(view);
    this.frames++;
    if (now - this.fpsT > 1000) { this.fps = (this.frames * 1000) / (now - this.fpsT); this.frames = 0; this.fpsT = now; }
    if (this.onStats) this.onStats({ count: this.count, drawn: this.drawCount, fps: this.fps, loading: this.loading });
    if (complete && this.waiters.length) {
      const n = this.countPixels(), w = this.waiters;
      this.waiters = [];
      for (const f of w) f(n);
    }
  }

  // A ground grid one unit below camera #0 and its axes (x red, y green, z blue), shown while no scene is loaded so
  // the empty viewer has a sense of space and direction.
  setGuides(on) {
    if (this.guides === on) return;
    this.guides = on;
    this.setCameras(...(this.lastCameras || [[], [], this.fov, 1]));
  }
  static guideLines() {
    const v = [], grey = [0.32, 0.34, 0.38], y = -1;
    for (let i = -6; i <= 6; i++) {
      v.push(i, y, -12, ...grey, i, y, 0, ...grey);
      if (i <= 0) v.push(-6, y, 2 * i, ...grey, 6, y, 2 * i, ...grey);
    }
    v.push(0, 0, 0, 0.9, 0.25, 0.25, 0.5, 0, 0, 0.9, 0.25, 0.25);
    v.push(0, 0, 0, 0.3, 0.85, 0.3, 0, 0.5, 0, 0.3, 0.85, 0.3);
    v.push(0, 0, 0, 0.3, 0.5, 1, 0, 0, 0.5, 0.3, 0.5, 1);
    return v;
  }

  draw(view) {
    const gl = this.gl, c = this.canvas, [r, g, b] = this.bg;
    gl.viewport(0, 0, c.width, c.height);
    gl.clearColor(r / 255, g / 255, b / 255, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    const aspect = c.width / c.height, proj = this.projMatrix(aspect);
    if (this.drawCount) {
      const s = this.splat, ty = Math.tan((this.fov * Math.PI) / 360), fy = (0.5 * c.height) / ty;
      gl.useProgram(s.p);
      gl.uniformMatrix4fv(s.u.u_view, false, view);
      gl.uniformMatrix4fv(s.u.u_proj, false, proj);
      gl.uniform2f(s.u.u_focal, fy, fy);
      gl.uniform2f(s.u.u_viewport, c.width, c.height);
      gl.uniform2f(s.u.u_tan, ty * aspect, ty);
      gl.activeTexture(gl.TEXTURE0);
      gl.bindTexture(gl.TEXTURE_2D, this.tex);
      gl.uniform1i(s.u.u_data, 0);
      gl.activeTexture(gl.TEXTURE1);
      gl.bindTexture(gl.TEXTURE_2D, this.shTex);
      gl.uniform1i(s.u.u_sh, 1);
      gl.uniform1i(s.u.u_shOn, this.shData ? 1 : 0);
      gl.uniform3f(s.u.u_eye, this.pos[0], this.pos[1], this.pos[2]);
      gl.uniformMatrix3fv(s.u.u_shFrame, false, this.shFrame);
      gl.activeTexture(gl.TEXTURE0);
      gl.enable(gl.BLEND);
      gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
      gl.bindVertexArray(this.vao);
      gl.drawArraysInstanced(gl.TRIANGLE_STRIP, 0, 4, this.drawCount);
      gl.disable(gl.BLEND);
    }
    if (this.lineCount) {
      const vp = new Float32Array(16);
      for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) {
        let sum = 0;
        for (let k = 0; k < 4; k++) sum += proj[k * 4 + i] * view[j * 4 + k];
        vp[j * 4 + i] = sum;
      }
      gl.useProgram(this.line.p);
      gl.uniformMatrix4fv(this.line.u.u_vp, false, vp);
      gl.bindVertexArray(this.lineVao);
      gl.drawArrays(gl.LINES, 0, this.lineCount);
    }
    gl.bindVertexArray(null);
  }

  countPixels() {
    const gl = this.gl, w = this.canvas.width, h = this.canvas.height, px = new Uint8Array(w * h * 4), [r, g, b] = this.bg;
    gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, px);
    let n = 0;
    const sum = [0, 0, 0];
    for (let i = 0; i < px.length; i += 4) {
      if (Math.abs(px[i] - r) > 8 || Math.abs(px[i + 1] - g) > 8 || Math.abs(px[i + 2] - b) > 8) {
        n++;
        sum[0] += px[i]; sum[1] += px[i + 1]; sum[2] += px[i + 2];
      }
    }
    // the mean colour of what was drawn, for tests of shading
    this.drawnMean = sum.map((v) => (n ? v / n / 255 : 0));
    return n;
  }
}
