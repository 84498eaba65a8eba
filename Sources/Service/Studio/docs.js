// The API reference at /docs, rendered from this server's /openapi.json (no other origin, no library).
const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...kids) => {
  const e = Object.assign(document.createElement(tag), props);
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
};
// `code` spans, as the document writes them in its descriptions.
function prose(text) {
  const p = el('p');
  String(text || '').split(/(`[^`]*`)/).forEach((part) => p.append(part.startsWith('`') ? el('code', { textContent: part.slice(1, -1) }) : part));
  return p;
}
function resolve(doc, schema) {
  let s = schema || {};
  for (let i = 0; s.$ref && i < 8; i++) s = s.$ref.split('/').slice(1).reduce((o, k) => (o || {})[k], doc) || {};
  return s;
}
function typeOf(doc, schema) {
  const s = resolve(doc, schema);
  if (schema && schema.$ref) return schema.$ref.split('/').pop();
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(' | ');
  if (s.type === 'array') return `list of ${typeOf(doc, s.items)}`;
  return s.type || 'object';
}
function fields(doc, schema) {
  const s = resolve(doc, schema);
  if (!s.properties) return null;
  const table = el('table', {}, el('tr', {}, el('th', { textContent: 'field' }), el('th', { textContent: 'type' }), el('th', { textContent: 'meaning' })));
  for (const [name, prop] of Object.entries(s.properties)) {
    const required = (s.required || []).includes(name);
    table.append(el('tr', {}, el('td', {}, el('code', { textContent: name + (required ? ' *' : '') })), el('td', { textContent: typeOf(doc, prop) }),
      el('td', {}, prose(resolve(doc, prop).description))));
  }
  return table;
}
async function main() {
  let doc;
  try {
    const resp = await fetch('openapi.json');
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    doc = await resp.json();
  } catch (e) {
    $('intro').textContent = `The API document could not be loaded: ${e.message}`;
    return;
  }
  $('intro').replaceWith(prose(doc.info && doc.info.description ? doc.info.description : `${doc.info?.title || 'Diorama'} ${doc.info?.version || ''}`));
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags || ['other'])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push({ path, method, op });
    }
  }
  for (const [tag, ops] of byTag) {
    $('tags').append(el('a', { href: `#${tag}`, textContent: tag }));
    $('ops').append(el('h2', { id: tag, textContent: tag }));
    for (const { path, method, op } of ops) {
      const box = el('section', { className: 'op' },
        el('div', {}, el('span', { className: `method ${method}`, textContent: method.toUpperCase() }), el('span', { className: 'path', textContent: path }),
          op.summary ? el('span', { className: 'muted', textContent: ` — ${op.summary}` }) : null),
        op.description ? prose(op.description) : null);
      const params = (op.parameters || []).map((p) => resolve(doc, p));
      if (params.length) {
        const t = el('table', {}, el('tr', {}, el('th', { textContent: 'parameter' }), el('th', { textContent: 'in' }), el('th', { textContent: 'meaning' })));
        for (const p of params) t.append(el('tr', {}, el('td', {}, el('code', { textContent: p.name })), el('td', { textContent: p.in }), el('td', {}, prose(p.description))));
        box.append(t);
      }
      const body = op.requestBody && op.requestBody.content;
      if (body) {
        for (const [type, media] of Object.entries(body)) {
          box.append(el('div', { className: 'muted', textContent: `Request body (${type}): ${typeOf(doc, media.schema)}` }));
          const t = fields(doc, media.schema);
          if (t) box.append(t);
        }
      }
      const responses = Object.entries(op.responses || {});
      if (responses.length) {
        const t = el('table', {}, el('tr', {}, el('th', { textContent: 'status' }), el('th', { textContent: 'meaning' })));
        for (const [status, r] of responses) t.append(el('tr', {}, el('td', { textContent: status }), el('td', {}, prose(resolve(doc, r).description))));
        box.append(t);
      }
      $('ops').append(box);
    }
  }
  document.body.dataset.operations = String([...byTag.values()].reduce((n, ops) => n + ops.length, 0));
}
main();
