/* sevref publication: in-browser verification, search and table filters.
 *
 * Verification: fetch index.json and index.dsse.json, walk the key chain
 * keys/1..N.dsse.json (the first document signed by one of its own keys, each
 * later one by an active key of the one before), check the DSSE signature of
 * the index with WebCrypto by the key whose id the page shows, check that the
 * release has not expired, and check the sha256 of this page, its assets and
 * every JSON file loaded later against the signed index. The outcome is in
 * #verification's data-status: "verified" or "failed".
 *
 * Every value shown comes from checked JSON and goes into the page with
 * textContent, never as HTML.
 */
(() => {
  'use strict';

  const INDEX_TYPE = 'application/vnd.sevref.index+json';
  const KEYS_TYPE = 'application/vnd.sevref.keys+json';
  const INDEX_SCHEMA = 'urn:sevref:schema:index:1';
  const KEYS_SCHEMA = 'urn:sevref:schema:keys:1';
  const MAX_KEY_DOCUMENTS = 1000;
  const RESULTS_PER_PAGE = 50;
  const MAX_SHARDS_FOR_DIGESTS = 8;

  const body = document.body;
  const root = body.dataset.root || '';
  const here = body.dataset.path || '';
  const status = document.getElementById('verification');
  const shownKeyId = status ? status.dataset.keyid || '' : '';
  let failedAlready = false;

  /* ---- bytes ---- */

  const encoder = new TextEncoder();
  const decoder = new TextDecoder('utf-8', { fatal: true });

  function toHex(buffer) {
    return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function fromBase64(text) {
    const clean = text.replace(/-/g, '+').replace(/_/g, '/').replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean) || clean.length % 4 === 1) {
      throw new Error('not base64');
    }
    const binary = atob(clean + '='.repeat((4 - (clean.length % 4)) % 4));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  }

  function concat(parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const part of parts) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }

  function sameBytes(a, b) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
    return true;
  }

  async function sha256(bytes) {
    return toHex(await crypto.subtle.digest('SHA-256', bytes));
  }

  async function fetchBytes(path) {
    let response;
    try {
      response = await fetch(root + path);
    } catch (error) {
      throw new Error(`${path}: could not be fetched (${error.message})`);
    }
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  }

  function parseJson(bytes, what) {
    try {
      return JSON.parse(decoder.decode(bytes));
    } catch (error) {
      throw new Error(`${what} is not JSON (${error.message})`);
    }
  }

  /* ---- signatures ---- */

  // DSSE pre-authentication encoding.
  function pae(type, payload) {
    const t = encoder.encode(type);
    return concat([encoder.encode(`DSSEv1 ${t.length} `), t, encoder.encode(` ${payload.length} `), payload]);
  }

  // An ECDSA signature: DER SEQUENCE { r INTEGER, s INTEGER } to WebCrypto's r || s.
  function derToRaw(der, size) {
    let i = 0;
    const length = () => {
      let n = der[i++];
      if (n & 0x80) {
        const count = n & 0x7f;
        if (count < 1 || count > 2) throw new Error('bad DER length');
        n = 0;
        for (let k = 0; k < count; k += 1) n = (n << 8) | der[i++];
      }
      return n;
    };
    if (der[i++] !== 0x30) throw new Error('not a DER sequence');
    if (length() !== der.length - i) throw new Error('bad DER sequence length');
    const out = new Uint8Array(2 * size);
    for (let part = 0; part < 2; part += 1) {
      if (der[i++] !== 0x02) throw new Error('not a DER integer');
      const n = length();
      let value = der.subarray(i, i + n);
      i += n;
      while (value.length > size && value[0] === 0) value = value.subarray(1);
      if (value.length > size || value.length === 0) throw new Error('DER integer out of range');
      out.set(value, (part + 1) * size - value.length);
    }
    if (i !== der.length) throw new Error('trailing bytes after the DER signature');
    return out;
  }

  const ALGORITHMS = {
    'ecdsa-p256': { key: { name: 'ECDSA', namedCurve: 'P-256' }, verify: { name: 'ECDSA', hash: 'SHA-256' }, size: 32 },
    'ecdsa-p384': { key: { name: 'ECDSA', namedCurve: 'P-384' }, verify: { name: 'ECDSA', hash: 'SHA-384' }, size: 48 },
    ed25519: { key: { name: 'Ed25519' }, verify: { name: 'Ed25519' }, size: 0 },
  };

  // A keys document's entry -> {keyid, algorithm, key, status}, its id checked against its key.
  async function importEntry(entry, what) {
    const algorithm = ALGORITHMS[entry.algorithm];
    if (!algorithm) throw new Error(`${what}: key ${entry.keyid} has algorithm ${entry.algorithm}, which this page cannot check`);
    const pem = String(entry.public_key);
    const der = fromBase64(pem.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, ''));
    const keyid = await sha256(der);
    if (keyid !== entry.keyid) throw new Error(`${what}: key id ${entry.keyid} does not match its public key (${keyid})`);
    const key = await crypto.subtle.importKey('spki', der, algorithm.key, false, ['verify']);
    return { keyid, algorithm, key, status: entry.status, label: entry.label };
  }

  // A DSSE envelope's payload bytes, before any signature is checked.
  function unverifiedPayload(envelope, type, what) {
    if (!envelope || typeof envelope.payload !== 'string' || !Array.isArray(envelope.signatures)) {
      throw new Error(`${what} is not a DSSE envelope (payload, payloadType, signatures)`);
    }
    if (envelope.payloadType !== type) throw new Error(`${what}: payloadType is ${envelope.payloadType}; expected ${type}`);
    try {
      return fromBase64(envelope.payload);
    } catch (error) {
      throw new Error(`${what}: its payload is not base64`);
    }
  }

  // Open a DSSE envelope: the payload, if a signature by one of `keys` (id -> imported key) verifies.
  async function openEnvelope(envelope, type, keys, what) {
    const payload = unverifiedPayload(envelope, type, what);
    const message = pae(type, payload);
    for (const signature of envelope.signatures) {
      const key = keys.get(signature && signature.keyid);
      if (!key) continue;
      let sig;
      try {
        sig = fromBase64(String(signature.sig));
        if (key.algorithm.size) sig = derToRaw(sig, key.algorithm.size);
      } catch (error) {
        throw new Error(`${what}: the signature by ${key.keyid} is malformed (${error.message})`);
      }
      if (await crypto.subtle.verify(key.algorithm.verify, key.key, sig, message)) {
        return { payload, keyid: key.keyid };
      }
    }
    const named = envelope.signatures.map((s) => s && s.keyid).join(', ') || 'nobody';
    throw new Error(`${what}: no valid signature by a trusted key (signed by ${named})`);
  }

  async function activeKeys(document, what) {
    const keys = new Map();
    for (const entry of document.keys || []) {
      if (entry.status === 'active') keys.set(entry.keyid, await importEntry(entry, what));
    }
    return keys;
  }

  /* ---- verification ---- */

  function say(state, text) {
    if (!status) return;
    status.dataset.status = state;
    status.textContent = text;
  }

  function fail(reason) {
    failedAlready = true;
    say('failed', `Verification failed: ${reason}`);
  }

  function sameRelease(a, b) {
    return ['publisher', 'product', 'stream', 'release', 'serial'].every((k) => a && b && a[k] === b[k]);
  }

  async function establish() {
    if (location.protocol === 'file:') {
      throw new Error('pages opened from disk cannot be checked; serve the folder over HTTP (python3 -m http.server)');
    }
    if (!window.crypto || !crypto.subtle) throw new Error('this browser offers no WebCrypto here (it needs HTTPS or localhost)');
    const indexBytes = await fetchBytes('index.json');
    const files = new Map();
    let index;
    let signedBy = null;
    let label = null;
    if (!shownKeyId) {
      index = parseJson(indexBytes, 'index.json');
    } else {
      const envelope = parseJson(await fetchBytes('index.dsse.json'), 'index.dsse.json');
      const unverified = parseJson(unverifiedPayload(envelope, INDEX_TYPE, 'index.dsse.json'), 'the payload of index.dsse.json');
      const version = unverified && unverified.signing && unverified.signing.keys_version;
      if (!Number.isInteger(version) || version < 1 || version > MAX_KEY_DOCUMENTS) {
        throw new Error('index.dsse.json: no key chain version in its payload');
      }
      let current = null;
      for (let v = 1; v <= version; v += 1) {
        const what = `keys/${v}.dsse.json`;
        const keysEnvelope = parseJson(await fetchBytes(what), what);
        let signers;
        if (current === null) {
          // The first document names the keys that sign it; the page's key id is the anchor.
          signers = await activeKeys(parseJson(unverifiedPayload(keysEnvelope, KEYS_TYPE, what), what), what);
        } else {
          signers = await activeKeys(current, `keys/${v - 1}.dsse.json`);
        }
        const opened = await openEnvelope(keysEnvelope, KEYS_TYPE, signers, what);
        const document = parseJson(opened.payload, what);
        if (document.schema !== KEYS_SCHEMA || document.version !== v) {
          throw new Error(`${what}: expected a keys document of version ${v}`);
        }
        current = document;
      }
      const entry = (current.keys || []).find((k) => k.keyid === shownKeyId);
      if (!entry) throw new Error(`key ${shownKeyId}, shown on this page, is not in keys/${version}.dsse.json`);
      if (entry.status !== 'active') throw new Error(`key ${shownKeyId} is ${entry.status} in keys/${version}.dsse.json (${entry.reason})`);
      const key = await importEntry(entry, `keys/${version}.dsse.json`);
      const opened = await openEnvelope(envelope, INDEX_TYPE, new Map([[key.keyid, key]]), 'index.dsse.json');
      if (!sameBytes(opened.payload, indexBytes)) throw new Error('index.json differs from the payload of index.dsse.json');
      index = parseJson(indexBytes, 'index.json');
      if (current.publisher !== index.publisher) {
        throw new Error(`keys/${version}.dsse.json belongs to publisher ${current.publisher}; the index to ${index.publisher}`);
      }
      if (!index.signing || index.signing.keyid !== shownKeyId) throw new Error('the index names another signing key than this page');
      signedBy = shownKeyId;
      label = entry.label;
      const now = Date.now();
      if (now < Date.parse(index.issued)) throw new Error(`issued ${index.issued}, which is in the future`);
      if (now >= Date.parse(index.expires)) throw new Error(`expired at ${index.expires}`);
    }
    if (index.schema !== INDEX_SCHEMA || !Array.isArray(index.files)) throw new Error('index.json is not a sevref release index');
    for (const file of index.files) files.set(file.path, file);
    return { index, files, signedBy, label };
  }

  const trust = establish();

  // Read a listed file and check it against the signed index.
  async function checked(path) {
    const { files } = await trust;
    const file = files.get(path);
    if (!file) throw new Error(`${path} is not listed in the signed index`);
    const bytes = await fetchBytes(path);
    const found = await sha256(bytes);
    if (found !== file.sha256 || bytes.length !== file.size) {
      const reason = `${path} has sha256 ${found} (${bytes.length} bytes); the signed index says ${file.sha256} (${file.size} bytes)`;
      fail(reason);
      throw new Error(reason);
    }
    return bytes;
  }

  async function loadJson(path) {
    const { index } = await trust;
    const value = parseJson(await checked(path), path);
    if (!sameRelease(value.release, index)) {
      const reason = `${path} belongs to another release`;
      fail(reason);
      throw new Error(reason);
    }
    return value;
  }

  async function verifyPage() {
    let t;
    try {
      t = await trust;
      await Promise.all([here, 'assets/sevref.css', 'assets/sevref.js'].map(checked));
    } catch (error) {
      if (!failedAlready) fail(error.message);
      return;
    }
    if (failedAlready) return;
    const { index } = t;
    if (!t.signedBy) {
      fail('this publication is unsigned: nothing vouches for its values');
      return;
    }
    const label = t.label ? ` (labelled “${t.label}”)` : '';
    say(
      'verified',
      `Verified: release ${index.release} (serial ${index.serial}) is signed by key ${t.signedBy.slice(0, 16)}…${label}, ` +
        `valid until ${index.expires}; this page matches the signed index.`,
    );
  }

  /* ---- search ---- */

  function cell(row, text, className) {
    const td = document.createElement('td');
    if (className) td.className = className;
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function link(href, text, code) {
    const a = document.createElement('a');
    a.href = href;
    if (code) {
      const c = document.createElement('code');
      c.textContent = text;
      a.appendChild(c);
    } else {
      a.textContent = text;
    }
    return a;
  }

  function runsLabel(runs) {
    if (!runs) return 'any';
    return runs.map(([a, b]) => (a === b ? `${a}` : `${a}–${b}`)).join(', ');
  }

  function inRuns(runs, count) {
    return runs === null || runs.some(([a, b]) => a <= count && count <= b);
  }

  // An entry's lifecycle status: its exception's, else its configuration's (group records and catalog rows alike).
  function statusAt(record, count) {
    const exception = (record.exceptions || []).find((e) => count !== null && inRuns(e.vcpus, count));
    return exception ? exception.status : record.status;
  }

  // A configuration's statuses when no vCPU count is chosen: its own, then the entries that differ.
  function statusLabel(record) {
    return [record.status, ...(record.exceptions || []).map((e) => `${e.status}: ${runsLabel(e.vcpus)}`)].join('; ');
  }

  function entryId(group, count) {
    return count === null ? group : `${group}-${String(count).padStart(4, '0')}`;
  }

  // Read a pasted query: hex (64 or 96 digits, 0x allowed) or base64 of 32 or 48 bytes. Returns
  // { digest, kind, base64 } with kind 'snp' (an SEV-SNP MEASUREMENT) or 'gctx' (an SEV or SEV-ES
  // launch digest, GCTX.LD), or { kind: 'unknown', found } saying what the text is instead.
  function parseDigest(text) {
    const value = text.trim();
    const hex = value.replace(/^0x/i, '').replace(/[\s:]/g, '');
    const isHex = /^[0-9a-fA-F]+$/.test(hex);
    if (isHex && (hex.length === 64 || hex.length === 96)) {
      return { digest: hex.toLowerCase(), kind: hex.length === 96 ? 'snp' : 'gctx', base64: false };
    }
    let bytes;
    try {
      // A "+" typed into an address arrives as a space; base64 has no spaces of its own.
      bytes = fromBase64(value.replace(/ /g, '+'));
    } catch (error) {
      bytes = null;
    }
    if (bytes && (bytes.length === 32 || bytes.length === 48)) {
      return { digest: toHex(bytes), kind: bytes.length === 48 ? 'snp' : 'gctx', base64: true };
    }
    let found = `${value.length} characters that are neither hex nor base64`;
    if (value === '') found = 'nothing';
    else if (isHex) found = `${hex.length} hex digits`;
    else if (bytes) found = `base64 of ${bytes.length} bytes`;
    return { kind: 'unknown', found };
  }

  // What an unknown digest of each kind may mean, and what to do about it.
  const REMARKS = {
    snp:
      'An SEV-SNP MEASUREMENT changes with the firmware build, the vCPU count, the guest CPU model (its CPUID ' +
      'signature, in every VMSA), the guest features (SEV_FEATURES) and the host stack (QEMU, EC2 or GCE, ' +
      'whichever builds the vCPUs\' initial state); with measured direct boot, with the kernel, initrd and ' +
      'command line too. The guest policy is not part of it: sevref verify compares the report\'s policy with ' +
      'the expected one separately. The filters above show what this release covers; sevref digest computes ' +
      'the measurement of any configuration.',
    gctx:
      'An SEV or SEV-ES launch digest (GCTX.LD) changes with the firmware build and, with measured direct boot, ' +
      'the kernel, initrd and command line; on SEV-ES also with the vCPU count, the guest CPU model (its CPUID ' +
      'signature), the host\'s KVM API (the VMSA profile) and SEV_FEATURES. A guest never shows its GCTX.LD: ' +
      'LAUNCH_MEASURE returns an HMAC of it keyed with the guest owner\'s TIK, which sevref verify ' +
      '--launch-measurement checks.',
    qmp:
      'Base64 of 48 bytes is also what QMP\'s query-sev-launch-measure returns for an SEV or SEV-ES guest: ' +
      'the launch measurement (an HMAC keyed with the guest owner\'s TIK) followed by its 16-byte MNONCE. ' +
      'No site can look that up without the TIK: check it with sevref verify --launch-measurement BASE64 ' +
      '--tik FILE --api-major N --api-minor N --build N --policy HEX, which tries every SEV and SEV-ES ' +
      'candidate of this release.',
  };

  function setupSearch() {
    const digestForm = document.getElementById('digest-search');
    const filterForm = document.getElementById('filter-search');
    const table = document.getElementById('results');
    const summary = document.getElementById('results-summary');
    const pager = document.getElementById('results-pages');
    if (!digestForm || !filterForm || !table) return;
    const tbody = table.querySelector('tbody');
    summary.textContent = 'Paste a digest or choose a filter.';

    function show(rows, message, page) {
      summary.dataset.state = 'done';
      tbody.replaceChildren();
      pager.replaceChildren();
      summary.textContent = message;
      table.hidden = rows.length === 0;
      const pages = Math.ceil(rows.length / RESULTS_PER_PAGE);
      const first = (page - 1) * RESULTS_PER_PAGE;
      for (const r of rows.slice(first, first + RESULTS_PER_PAGE)) {
        const tr = document.createElement('tr');
        tr.dataset.entry = r.entry;
        const td = cell(tr, '');
        td.appendChild(link(`${root}entry/${r.group}.html#${r.entry}`, r.entry, true));
        cell(tr, r.mode);
        cell(tr, r.firmware);
        cell(tr, r.host);
        cell(tr, r.cpu);
        cell(tr, r.vcpus);
        cell(tr, r.status, `status-${r.status.split(/[;:]/)[0]}`);
        const digest = cell(tr, '');
        if (r.digest) {
          const code = document.createElement('code');
          code.className = 'hash';
          code.textContent = r.digest;
          digest.appendChild(code);
        } else {
          digest.appendChild(link(`${root}entry/${r.group}.html`, r.digestLabel, false));
        }
        tbody.appendChild(tr);
      }
      if (pages > 1) {
        for (let n = 1; n <= pages; n += 1) {
          if (n === page) {
            const strong = document.createElement('strong');
            strong.textContent = String(n);
            strong.setAttribute('aria-current', 'page');
            pager.appendChild(strong);
          } else {
            const button = document.createElement('button');
            button.type = 'button';
            button.textContent = String(n);
            button.addEventListener('click', () => show(rows, message, n));
            pager.appendChild(button);
          }
        }
      }
    }

    async function findDigest(text) {
      const query = parseDigest(text);
      summary.dataset.kind = query.kind;
      if (query.kind === 'unknown') {
        show(
          [],
          `This is not a digest this site knows how to read: it reads 96 hex digits (an SEV-SNP MEASUREMENT), ` +
            `64 (an SEV or SEV-ES launch digest, GCTX.LD), or the same in base64 (48 or 32 bytes); ` +
            `found ${query.found}.`,
          1,
        );
        return;
      }
      const { digest } = query;
      const { index } = await trust;
      const shard = `digests/${digest.slice(0, index.layout.digests_shard_hex)}.json`;
      const known = (await trust).files.has(shard) ? (await loadJson(shard)).digests : {};
      const entries = Object.prototype.hasOwnProperty.call(known, digest) ? known[digest] : [];
      const rows = [];
      for (const entry of entries) {
        const gid = entry.slice(0, 20);
        const groups = await loadJson(`groups/${gid.slice(0, index.layout.groups_shard_hex)}.json`);
        const g = groups.groups.find((x) => x.id === gid);
        if (!g) throw new Error(`entry ${entry} is missing from its group shard`);
        const count = entry.length > 20 ? Number(entry.slice(21)) : null;
        rows.push({
          entry,
          group: gid,
          mode: g.mode,
          firmware: g.firmware,
          host: g.host_stack,
          cpu: g.cpu || g.cpu_signature || '',
          vcpus: count === null ? 'any' : String(count),
          status: statusAt(g, count),
          digest,
        });
      }
      const kind = query.kind === 'snp' ? 'SEV-SNP measurement' : 'SEV/SEV-ES launch digest';
      if (rows.length === 0) {
        if (query.kind === 'snp' && query.base64) {
          summary.dataset.kind = 'snp-or-qmp';
          show([], `No entry has the SEV-SNP measurement ${digest} (read from base64). ${REMARKS.qmp} ${REMARKS.snp}`, 1);
        } else {
          show([], `No entry has the ${kind} ${digest}. ${REMARKS[query.kind]}`, 1);
        }
      } else {
        show(rows, `${rows.length} entr${rows.length === 1 ? 'y has' : 'ies have'} the ${kind} ${digest}.`, 1);
      }
    }

    async function filter(values) {
      const firmware = values.get('firmware');
      const catalog = await loadJson(`catalog/${firmware}.json`);
      const mode = values.get('mode') || '';
      const host = values.get('host') || '';
      const cpu = (values.get('cpu') || '').trim().toLowerCase();
      const vcpusText = (values.get('vcpus') || '').trim();
      const count = vcpusText === '' ? null : Number(vcpusText);
      if (count !== null && (!Number.isInteger(count) || count < 1 || count > 4096)) {
        throw new Error(`vCPUs: expected a whole number from 1 to 4096; found ${vcpusText}`);
      }
      const rows = [];
      for (const c of catalog.configurations) {
        if (mode && c.mode !== mode) continue;
        if (host && c.host_stack !== host) continue;
        if (cpu && !`${c.cpu || ''} ${c.cpu_signature || ''}`.toLowerCase().includes(cpu)) continue;
        if (count !== null && !inRuns(c.vcpus, count)) continue;
        const exact = count !== null || c.vcpus === null;
        const n = c.vcpus ? c.vcpus.reduce((sum, [a, b]) => sum + b - a + 1, 0) : 1;
        rows.push({
          entry: exact ? entryId(c.id, c.vcpus ? count : null) : c.id,
          group: c.id,
          mode: c.mode,
          firmware,
          host: c.host_stack,
          cpu: c.cpu || c.cpu_signature || '',
          vcpus: count !== null && c.vcpus ? String(count) : runsLabel(c.vcpus),
          status: count !== null && c.vcpus ? statusAt(c, count) : statusLabel(c),
          digestLabel: exact ? 'show the digest' : `${n} digest${n === 1 ? '' : 's'}`,
        });
      }
      // With a vCPU count, show the digests of the first page when few shards hold them.
      const { index } = await trust;
      const first = rows.slice(0, RESULTS_PER_PAGE).filter((r) => r.entry !== r.group || r.vcpus === 'any');
      const shards = new Set(first.map((r) => r.group.slice(0, index.layout.groups_shard_hex)));
      if (count !== null && first.length > 0 && shards.size <= MAX_SHARDS_FOR_DIGESTS) {
        const byId = new Map();
        for (const shard of shards) {
          for (const g of (await loadJson(`groups/${shard}.json`)).groups) byId.set(g.id, g);
        }
        for (const r of first) {
          const g = byId.get(r.group);
          const e = g && g.entries.find(([n]) => (n === null ? r.entry === r.group : r.entry === entryId(r.group, n)));
          if (e) r.digest = e[1];
        }
      }
      const total = catalog.configurations.length;
      show(rows, `${rows.length} of ${total} configurations of ${firmware} match.`, 1);
    }

    async function run(action) {
      summary.dataset.state = 'busy';
      summary.textContent = 'Searching…';
      try {
        await action();
      } catch (error) {
        show([], `Search failed: ${error.message}`, 1);
      }
    }

    digestForm.addEventListener('submit', (event) => {
      event.preventDefault();
      const text = digestForm.elements.digest.value;
      history.replaceState(null, '', `?digest=${encodeURIComponent(text.trim())}`);
      run(() => findDigest(text));
    });
    filterForm.addEventListener('submit', (event) => {
      event.preventDefault();
      const values = new FormData(filterForm);
      history.replaceState(null, '', `?${new URLSearchParams(values).toString()}`);
      run(() => filter(values));
    });

    const query = new URLSearchParams(location.search);
    if (query.has('digest')) {
      digestForm.elements.digest.value = query.get('digest');
      run(() => findDigest(query.get('digest')));
    } else if (query.has('firmware')) {
      for (const [name, value] of query) {
        if (filterForm.elements[name]) filterForm.elements[name].value = value;
      }
      run(() => filter(new FormData(filterForm)));
    }
  }

  /* ---- firmware pages: filter the table of this page ---- */

  function setupTableFilters() {
    for (const form of document.querySelectorAll('form[data-filter-table]')) {
      const table = document.getElementById(form.dataset.filterTable);
      if (!table) continue;
      const rows = Array.from(table.tBodies[0].rows);
      const output = form.querySelector('output');
      const apply = () => {
        const mode = form.elements.mode.value;
        const host = form.elements.host.value;
        const cpu = form.elements.cpu.value;
        const count = form.elements.vcpus.value === '' ? null : Number(form.elements.vcpus.value);
        let shown = 0;
        for (const row of rows) {
          const runs = row.dataset.vcpus ? row.dataset.vcpus.split(' ').map((r) => r.split('-').map(Number)) : null;
          const match =
            (!mode || row.dataset.mode === mode) &&
            (!host || row.dataset.host === host) &&
            (!cpu || row.dataset.cpu === cpu) &&
            (count === null || inRuns(runs, count));
          row.hidden = !match;
          if (match) shown += 1;
        }
        if (output) output.textContent = `${shown} of ${rows.length} shown`;
      };
      form.addEventListener('input', apply);
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        apply();
      });
      form.hidden = false;
      apply();
    }
  }

  if (status) say('pending', 'Checking the signature…');
  verifyPage();
  setupSearch();
  setupTableFilters();
})();
