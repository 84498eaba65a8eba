// Diorama Studio: camera-path authoring, prompts, jobs and the splat viewer, against the /v1 API.
import { Viewer, qmul, qconj, qnorm, qrot, qfromUnit, slerp, vadd, vsub, vlerp } from './viewer.js';
import { loadScene, responseError, formatOf, fetchWhenReady } from './loaders.js';

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...kids) => {
  const e = Object.assign(document.createElement(tag), props);
  for (const k of kids) e.append(k);
  return e;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const DEG = Math.PI / 180;
const TERMINAL = new Set(['completed', 'failed', 'cancelled', 'expired']);
const PRESETS = [[24, 480, 704], [24, 704, 480]];
const camera0 = () => ({ pos: [0, 0, 0], quat: [1, 0, 0, 0] });

const params = new URLSearchParams(location.search);
const testScene = params.get('scene');
const S = {
  info: null, fov: 60, frames: 24, H: 480, W: 704,
  keys: [camera0()],
  image: null, imageURL: '',
  job: null, follow: null, skew: 0, scene: null, play: null, sceneJob: null,
};

// ---- messages ----
let toastTimer = 0;
function notify(msg, kind = 'info') {
  const t = $('toast');
  t.className = kind;
  t.firstElementChild.textContent = msg;
  t.hidden = false;
  clearTimeout(toastTimer);
  if (kind !== 'error') toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
}
const fail = (prefix) => (e) => notify(`${prefix}: ${e.message || e}`, 'error');

// ---- API ----
// the token goes only to this server: a ?scene= link may name any URL
function authHeaders(extra = {}, url = location.href) {
  const token = (localStorage.getItem('diorama.token') || '').trim();
  const sameOrigin = new URL(url, location.href).origin === location.origin;
  return token && sameOrigin ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}
async function api(path, { method = 'GET', body } = {}) {
  let resp;
  try {
    resp = await fetch(path, {
      method, headers: authHeaders(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch (e) { throw new Error(`cannot reach the server (${e.message})`); }
  if (!resp.ok) throw new Error(await responseError(resp));
  const text = resp.status === 204 ? '' : await resp.text();
  return text ? JSON.parse(text) : null;
}

// ---- viewer ----
// Without WebGL2 the rest of the studio (jobs, downloads) still works; scene loads report why they cannot.
function deadViewer(why) {
  const noop = () => {};
  return {
    pos: [0, 0, 0], quat: [1, 0, 0, 0], mode: 'orbit', count: 0, orbitDist: 2,
    setFixedSize: noop, setPose: noop, setFov: noop, setAspect: noop, setMode: noop, setCameras: noop, setGuides: noop, reserve: noop,
    append: noop, endScene: noop, clearScene: noop, beginScene() { throw new Error(why); }, whenDrawn: () => Promise.resolve(0),
  };
}
let viewer;
try { viewer = new Viewer($('canvas'), { preserve: !!testScene }); } catch (e) {
  viewer = deadViewer(`the viewer cannot start: ${e.message}`);
  $('stats').textContent = `Viewer unavailable: ${e.message}`;
}
// The empty viewer: a grid, axes, a hint and examples, until a scene arrives.
function showEmpty(on) {
  viewer.setGuides(on && !testScene);
  $('empty').hidden = !on || !!testScene;
  document.body.dataset.empty = String(on && !testScene);
}
const sizeParam = /^(\d+)x(\d+)$/.exec(params.get('size') || '');
if (sizeParam) viewer.setFixedSize(+sizeParam[1], +sizeParam[2]);

function showStats(s) {
  const p = viewer.pos.map((v) => v.toFixed(2)).join(', ');
  $('stats').textContent = `${s.count.toLocaleString()} splats${s.loading ? ' (loading)' : ''} · ${s.drawn.toLocaleString()} drawn · ${s.fps.toFixed(0)} fps\n${viewer.mode} · position ${p}`;
}
viewer.onStats = showStats;
viewer.onChange = () => { $('mode').textContent = viewer.mode === 'orbit' ? 'Orbit' : 'Fly'; scheduleFrustums(); };

async function openScene(input, label) {
  if (S.scene) S.scene.abort();
  const ctrl = new AbortController();
  S.scene = ctrl;
  const bar = $('load'), fill = bar.querySelector('i'), text = bar.querySelector('span');
  const live = () => S.scene === ctrl && !ctrl.signal.aborted;
  const mb = (n) => (n / 1048576).toFixed(1) + ' MB';
  bar.hidden = false; fill.style.width = '0%'; text.textContent = `Loading ${label}…`;
  showEmpty(false);
  try {
    viewer.beginScene(0);
    const res = await loadScene(input, {
      headers: typeof input === 'string' ? authHeaders({}, input) : {}, signal: ctrl.signal,
      onBegin: (n) => { if (live() && n) viewer.reserve(Math.min(n, 1 << 23)); }, // a header's count is a hint, not a promise
      onBatch: (b) => { if (live()) viewer.append(b); },
      onProgress: (got, total) => {
        if (!live()) return;
        fill.style.width = total ? `${Math.min(100, (100 * got) / total)}%` : '50%';
        text.textContent = `Loading ${label}: ${mb(got)}${total ? ' of ' + mb(total) : ''} · ${viewer.count.toLocaleString()} splats`;
      },
    });
    if (!live()) return null;
    return res;
  } finally {
    if (S.scene === ctrl) { viewer.endScene(); bar.hidden = true; S.scene = null; }
  }
}
const baseName = (s) => decodeURIComponent(String(s).split(/[?#]/)[0].split('/').pop() || 'scene');
function openSceneUI(input, label) {
  // A file from disk is no job's scene: nothing to extend.
  if (typeof input !== 'string' && S.sceneJob) { S.sceneJob = null; renderJob(); }
  return openScene(input, label).then((r) => { if (r) notify(`Loaded ${r.count.toLocaleString()} splats from ${label}`); return r; })
    .catch((e) => { if (e.name !== 'AbortError') notify(`Could not load ${label}: ${e.message}`, 'error'); return null; });
}

// ---- configuration ----
const intrinsics = () => {
  const f = (0.5 * S.H) / Math.tan((S.fov * DEG) / 2);
  return { fx: f, fy: f, cx: S.W / 2, cy: S.H / 2 };
};
function fillResolutions() {
  const sel = $('res'), seen = new Set(), lim = (S.info && S.info.limits) || {}, d = (S.info && S.info.defaults) || null;
  const list = [];
  if (d && d.frames && d.height && d.width) list.push([d.frames, d.height, d.width]);
  list.push(...PRESETS, [S.frames, S.H, S.W]);
  sel.textContent = '';
  for (const r of list) {
    const key = r.join('x');
    if (seen.has(key)) continue;
    if (lim.max_frames && r[0] > lim.max_frames) continue;
    if (lim.max_side && Math.max(r[1], r[2]) > lim.max_side) continue;
    seen.add(key);
    sel.append(el('option', { value: key, textContent: `${r[0]} × ${r[1]} × ${r[2]}${d && key === [d.frames, d.height, d.width].join('x') ? ' (server default)' : ''}` }));
  }
  sel.append(el('option', { value: 'custom', textContent: 'custom (edit below)' }));
  syncConfig();
}
function setResolution(frames, H, W) {
  S.configured = true; // the user's choice outlives the server's defaults arriving later
  const lim = (S.info && S.info.limits) || {};
  S.frames = Math.max(1, Math.min(lim.max_frames || 1e4, Math.round(frames) || 1));
  // the model works on 32-pixel blocks; the server refuses other sizes
  const side = (v) => Math.max(32, Math.min(lim.max_side || 1e4, Math.round((Number(v) || 32) / 32) * 32));
  S.H = side(H);
  S.W = side(W);
  syncConfig();
  recropImage();
}
function syncConfig() {
  $('fov').value = S.fov; $('fov-out').textContent = `${Math.round(S.fov)}°`;
  $('frames').value = S.frames; $('height').value = S.H; $('width').value = S.W;
  const key = [S.frames, S.H, S.W].join('x');
  $('res').value = [...$('res').options].some((o) => o.value === key) ? key : 'custom';
  const idx = $('image-index');
  idx.max = Math.max(0, S.frames - 1);
  if (+idx.value > S.frames - 1) idx.value = S.frames - 1;
  $('image-index-out').textContent = idx.value;
  if (!testScene) {
    viewer.setFov(S.fov);
    viewer.setAspect($('fit-aspect').checked ? S.W / S.H : null);
  }
  scheduleFrustums();
  saveSession();
}
$('fov').addEventListener('input', () => { S.fov = +$('fov').value; syncConfig(); });
$('res').addEventListener('change', () => {
  const v = $('res').value;
  if (v !== 'custom') setResolution(...v.split('x').map(Number));
});
for (const id of ['frames', 'height', 'width']) {
  $(id).addEventListener('change', () => setResolution(+$('frames').value, +$('height').value, +$('width').value));
}
$('fit-aspect').addEventListener('change', syncConfig);

// ---- camera path ----
function pathAt(keys, t) {
  const M = keys.length;
  if (M === 1) return { pos: keys[0].pos.slice(), quat: keys[0].quat.slice() };
  const s = Math.min(Math.max(t, 0), 1) * (M - 1), i = Math.min(Math.floor(s), M - 2), f = s - i;
  return { pos: vlerp(keys[i].pos, keys[i + 1].pos, f), quat: slerp(keys[i].quat, keys[i + 1].quat, f) };
}
const interpolate = (keys, n) => Array.from({ length: n }, (_, i) => pathAt(keys, n > 1 ? i / (n - 1) : 0));
const camJSON = (c, k = intrinsics()) => ({ quaternion: c.quat.slice(), position: c.pos.slice(), fx: k.fx, fy: k.fy, cx: k.cx, cy: k.cy });

let frustumQueued = false;
function scheduleFrustums() {
  if (frustumQueued) return;
  frustumQueued = true;
  requestAnimationFrame(() => {
    frustumQueued = false;
    if (testScene) return;
    // a frustum at the viewer's own position would only outline the screen edges
    const away = (c) => Math.hypot(...vsub(c.pos, viewer.pos)) > 1e-3;
    const keys = $('show-keys').checked ? S.keys.filter(away) : [];
    const interp = $('show-interp').checked && S.keys.length > 1 ? interpolate(S.keys, S.frames).filter(away) : [];
    viewer.setCameras(keys, interp, S.fov, S.W / S.H);
  });
}
function renderKeys() {
  const list = $('keys');
  list.textContent = '';
  S.keys.forEach((k, i) => {
    const go = el('button', { textContent: 'view', title: 'Move the viewer to this camera' });
    go.onclick = () => viewer.setPose(k.pos, k.quat);
    const li = el('li', {}, el('span', { textContent: `#${i}  ${k.pos.map((v) => v.toFixed(2)).join(', ')}` }), go);
    if (i > 0) {
      const del = el('button', { textContent: '✕', title: 'Delete this keyframe' });
      del.onclick = () => { S.keys.splice(i, 1); pathChanged(); };
      li.append(del);
    }
    list.append(li);
  });
  list.scrollTop = list.scrollHeight;
  $('undo').disabled = $('clear').disabled = S.keys.length < 2;
}
function pathChanged() { renderKeys(); scheduleFrustums(); saveSession(); document.body.dataset.keys = String(S.keys.length); }
function addKey(cam, why) {
  S.keys.push({ pos: cam.pos.slice(), quat: qnorm(cam.quat) });
  pathChanged();
  notify(`Camera #${S.keys.length - 1} added (${why})`);
}
// The reference UI's template buttons, applied to the last keyframe.
function template(step) {
  const last = S.keys[S.keys.length - 1];
  let pos = last.pos.slice(), quat = last.quat.slice();
  const d = { forward: [2, -0.5], backward: [2, 0.5], left: [0, -0.5], right: [0, 0.5] }[step];
  if (d) pos[d[0]] += d[1];
  else {
    // 15° on a circle of radius 1 around the point 1 ahead, in the last camera's frame, looking at that point
    const a = (step === 'orbit-left' ? -15 : 15) * DEG, target = vadd(last.pos, qrot(last.quat, [0, 0, -1]));
    pos = vadd(target, qrot(last.quat, [Math.sin(a), 0, Math.cos(a)]));
    const dir = vsub(target, pos), l = Math.hypot(...dir);
    quat = qfromUnit([0, 0, -1], dir.map((v) => v / l));
  }
  addKey({ pos, quat }, step.replace('-', ' '));
}
$('record').onclick = () => addKey({ pos: viewer.pos, quat: viewer.quat }, 'recorded');
$('undo').onclick = () => { if (S.keys.length > 1) { S.keys.pop(); pathChanged(); } };
$('clear').onclick = () => { S.keys = [camera0()]; pathChanged(); notify('Cameras cleared (camera #0 kept)'); };
for (const b of document.querySelectorAll('[data-step]')) b.onclick = () => template(b.dataset.step);
$('show-keys').onchange = $('show-interp').onchange = scheduleFrustums;

// ---- JSON ----
function saveJSON(obj, name) {
  const a = el('a', { href: URL.createObjectURL(new Blob([JSON.stringify(obj, null, 2)], { type: 'application/json' })), download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}
function request() {
  const k = intrinsics(), seed = $('seed').value.trim();
  const body = {
    text_prompt: $('prompt').value, image_prompt: S.imageURL || '', image_index: +$('image-index').value,
    resolution: [S.frames, S.H, S.W], cameras: interpolate(S.keys, S.frames).map((c) => camJSON(c, k)),
  };
  if (seed !== '') body.seed = parseInt(seed, 10);
  return body;
}
// Reads cameras from a request document or a bare list; re-bases them on camera 0 and infers the fov.
function readCameras(doc) {
  const list = Array.isArray(doc) ? doc : doc && Array.isArray(doc.cameras) ? doc.cameras : null;
  if (!list || !list.length) throw new Error('the JSON has no "cameras" list');
  const res = !Array.isArray(doc) && Array.isArray(doc.resolution) && doc.resolution.length === 3 ? doc.resolution.map(Number) : null;
  const cams = list.map((c, i) => {
    const q = c && c.quaternion, p = c && c.position;
    if (!Array.isArray(q) || q.length !== 4 || !q.every(Number.isFinite) || !Math.hypot(...q)) throw new Error(`camera ${i}: "quaternion" must be 4 numbers [w, x, y, z]`);
    if (!Array.isArray(p) || p.length !== 3 || !p.every(Number.isFinite)) throw new Error(`camera ${i}: "position" must be 3 numbers`);
    return { pos: p.slice(), quat: qnorm(q), fy: c.fy, cy: c.cy };
  });
  const inv = qconj(cams[0].quat), p0 = cams[0].pos;
  const keys = cams.map((c) => ({ pos: qrot(inv, vsub(c.pos, p0)), quat: qnorm(qmul(inv, c.quat)) }));
  const H = res ? res[1] : cams[0].cy > 0 ? 2 * cams[0].cy : 0;
  const fov = cams[0].fy > 0 && H > 0 ? (2 * Math.atan((0.5 * H) / cams[0].fy)) / DEG : null;
  return { keys, res, fov };
}
let jsonMode = 'cams';
async function loadJSONFile(file, mode) {
  let doc;
  try { doc = JSON.parse(await file.text()); } catch (e) { throw new Error(`${file.name} is not valid JSON (${e.message})`); }
  const { keys, res, fov } = readCameras(doc);
  if (fov) S.fov = Math.min(120, Math.max(1, Math.round(fov * 100) / 100));
  if (mode === 'all') {
    if (res) setResolution(...res);
    if (typeof doc.text_prompt === 'string') $('prompt').value = doc.text_prompt;
    if (Number.isInteger(doc.seed)) $('seed').value = doc.seed;
    if (typeof doc.image_prompt === 'string' && doc.image_prompt.startsWith('data:image/')) {
      await setImage(await (await fetch(doc.image_prompt)).blob(), 'from JSON');
    } else clearImage();
    if (Number.isInteger(doc.image_index)) $('image-index').value = doc.image_index;
  }
  S.keys = keys;
  // A loaded path is generated as given: one frame per camera (unless the document says its own resolution).
  if (!(mode === 'all' && res)) setResolution(keys.length, S.H, S.W);
  syncConfig();
  pathChanged();
  const capped = S.frames < keys.length ? ` (the server takes at most ${S.frames} frames: the path is resampled)` : '';
  notify(`Loaded ${keys.length} cameras${mode === 'all' ? ' with prompts and resolution' : ''} from ${file.name}; ${S.frames} frames${capped}`);
}
$('load-cams').onclick = () => { jsonMode = 'cams'; $('json-file').click(); };
$('load-all').onclick = () => { jsonMode = 'all'; $('json-file').click(); };
$('json-file').onchange = (e) => {
  const f = e.target.files[0];
  e.target.value = '';
  if (f) loadJSONFile(f, jsonMode).catch(fail('Could not load the cameras'));
};
$('save-traj').onclick = () => saveJSON({ resolution: [S.frames, S.H, S.W], cameras: S.keys.map((c) => camJSON(c)) }, `trajectory-${Date.now()}.json`);
$('save-all').onclick = () => saveJSON(request(), `diorama-request-${Date.now()}.json`);

// ---- image prompt ----
async function setImage(blob, name) {
  let bmp;
  try { bmp = await createImageBitmap(blob); } catch (_) { throw new Error(`${name} is not an image this browser can decode`); }
  S.image = { bmp, name };
  recropImage();
}
// Centre crop to the generation aspect, then resize to W x H (as the reference UI does).
function recropImage() {
  if (!S.image) return;
  const { bmp, name } = S.image, w = S.W, h = S.H;
  const scale = Math.max(h / bmp.height, w / bmp.width);
  const cw = Math.round(w / scale), ch = Math.round(h / scale);
  const sx = Math.floor((bmp.width - cw) / 2), sy = Math.floor((bmp.height - ch) / 2);
  const c = el('canvas', { width: w, height: h }), g = c.getContext('2d');
  g.imageSmoothingQuality = 'high';
  g.drawImage(bmp, sx, sy, cw, ch, 0, 0, w, h);
  S.imageURL = c.toDataURL('image/png');
  $('image-preview').src = S.imageURL;
  $('image-box').hidden = false;
  $('clear-image').disabled = false;
  const kb = Math.round((S.imageURL.length * 3) / 4 / 1024), lim = S.info && S.info.limits && S.info.limits.max_body_bytes;
  $('image-note').textContent = `${name}: ${bmp.width}×${bmp.height} cropped to ${cw}×${ch}, resized to ${w}×${h} · ${kb} KB PNG`;
  $('image-note').className = lim && S.imageURL.length > lim * 0.9 ? 'err' : '';
  if (lim && S.imageURL.length > lim * 0.9) $('image-note').textContent += ` — too large for the server's ${Math.round(lim / 1024)} KB request limit`;
}
function clearImage() {
  S.image = null; S.imageURL = '';
  $('image-box').hidden = true; $('clear-image').disabled = true; $('image-preview').removeAttribute('src');
}
$('pick-image').onclick = () => $('image-file').click();
$('image-file').onchange = (e) => {
  const f = e.target.files[0];
  e.target.value = '';
  if (f) setImage(f, f.name).catch(fail('Image'));
};
$('clear-image').onclick = clearImage;
$('image-index').oninput = () => { $('image-index-out').textContent = $('image-index').value; };

// ---- jobs ----
function fmtSecs(s) {
  if (!Number.isFinite(s) || s < 0) return '–';
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}
function statusLine(j) {
  switch (j.status) {
    case 'queued': return `Queued${j.queue_position ? ` — position ${j.queue_position} in the queue` : ''}`;
    case 'running': return 'Running';
    case 'completed': return `Completed${j.gaussians ? ` — ${j.gaussians.toLocaleString()} Gaussians` : ''}`;
    case 'failed': return 'Failed';
    case 'cancelled': return 'Cancelled';
    case 'expired': return 'Expired (its files were removed)';
    default: return j.status;
  }
}
function elapsedText(j) {
  const now = Date.now() / 1000 + S.skew;
  if (j.status === 'queued') return `waiting ${fmtSecs(now - j.created_at)}`;
  if (j.status === 'running') return `running ${fmtSecs(now - (j.started_at || j.created_at))}${j.started_at ? ` · queued ${fmtSecs(j.started_at - j.created_at)}` : ''}`;
  if (j.completed_at) return `total ${fmtSecs(j.completed_at - j.created_at)}${j.started_at ? ` · ran ${fmtSecs(j.completed_at - j.started_at)}` : ''}`;
  return '';
}
// Artifact links by key: the name a download is saved under (after the job's short id) and its button.
const EXT = { ply: 'ply', spz: 'spz', splat: 'splat', mp4: 'mp4', glb: 'glb', collider: 'collider.glb', panorama: 'panorama.png' };
const LABEL = { ply: 'PLY', spz: 'SPZ', splat: '.splat', mp4: 'MP4 video', glb: 'GLB mesh', collider: 'Collider GLB', panorama: '360° panorama' };
function renderJob() {
  const j = S.job;
  $('job').hidden = !j;
  $('cancel').hidden = !j || TERMINAL.has(j.status);
  if (!j) return;
  $('job-status').textContent = statusLine(j);
  $('job-status').className = j.status === 'failed' ? 'err' : '';
  $('job-elapsed').textContent = elapsedText(j);
  const p = j.progress;
  const frac = j.status === 'completed' ? 1 : p && Number.isFinite(p.fraction) ? p.fraction : 0;
  $('job-bar').style.width = `${(100 * frac).toFixed(1)}%`;
  $('job-stage').textContent = j.status === 'failed' || j.status === 'cancelled' ? (j.error || '')
    : p && !TERMINAL.has(j.status) ? `${p.stage}${p.steps && !/\bstep \d/.test(p.stage) ? ` — step ${p.step} of ${p.steps}` : ''} (${Math.round(100 * frac)}%${Number.isFinite(p.eta_seconds) ? `, about ${fmtSecs(p.eta_seconds)} left` : ''})` : '';
  $('job-stage').className = j.status === 'failed' ? 'err' : 'muted';
  const t = $('timings');
  t.textContent = '';
  for (const x of j.timings || []) t.append(el('tr', {}, el('td', { textContent: x.stage }), el('td', { textContent: fmtSecs(x.seconds) })));
  if ((j.timings || []).length > 1) t.append(el('tr', {}, el('td', { innerHTML: '<b>sum</b>' }), el('td', { textContent: fmtSecs(j.timings.reduce((a, x) => a + x.seconds, 0)) })));
  if (!(j.kind === 'video' && j.status === 'completed')) $('video-player').hidden = true;
  $('job-extends').hidden = !j.extends;
  $('job-extends').textContent = j.extends ? `extends ${String(j.extends).slice(0, 8)}` : '';
  $('job-extends').title = j.extends ? `grown from job ${j.extends}` : '';
  $('extend').hidden = !(j.status === 'completed' && j.kind !== 'video' && S.sceneJob === j.id);
  // the new part's prompt starts as this scene's (once per job, so an edit survives progress updates)
  if (!$('extend').hidden && $('extend-prompt').dataset.job !== j.id) {
    $('extend-prompt').dataset.job = j.id;
    $('extend-prompt').value = j.prompt || '';
  }
  const dl = $('downloads');
  const have = j.artifacts ? Object.keys(EXT).filter((k) => j.artifacts[k]) : [];
  if (dl.dataset.job !== j.id + have.join()) {
    dl.dataset.job = j.id + have.join();
    dl.textContent = '';
    for (const k of have) {
      const b = el('button', { textContent: `⤓ ${LABEL[k]}` });
      b.onclick = () => download(j.artifacts[k], `diorama-${String(j.id).slice(0, 8)}.${EXT[k]}`, b);
      dl.append(b);
      if (k === 'panorama') {
        const o = el('button', { textContent: '↗ Open panorama', title: 'Show the 360° panorama in a new tab' });
        o.onclick = () => openInTab(j.artifacts[k], o);
        dl.append(o);
      }
    }
  }
}
setInterval(() => { if (S.job && !TERMINAL.has(S.job.status)) $('job-elapsed').textContent = elapsedText(S.job); }, 250);

// SPZ and PLY are written with the job (the others are made on first request).
function sceneURL(j) { const a = j.artifacts || {}; return a.spz || a.ply || a.splat || null; }
function onJob(j) {
  if (j.status === 'deleted') {
    if (S.job && S.job.id === j.id) { S.job = null; renderJob(); }
    return refreshJobs();
  }
  const was = S.job && S.job.id === j.id ? S.job.status : null;
  S.job = j;
  saveSession();
  document.body.dataset.job = `${j.id} ${j.status}`;
  renderJob();
  if (j.status === 'completed' && was !== 'completed' && S.sceneJob !== j.id) showJobScene(j);
  if (j.status === 'failed' && was !== 'failed') notify(`Job failed: ${j.error || 'no reason given'}`, 'error');
  if (TERMINAL.has(j.status) && was !== j.status) refreshJobs();
}
function showJobScene(j) {
  if (j.kind === 'video') return showJobVideo(j);
  const url = sceneURL(j);
  if (!url) return notify('The job completed but lists no scene file', 'error');
  S.sceneJob = j.id;
  renderJob();
  viewer.setPose([0, 0, 0], [1, 0, 0, 0]);
  openSceneUI(url, baseName(url));
}
async function follow(id) {
  if (S.follow) S.follow.abort();
  const ctrl = new AbortController();
  S.follow = ctrl;
  const mine = () => S.follow === ctrl && !ctrl.signal.aborted;
  let finished = false;
  try {
    const resp = await fetch(`v1/jobs/${encodeURIComponent(id)}/events`, { headers: authHeaders({ Accept: 'text/event-stream' }), signal: ctrl.signal });
    if (!resp.ok || !resp.body) throw new Error(await responseError(resp));
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    const handle = (block) => {
      let event = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (!data.length) return;
      if (!mine()) { finished = true; return; }
      try { onJob(JSON.parse(data.join('\n'))); } catch (_) { /* a malformed event: wait for the next */ }
      if (event === 'done') finished = true;
    };
    while (!finished) {
      const { done, value } = await reader.read();
      if (done) { handle(buf); break; }
      buf += value.replace(/\r\n?/g, '\n');
      for (let cut; !finished && (cut = buf.indexOf('\n\n')) >= 0;) {
        handle(buf.slice(0, cut));
        buf = buf.slice(cut + 2);
      }
    }
    reader.cancel().catch(() => {});
  } catch (e) {
    if (ctrl.signal.aborted) return;
  }
  // the stream broke or ended early: poll every 2 s
  let lastErr = '';
  while (!finished && mine() && S.job && S.job.id === id && !TERMINAL.has(S.job.status)) {
    await sleep(2000);
    if (!mine()) return;
    try { onJob(await api(`v1/jobs/${encodeURIComponent(id)}`)); lastErr = ''; } catch (e) {
      if (e.message !== lastErr) notify(`Lost track of job ${id}: ${e.message}`, 'error');
      lastErr = e.message;
      if (/not found|404/i.test(e.message)) return;
    }
  }
}
// ---- video jobs (POST /v1/videos, when the server has a video model) ----
let shownVideo = '';
async function showJobVideo(j) {
  const url = j.artifacts && j.artifacts.mp4;
  const player = $('video-player');
  if (!url) return notify('The video job completed but lists no video', 'error');
  if (shownVideo === j.id) { player.hidden = false; return; }
  try {
    const resp = await fetch(url, { headers: authHeaders() });
    if (!resp.ok) throw new Error(await responseError(resp));
    if (player.src) URL.revokeObjectURL(player.src);
    player.src = URL.createObjectURL(await resp.blob());
    player.hidden = false;
    shownVideo = j.id;
    S.sceneJob = j.id;
  } catch (e) { notify(`The video could not be loaded: ${e.message}`, 'error'); }
}
function videoDefaults(v) {
  const d = (v && v.defaults) || {};
  for (const [id, key] of [['video-frames', 'frames'], ['video-height', 'height'], ['video-width', 'width'], ['video-steps', 'steps'], ['video-guidance', 'guidance']]) {
    if (!$(id).value && d[key] !== undefined) $(id).value = d[key];
  }
}
// The picked image at its own size (at most 2048 a side): the server crops it to the video's aspect.
function imageForVideo() {
  const { bmp } = S.image;
  const k = Math.min(1, 2048 / Math.max(bmp.width, bmp.height));
  const c = el('canvas', { width: Math.round(bmp.width * k), height: Math.round(bmp.height * k) });
  c.getContext('2d').drawImage(bmp, 0, 0, c.width, c.height);
  return c.toDataURL('image/png');
}
async function generateVideo() {
  const num = (id) => ($(id).value === '' ? undefined : Number($(id).value));
  const body = {
    prompt: $('video-prompt').value, negative_prompt: $('video-negative').value,
    frames: num('video-frames'), width: num('video-width'), height: num('video-height'),
    steps: num('video-steps'), guidance: num('video-guidance'), teacache: num('video-teacache'),
    seed: num('seed'),
  };
  if ($('video-use-image').checked) {
    if (!S.image) return notify('Pick an image in section 3 first, or untick "Use the image prompt"', 'error');
    body.image = imageForVideo();
  }
  if (!body.prompt.trim() && !body.image) return notify('Describe the video, or use the image prompt', 'error');
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  await submitJob('v1/videos', body, $('generate-video'), 'Video failed');
}
$('generate-video').onclick = generateVideo;

// Queues a job and follows it (scenes and videos alike); the server's clock offset is kept for the elapsed times.
async function submitJob(path, body, btn, failure) {
  btn.disabled = true;
  try {
    const sent = Date.now() / 1000;
    const j = await api(path, { method: 'POST', body });
    S.skew = Number.isFinite(j.created_at) ? j.created_at - sent : 0;
    if (Math.abs(S.skew) < 2) S.skew = 0;
    S.sceneJob = null;
    onJob(j);
    refreshJobs();
    follow(j.id);
  } catch (e) {
    notify(`${failure}: ${e.message}`, 'error');
  } finally { btn.disabled = false; }
}

async function generate() {
  if (S.keys.length < 2) return notify('The camera path needs at least two keyframes: press Space, Record, or a template button', 'error');
  const body = request(), lim = (S.info && S.info.limits) || {};
  const bytes = JSON.stringify(body).length;
  if (lim.max_body_bytes && bytes > lim.max_body_bytes) return notify(`The request is ${Math.round(bytes / 1024)} KB; the server takes at most ${Math.round(lim.max_body_bytes / 1024)} KB (use a smaller image)`, 'error');
  await submitJob('v1/jobs', body, $('generate'), 'Generate failed');
}
$('generate').onclick = generate;

// The viewer's camera as the `start` pose POST /v1/jobs/{id}/extend takes: camera-to-world, position [x, y, z] and
// orientation [w, x, y, z], of a camera looking down its own -z with +y up (OpenGL camera axes), in the scene's frame:
// RUB (x right, y up, z back), generation camera #0 at the origin with no rotation.
// - The viewer's `pos`/`quat` are already that kind of pose (camera-to-world, [w, x, y, z]; viewMatrix() inverts
//   them; forward() is quat · [0, 0, -1]; +y is up on screen), in a world with RUB axes.
// - The loaders change only axes: each file's recorded frame (PLY `comment coordinate_frame`, SPZ's coordinate-system
//   extension, FlashWorld's own PLY layout, else RDF) is turned into RUB by a signed permutation (frameMatrix). No
//   recentring, scaling or flip besides; a job's scene.ply/scene.spz record RUB, so for them even that is the identity.
// - The server reads the scene it grows into RUB too (whatever its file records) and places `start` in those axes.
// So the viewer's world is the scene's frame, and the pose goes through unchanged: copied, the quaternion normalised
// with w >= 0. At the view a finished job opens with (camera #0: setPose([0, 0, 0], [1, 0, 0, 0]) in showJobScene)
// this gives position [0, 0, 0] and orientation [1, 0, 0, 0].
function sceneFramePose(camera) {
  const q = qnorm(camera.quat);
  return { position: camera.pos.slice(), orientation: q[0] < 0 ? q.map((v) => -v) : q };
}
async function extendHere() {
  const j = S.job;
  if (!j || j.status !== 'completed' || j.kind === 'video') return notify('Open a completed scene to extend it', 'error');
  if (S.sceneJob !== j.id) return notify("Open this job's scene first, then stand where the new part should begin", 'error');
  // the viewer's field of view too (S.fov, what it draws with), so the path's first camera sees what the viewer shows
  const body = { start: sceneFramePose({ pos: viewer.pos, quat: viewer.quat }), path: $('extend-path').value, fov: S.fov };
  const prompt = $('extend-prompt').value.trim();
  if (prompt) body.text_prompt = prompt;
  await submitJob(`v1/jobs/${encodeURIComponent(j.id)}/extend`, body, $('extend-go'), 'Extend failed');
}
$('extend-go').onclick = extendHere;
$('cancel').onclick = () => S.job && cancelJob(S.job.id);
async function cancelJob(id) {
  try { const j = await api(`v1/jobs/${encodeURIComponent(id)}/cancel`, { method: 'POST' }); if (S.job && S.job.id === id) onJob(j); refreshJobs(); }
  catch (e) { notify(`Cancel failed: ${e.message}`, 'error'); refreshJobs(); }
}
async function deleteJob(id) {
  if (!confirm('Delete this job and its files?')) return;
  try {
    await api(`v1/jobs/${encodeURIComponent(id)}`, { method: 'DELETE' });
    if (S.job && S.job.id === id) { if (S.follow) S.follow.abort(); S.job = null; renderJob(); }
    refreshJobs();
  } catch (e) { notify(`Delete failed: ${e.message}`, 'error'); }
}
// Downloads go to disk, not into the page's memory: without a token the browser's own download of a plain link
// (after waiting, with HEAD, until a file made on demand exists); with one, a file the user picks, written as the
// bytes arrive (where the browser offers that), else, as a last resort, a Blob.
async function download(url, name, btn) {
  const label = btn.textContent;
  btn.disabled = true;
  const making = () => { btn.textContent = `${label} (making…)`; };
  try {
    const headers = authHeaders();
    if (!headers.Authorization) {
      await fetchWhenReady(url, { method: 'HEAD' }, making);
      const a = el('a', { href: url, download: name });
      document.body.append(a);
      a.click();
      a.remove();
      return;
    }
    // Asked before any waiting, while the click still counts as the user's gesture.
    const handle = window.showSaveFilePicker ? await window.showSaveFilePicker({ suggestedName: name }).catch(() => null) : null;
    if (window.showSaveFilePicker && !handle) return; // the user closed the picker
    const resp = await fetchWhenReady(url, { headers }, making);
    const total = +resp.headers.get('Content-Length') || 0;
    let got = 0;
    const counted = new TransformStream({
      transform(chunk, ctrl) {
        got += chunk.length;
        btn.textContent = total ? `${label} ${Math.floor((100 * got) / total)}%` : `${label} ${(got / 1048576).toFixed(1)} MB`;
        ctrl.enqueue(chunk);
      },
    });
    if (handle) {
      await resp.body.pipeThrough(counted).pipeTo(await handle.createWritable());
      notify(`Saved ${name}`);
      return;
    }
    const blob = await new Response(resp.body.pipeThrough(counted)).blob();
    const a = el('a', { href: URL.createObjectURL(blob), download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  } catch (e) {
    notify(`Download of ${name} failed: ${e.message}`, 'error');
  } finally { btn.disabled = false; btn.textContent = label; }
}

// An artifact (the panorama) in a new tab: the tab opens at the click, which pop-up blockers allow, and is sent to the
// file once it exists; with a token, to a copy fetched with it, as a plain link would go without.
async function openInTab(url, btn) {
  const tab = window.open('', '_blank');
  if (!tab) return notify('The browser blocked the new tab: allow pop-ups for this page', 'error');
  try { tab.document.body.textContent = 'Waiting for the file…'; } catch (_) { /* not ours to write: it still navigates */ }
  const label = btn.textContent;
  btn.disabled = true;
  try {
    const headers = authHeaders();
    const resp = await fetchWhenReady(url, headers.Authorization ? { headers } : { method: 'HEAD' }, () => { btn.textContent = `${label} (making…)`; });
    if (!headers.Authorization) { tab.location.href = new URL(url, location.href).href; return; }
    const blobURL = URL.createObjectURL(await resp.blob());
    tab.location.href = blobURL;
    setTimeout(() => URL.revokeObjectURL(blobURL), 60000);
  } catch (e) {
    tab.close();
    notify(`Could not open ${baseName(url)}: ${e.message}`, 'error');
  } finally { btn.disabled = false; btn.textContent = label; }
}

let jobsBusy = false;
async function refreshJobs() {
  if (jobsBusy || testScene) return;
  jobsBusy = true;
  const ul = $('jobs');
  try {
    const { jobs = [] } = (await api('v1/jobs')) || {};
    ul.textContent = '';
    if (!jobs.length) ul.append(el('li', { className: 'muted', textContent: 'No jobs yet.' }));
    for (const j of jobs) {
      const btns = el('span', { className: 'buttons' });
      const add = (text, fn, title = '') => { const b = el('button', { textContent: text, title }); b.onclick = fn; btns.append(b); };
      if (j.status === 'completed') add('Open', () => { if (S.follow) S.follow.abort(); S.skew = 0; S.job = j; renderJob(); showJobScene(j); }, j.kind === 'video' ? 'Play the video and show its download' : 'Load the scene and show its downloads');
      if (!TERMINAL.has(j.status)) {
        add('Follow', () => { S.skew = 0; onJob(j); follow(j.id); }, 'Show its progress');
        add('Cancel', () => cancelJob(j.id));
      }
      add('Delete', () => deleteJob(j.id));
      const when = j.created_at ? new Date(j.created_at * 1000).toLocaleString() : '';
      const meta = [when, j.kind === 'video' ? `video ${j.frames}×${j.height}×${j.width}` : `${j.frames}×${j.height}×${j.width}`, j.gaussians ? `${j.gaussians.toLocaleString()} splats` : '',
        j.extends ? `extends ${String(j.extends).slice(0, 8)}` : '',
        j.status === 'queued' && j.queue_position ? `queue #${j.queue_position}` : '',
        j.status === 'running' && j.progress ? `${Math.round(100 * (j.progress.fraction || 0))}% ${j.progress.stage || ''}` : ''].filter(Boolean).join(' · ');
      ul.append(el('li', { className: S.job && S.job.id === j.id ? 'current' : '' },
        el('span', { className: 'what' }, el('span', { className: `st ${j.status}`, textContent: j.status }), j.prompt || '(no text prompt)'),
        el('span', { className: 'meta', textContent: meta }),
        j.error ? el('div', { className: j.status === 'failed' ? 'err' : 'muted', textContent: j.error }) : '', btns));
    }
  } catch (e) {
    ul.textContent = '';
    ul.append(el('li', { className: 'err', textContent: `Jobs unavailable: ${e.message}` }));
  } finally { jobsBusy = false; }
}
$('refresh-jobs').onclick = refreshJobs;
setInterval(() => { if (!document.hidden) refreshJobs(); }, 10000);

// ---- playback ----
function scrubTo(t) {
  $('scrub').value = t;
  $('scrub-out').textContent = (+t).toFixed(3);
  const c = pathAt(S.keys, +t);
  viewer.setPose(c.pos, c.quat);
}
function stopPlay() { if (S.play) { cancelAnimationFrame(S.play); S.play = null; $('play').textContent = 'Play path'; } }
$('scrub').oninput = () => { stopPlay(); scrubTo(+$('scrub').value); };
$('play').onclick = () => {
  if (S.play) return stopPlay();
  const dur = Math.max(2, S.frames / 6) * 1000, t0 = performance.now() - (+$('scrub').value >= 1 ? 0 : +$('scrub').value * dur);
  $('play').textContent = 'Stop';
  const step = (now) => {
    const t = Math.min(1, (now - t0) / dur);
    scrubTo(t);
    S.play = t < 1 ? requestAnimationFrame(step) : null;
    if (!S.play) $('play').textContent = 'Play path';
  };
  S.play = requestAnimationFrame(step);
};

// ---- viewer toolbar, keys, drag and drop ----
function resetView() { stopPlay(); viewer.orbitDist = 2; viewer.setPose([0, 0, 0], [1, 0, 0, 0]); }
$('mode').onclick = () => viewer.setMode(viewer.mode === 'orbit' ? 'fly' : 'orbit');
$('reset-view').onclick = resetView;
$('help-toggle').onclick = () => { $('help').hidden = !$('help').hidden; };
$('open-file').onclick = () => $('scene-file').click();
$('clear-scene').onclick = () => { if (S.scene) S.scene.abort(); viewer.clearScene(); S.sceneJob = null; renderJob(); showEmpty(true); };
$('scene-file').onchange = (e) => {
  const f = e.target.files[0];
  e.target.value = '';
  if (f) openSceneUI(f, f.name);
};
$('toast').lastElementChild.onclick = () => { $('toast').hidden = true; };
window.addEventListener('keydown', (e) => {
  const t = e.target;
  if (t && (t.isContentEditable || /^(TEXTAREA|SELECT)$/.test(t.tagName) || (t.tagName === 'INPUT' && !/^(range|checkbox|button|file|radio)$/.test(t.type)))) return;
  if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
  if (e.code === 'Space') { e.preventDefault(); stopPlay(); $('record').click(); }
  else if (e.code === 'Home') { e.preventDefault(); resetView(); }
  else if (e.code === 'KeyH') $('help').hidden = !$('help').hidden;
});
// Space records a keyframe; it must not also press the focused button
for (const b of document.querySelectorAll('button')) for (const ev of ['keydown', 'keyup']) b.addEventListener(ev, (e) => { if (e.code === 'Space') e.preventDefault(); });
$('canvas').addEventListener('pointerdown', stopPlay);

const stage = $('stage');
let dragDepth = 0;
stage.addEventListener('dragenter', (e) => { e.preventDefault(); dragDepth++; $('drop').hidden = false; });
stage.addEventListener('dragleave', () => { if (--dragDepth <= 0) { dragDepth = 0; $('drop').hidden = true; } });
stage.addEventListener('dragover', (e) => e.preventDefault());
stage.addEventListener('drop', (e) => {
  e.preventDefault();
  dragDepth = 0; $('drop').hidden = true;
  const f = e.dataTransfer.files[0];
  if (!f) return;
  if (formatOf(f.name)) openSceneUI(f, f.name);
  else if (f.type.startsWith('image/')) setImage(f, f.name).catch(fail('Image'));
  else if (/\.json$/i.test(f.name)) loadJSONFile(f, 'all').catch(fail('Could not load the cameras'));
  else notify(`${f.name}: drop a .splat, .spz or .ply scene, an image, or a JSON camera file`, 'error');
});

// ---- token ----
$('token').value = localStorage.getItem('diorama.token') || '';
$('token').addEventListener('change', () => {
  localStorage.setItem('diorama.token', $('token').value.trim());
  refreshJobs();
  loadInfo();
});

// ---- the session survives a reload: prompt, path, settings, and the job being followed ----
const STORE = 'diorama.studio';
let saveTimer = 0;
function saveSession() {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => {
    try {
      localStorage.setItem(STORE, JSON.stringify({
        prompt: $('prompt').value, seed: $('seed').value, imageIndex: +$('image-index').value, videoPrompt: $('video-prompt').value,
        fov: S.fov, frames: S.frames, H: S.H, W: S.W, keys: S.keys, job: S.job ? S.job.id : null,
      }));
    } catch (_) { /* storage full or disabled: nothing to keep */ }
  }, 150);
}
function restoreSession() {
  let saved;
  // `?session=` (URL-encoded JSON of what is saved: prompt, keys, frames, H, W, fov, seed, job) opens the studio in
  // that state, as if it had been left so: a link can hand over a prompt and a path.
  const handed = params.get('session');
  if (handed) try { localStorage.setItem(STORE, handed); } catch (_) { /* no storage: the state is read below anyway */ }
  try { saved = JSON.parse(handed || localStorage.getItem(STORE) || 'null'); } catch (_) { return null; }
  if (!saved || typeof saved !== 'object') return null;
  const num = (v) => typeof v === 'number' && Number.isFinite(v);
  const cam = (c) => c && Array.isArray(c.pos) && c.pos.length === 3 && c.pos.every(num) && Array.isArray(c.quat) && c.quat.length === 4 && c.quat.every(num);
  // A handed-over state is untrusted: text bounded, numbers clamped to what the studio offers, at most 256 keys.
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  if (typeof saved.prompt === 'string') $('prompt').value = saved.prompt.slice(0, 8192);
  if (typeof saved.videoPrompt === 'string') $('video-prompt').value = saved.videoPrompt.slice(0, 8192);
  if (typeof saved.seed === 'string' && /^-?\d{0,19}$/.test(saved.seed)) $('seed').value = saved.seed;
  if (num(saved.imageIndex)) $('image-index').value = clamp(Math.round(saved.imageIndex), 0, 1023);
  if (num(saved.fov)) S.fov = clamp(saved.fov, 1, 120);
  if (Array.isArray(saved.keys) && saved.keys.length && saved.keys.length <= 256 && saved.keys.every(cam)) {
    S.keys = saved.keys.map((c) => ({ pos: c.pos.slice(), quat: qnorm(c.quat) }));
  }
  if (num(saved.frames) && num(saved.H) && num(saved.W)) {
    const side = (v) => clamp(Math.round(v / 32) * 32, 32, 4096);
    S.configured = true; S.frames = clamp(Math.round(saved.frames), 1, 1024); S.H = side(saved.H); S.W = side(saved.W);
  }
  document.body.dataset.session = 'restored';
  return saved;
}
async function reattach(id) {
  try {
    const j = await api(`v1/jobs/${encodeURIComponent(id)}`);
    onJob(j);
    if (!TERMINAL.has(j.status)) { $('cancel').hidden = false; follow(id); notify(`Following job ${id} again`); }
  } catch (_) { /* gone: nothing to follow */ }
}
for (const id of ['prompt', 'seed', 'image-index', 'video-prompt']) $(id).addEventListener('input', saveSession);
window.addEventListener('pagehide', saveSession);

// ---- connection: the header says when the server stops answering, and everything resumes when it is back ----
let connected = true;
async function watchConnection() {
  for (;;) {
    let ok = false;
    try {
      const ctrl = new AbortController(), timer = setTimeout(() => ctrl.abort(), 4000);
      // any answer means reachable: /health says 503 while the model loads or storage is degraded
      ok = !!(await fetch('health', { signal: ctrl.signal, cache: 'no-store' }));
      clearTimeout(timer);
    } catch (_) { ok = false; }
    if (ok !== connected) {
      connected = ok;
      const c = $('connection');
      c.className = ok ? 'conn ok' : 'conn lost';
      c.textContent = ok ? 'connected' : 'server unreachable: retrying';
      document.body.dataset.connection = ok ? 'ok' : 'lost';
      if (ok) { loadInfo(); refreshJobs(); if (S.job && !TERMINAL.has(S.job.status)) follow(S.job.id); }
      else notify('The server stopped answering; the studio will reconnect by itself', 'error');
    }
    await sleep(ok ? 5000 : 2000);
  }
}

// ---- examples for a first scene ----
const EXAMPLES = [
  { prompt: 'a quiet Japanese garden with a koi pond, stone lanterns and maple trees in morning mist', steps: ['forward', 'forward'] },
  { prompt: 'a cozy reading nook with a leather armchair, a floor lamp and shelves of old books', steps: ['orbit-left', 'orbit-left'] },
  { prompt: 'a medieval castle courtyard at sunset, a well in the middle, banners on the walls', steps: ['orbit-right', 'forward'] },
  { prompt: 'an alien desert with glowing blue crystals under two moons', steps: ['left', 'forward', 'forward'] },
];
for (const ex of EXAMPLES) {
  const b = el('button', { textContent: ex.prompt, title: `path: camera #0, then ${ex.steps.join(', ')}` });
  b.onclick = () => {
    $('prompt').value = ex.prompt;
    S.keys = [camera0()];
    for (const step of ex.steps) template(step);
    saveSession();
    notify('Example loaded: press Generate');
  };
  $('examples').append(b);
}

// ---- start-up ----
async function loadInfo() {
  try {
    const info = await api('v1/info');
    S.info = info;
    const d = info.defaults || {};
    $('server-info').textContent = `model ${info.model || '?'} · ${info.version || ''}${info.auth_required ? ' · token required' : ''}`;
    if (!S.configured) {
      S.configured = true;
      if (d.fov > 0) S.fov = d.fov;
      if (d.frames && d.height && d.width) { S.frames = d.frames; S.H = d.height; S.W = d.width; }
    }
    $('video-panel').hidden = !info.video;
    if (info.video) videoDefaults(info.video);
    fillResolutions();
    recropImage();
    if (info.auth_required && !$('token').value.trim()) notify('This server needs an access token: enter it at the top right', 'error');
  } catch (e) {
    $('server-info').textContent = `server info unavailable: ${e.message}`;
  }
}

const saved = testScene ? null : restoreSession();
fillResolutions();
pathChanged();
showEmpty(true);
if (saved && saved.job) reattach(saved.job);
if (!testScene) watchConnection();
if (testScene) {
  // Test hook: camera 0 with a 60° fov; report what was drawn on <body>.
  const body = document.body;
  body.dataset.status = 'loading';
  viewer.setFov(60);
  viewer.setPose([0, 0, 0], [1, 0, 0, 0]);
  viewer.setCameras([], [], 60, 1);
  openScene(testScene, baseName(testScene))
    .then(async (r) => {
      const drawn = await viewer.whenDrawn();
      body.dataset.splats = String(r ? r.count : 0);
      body.dataset.drawn = String(drawn);
      body.dataset.mean = (viewer.drawnMean || []).map((v) => v.toFixed(3)).join(',');
      body.dataset.status = 'drawn';
    })
    .catch((e) => {
      body.dataset.error = e.message || String(e);
      body.dataset.status = 'error';
    });
}
loadInfo();
refreshJobs();
