// Depth sort off the main thread (a module worker): positions arrive once (appended as they load), then each
// view matrix gets back the indices of the splats in front of the camera, far to near, by a 16-bit counting sort.
// The viewer also imports backToFront for a synchronous sort when it must not wait (the headless test hook).

let depth = new Float32Array(0), keys = new Uint16Array(0), idx = new Uint32Array(0);
const counts = new Uint32Array(65536);

// pos holds x, y, z at i*stride; view is a column-major world-to-camera matrix (camera looks down -z).
export function backToFront(pos, stride, count, view) {
  const m2 = view[2], m6 = view[6], m10 = view[10], m14 = view[14];
  if (depth.length < count) { depth = new Float32Array(count); keys = new Uint16Array(count); idx = new Uint32Array(count); }
  let n = 0, lo = Infinity, hi = -Infinity;
  for (let i = 0, p = 0; i < count; i++, p += stride) {
    const z = m2 * pos[p] + m6 * pos[p + 1] + m10 * pos[p + 2] + m14;
    if (z < 0) {
      depth[n] = z; idx[n] = i; n++;
      if (z < lo) lo = z;
      if (z > hi) hi = z;
    }
  }
  const order = new Uint32Array(n);
  if (n === 0) return order;
  const k = hi > lo ? 65535 / (hi - lo) : 0;
  counts.fill(0);
  for (let i = 0; i < n; i++) { const key = ((depth[i] - lo) * k) | 0; keys[i] = key; counts[key]++; }
  for (let i = 0, sum = 0; i < 65536; i++) { const c = counts[i]; counts[i] = sum; sum += c; }
  // most negative z (farthest) first
  for (let i = 0; i < n; i++) order[counts[keys[i]]++] = idx[i];
  return order;
}

if (typeof WorkerGlobalScope !== 'undefined' && self instanceof WorkerGlobalScope) {
  let pos = new Float32Array(0), count = 0, gen = 0;
  self.onmessage = (e) => {
    const m = e.data;
    if (m.type === 'reset') {
      gen = m.gen; count = 0;
      pos = new Float32Array(Math.max(1, m.capacity) * 3);
    } else if (m.type === 'append') {
      if (m.gen !== gen) return;
      const n = m.pos.length / 3;
      if (pos.length < (count + n) * 3) {
        const next = new Float32Array(Math.max(count + n, (pos.length / 3) * 2) * 3);
        next.set(pos.subarray(0, count * 3));
        pos = next;
      }
      pos.set(m.pos, count * 3);
      count += n;
    } else if (m.type === 'sort') {
      const order = m.gen === gen ? backToFront(pos, 3, count, m.view) : new Uint32Array(0);
      self.postMessage({ type: 'sorted', gen: m.gen, order, total: count }, [order.buffer]);
    }
  };
}
