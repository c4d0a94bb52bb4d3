/* sevref publication: in-browser verification, search and table filters.
 *
 * Verification applies the rules of `sevref verify` (sevref/trust.py,
 * sevref/keychain.py, sevref/sign.py) with WebCrypto:
 *
 * - the key chain keys/1, keys/2, ... is read until the first one that is
 *   missing (at most MAX_KEY_DOCUMENTS, each bounded in size). Without a pinned
 *   key (a page has none) keys/1 must be signed by its own active release keys;
 *   with pinned keys (the test harness passes the conformance suite's) the chain
 *   is entered at the first document a pinned key signed. Each later document
 *   must be signed by an active release key of the one before and by every key
 *   it adds, keep the publisher, and never make a revoked key active again.
 *   Every document is strict, canonical JSON valid against the keys schema,
 *   each key matching its id and algorithm;
 * - index.dsse.json must be signed by an active key of the release role in the
 *   NEWEST document (a key that a later document revokes is refused, whatever
 *   the index says), index.json must be exactly its strict, canonical payload,
 *   name that key with its algorithm and no newer keys document than served,
 *   belong to the chain's publisher, and be valid now;
 * - a page: its own path comes from its address (location) relative to this
 *   script's address (document.currentScript: assets/sevref.js, so the
 *   publication's root is the folder above assets/), never from anything the
 *   page says. The page's file, fetched again, its style sheet and this script
 *   must match the signed index, and every JSON file loaded later too.
 *
 * The outcome is in #verification's data-status: "verified", "failed", or
 * "unchecked" for a page opened from disk (file://), which cannot be checked. It
 * states what was checked; it proves nothing to a tool that reads a static
 * copy of a page (a replaced page can carry any data-status).
 *
 * window.sevref.verifyPublication(base, options) is the same check on any
 * publication folder of this origin (every file, like sevref verify), for
 * tests that run the conformance suite in a browser.
 *
 * Every value shown comes from checked JSON and goes into the page with
 * textContent, never as HTML. Nothing is fetched from another origin.
 */
(() => {
  'use strict';

  const INDEX_TYPE = 'application/vnd.sevref.index+json';
  const KEYS_TYPE = 'application/vnd.sevref.keys+json';
  const INTOTO_TYPE = 'application/vnd.in-toto+json';
  const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
  const PREDICATE_TYPE = 'urn:sevref:predicate:release:1';
  // The index's format: major 1, of which this page knows minor 0. A newer minor (index:1.1, ...) only adds
  // members a verifier may ignore; another major is refused (docs/compatibility.md).
  const INDEX_SCHEMA = /^urn:sevref:schema:index:1(?:\.([1-9][0-9]{0,3}))?$/;
  const INDEX_MINOR = 0;
  const indexMinor = (v) => {
    const found = typeof v === 'string' ? INDEX_SCHEMA.exec(v) : null;
    return found ? Number(found[1] || 0) : -1;
  };
  const KEYS_SCHEMA = 'urn:sevref:schema:keys:1';
  // Bounds, as sevref/limits.py sets them.
  const MAX_KEY_DOCUMENTS = 100;
  const MAX_KEYS_DOCUMENT_BYTES = 64 << 10;
  const MAX_INDEX_ENVELOPE_BYTES = 24 << 20;
  const MAX_SIGNATURE_FILE_BYTES = 512;
  const MAX_ENVELOPE_SIGNATURES = 16;
  const MAX_FETCH_BYTES = 1 << 30;
  const MAX_JSON_DEPTH = 200;
  const RESULTS_PER_PAGE = 50;
  const MAX_SHARDS_FOR_DIGESTS = 8;
  const RELEASE_FIELDS = ['publisher', 'product', 'stream', 'release', 'serial'];
  const SCRIPT_PATH = 'assets/sevref.js';
  // A path the index may list (schema/index.schema.json).
  const FILE_PATH = /^[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)*$/;

  const script = document.currentScript;
  const status = document.getElementById('verification');
  let failedAlready = false;

  /* ---- errors ---- */

  // A refusal: the check that failed (as sevref verify names it) and what was found.
  class Refusal extends Error {
    constructor(check, message) {
      super(message);
      this.name = 'Refusal';
      this.check = check;
    }
  }

  // A document that is not what it must be, before the caller decides which check that fails
  // (sevref's SignatureError, JSONFormatError and LayoutError).
  class Problem extends Error {}

  // A file that is not there (HTTP 404 or 410): only that ends the key chain.
  class NotFound extends Error {}

  function refuse(check, message) {
    throw new Refusal(check, message);
  }

  // Run `action`; a Problem it raises becomes a refusal of `check`.
  async function judged(check, action, prefix = '') {
    try {
      return await action();
    } catch (error) {
      if (error instanceof Problem) refuse(check, prefix + error.message);
      throw error;
    }
  }

  /* ---- bytes ---- */

  const encoder = new TextEncoder();
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

  function toHex(buffer) {
    return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
  }

  // Lenient base64 (either alphabet, spaces, no padding): for what people type into the search.
  function fromBase64(text) {
    const clean = text.replace(/-/g, '+').replace(/_/g, '/').replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean) || clean.length % 4 === 1) {
      throw new Error('not base64');
    }
    const binary = atob(clean + '='.repeat((4 - (clean.length % 4)) % 4));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  }

  // Strict base64, as Python's b64decode(validate=True) reads it: for signed data.
  const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

  function strictBase64(text, what) {
    if (typeof text !== 'string' || !BASE64.test(text)) throw new Problem(`${what} is not base64`);
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
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

  /* ---- fetching, bounded ---- */

  // At most `max` bytes of a response; a longer body is cut there and its download stopped.
  async function readAtMost(response, max) {
    if (!response.body) return new Uint8Array(await response.arrayBuffer()).subarray(0, max);
    const reader = response.body.getReader();
    const parts = [];
    let total = 0;
    while (total < max) {
      const { done, value } = await reader.read();
      if (done) return concat(parts);
      parts.push(value);
      total += value.length;
    }
    reader.cancel().catch(() => {});
    return concat(parts).subarray(0, max);
  }

  // A file of the publication at `base`: at most limit + 1 bytes of it (the caller judges a longer one).
  async function fetchAtMost(base, path, limit) {
    let response;
    try {
      response = await fetch(new URL(path, base), { mode: 'same-origin', credentials: 'same-origin' });
    } catch (error) {
      refuse('fetch', `${path}: could not be fetched (${error.message})`);
    }
    if (response.status === 404 || response.status === 410) throw new NotFound(`${path}: not found (HTTP ${response.status})`);
    if (!response.ok) refuse('fetch', `${path}: HTTP ${response.status}`);
    try {
      return await readAtMost(response, limit + 1);
    } catch (error) {
      refuse('fetch', `${path}: could not be read (${error.message})`);
    }
  }

  // A file no index lists, of at most `limit` bytes (sevref's _read); NotFound passes through.
  async function readBounded(base, path, limit) {
    const data = await fetchAtMost(base, path, limit);
    if (data.length > limit) refuse('fetch', `${path}: more than ${limit} bytes, the most sevref reads of it`);
    return data;
  }

  /* ---- JSON, strictly (sevref/strictjson.py) and canonically (RFC 8785) ---- */

  // Null when `text` is JSON with each key once per object and integers only; else what is wrong.
  function strictProblem(text) {
    let i = 0;
    const fail = (what) => {
      throw new Problem(`${what} (at character ${i})`);
    };
    const space = () => {
      while (i < text.length && ' \t\n\r'.includes(text[i])) i += 1;
    };
    const string = () => {
      const start = i;
      i += 1;
      for (;;) {
        if (i >= text.length) fail('an unterminated string');
        const c = text.charCodeAt(i);
        if (c === 0x22) break;
        if (c < 0x20) fail('a control character in a string');
        i += c === 0x5c ? 2 : 1;
      }
      i += 1;
      try {
        return JSON.parse(text.slice(start, i));
      } catch (error) {
        return fail('a bad escape in a string');
      }
    };
    const number = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
    const value = (depth) => {
      if (depth > MAX_JSON_DEPTH) fail('nested deeper than sevref reads');
      space();
      const c = text[i];
      if (c === '{' || c === '[') {
        const close = c === '{' ? '}' : ']';
        const keys = new Set();
        i += 1;
        space();
        if (text[i] === close) {
          i += 1;
          return;
        }
        for (;;) {
          if (c === '{') {
            space();
            if (text[i] !== '"') fail('expected a key');
            const key = string();
            if (keys.has(key)) fail(`key ${JSON.stringify(key)} appears twice in one object; expected each key once`);
            keys.add(key);
            space();
            if (text[i] !== ':') fail("expected ':'");
            i += 1;
          }
          value(depth + 1);
          space();
          if (text[i] === ',') {
            i += 1;
          } else if (text[i] === close) {
            i += 1;
            return;
          } else {
            fail(`expected ',' or '${close}'`);
          }
        }
      }
      if (c === '"') {
        string();
        return;
      }
      for (const word of ['true', 'false', 'null']) {
        if (text.startsWith(word, i)) {
          i += word.length;
          return;
        }
      }
      number.lastIndex = i;
      const found = number.exec(text);
      if (!found) fail('not JSON');
      if (found[1] || found[2]) fail(`the number ${found[0].slice(0, 40)} is not an integer; expected integers only`);
      if (!Number.isSafeInteger(Number(found[0]))) fail(`the integer ${found[0].slice(0, 40)} is larger than sevref writes`);
      i += found[0].length;
    };
    value(0);
    space();
    if (i !== text.length) fail('text after the JSON value');
  }

  // Parse strict JSON (UTF-8 without a byte order mark); a Problem otherwise.
  function strictJson(bytes, what) {
    let text;
    try {
      text = decoder.decode(bytes);
    } catch (error) {
      throw new Problem(`${what}: not UTF-8; expected UTF-8 JSON`);
    }
    if (text.startsWith('\ufeff')) throw new Problem(`${what}: starts with a byte order mark; expected UTF-8 JSON without one`);
    try {
      strictProblem(text);
    } catch (error) {
      throw new Problem(`${what}: ${error.message}`);
    }
    return JSON.parse(text);
  }

  // RFC 8785 text of a JSON value of integers: also a deep equality of two values.
  function canonicalText(value) {
    if (Array.isArray(value)) return `[${value.map(canonicalText).join(',')}]`;
    if (value !== null && typeof value === 'object') {
      const members = Object.keys(value).sort().map((k) => `${canonicalText(k)}:${canonicalText(value[k])}`);
      return `{${members.join(',')}}`;
    }
    if (typeof value === 'string' && !value.isWellFormed()) throw new Problem('text with a lone surrogate has no canonical form');
    if (value === undefined) return 'undefined';
    return JSON.stringify(value);
  }

  function sameValue(a, b) {
    try {
      return canonicalText(a) === canonicalText(b);
    } catch (error) {
      return false;
    }
  }

  function isCanonical(value, bytes) {
    try {
      return sameBytes(encoder.encode(canonicalText(value)), bytes);
    } catch (error) {
      return false;
    }
  }

  /* ---- shapes (the parts of schema/keys and schema/index that a verifier relies on) ---- */

  const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  const isText = (v, max = 2000) => typeof v === 'string' && [...v].length <= max;
  const isInt = (v, min = 0) => Number.isSafeInteger(v) && v >= min;
  const matches = (pattern) => (v) => typeof v === 'string' && pattern.test(v);
  const isId = matches(/^[a-z0-9][a-z0-9._-]{0,62}$/);
  const isSha256 = matches(/^[0-9a-f]{64}$/);
  const isTime = matches(/^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$/);
  const ALGORITHM_NAMES = ['ecdsa-p256', 'ecdsa-p384', 'ed25519'];

  // Hold an object to its members: name -> [test, required]; no other member is allowed, unless the
  // document is of a newer minor than this page knows (open), whose added members are ignored.
  function shape(value, members, what, open = false) {
    if (!isObject(value)) throw new Problem(`${what}: expected an object`);
    for (const name of Object.keys(value)) {
      if (!open && !Object.prototype.hasOwnProperty.call(members, name)) throw new Problem(`${what}: unknown member ${JSON.stringify(name)}`);
    }
    for (const [name, [test, required]] of Object.entries(members)) {
      const present = Object.prototype.hasOwnProperty.call(value, name);
      if (required && !present) throw new Problem(`${what}: ${name} is missing`);
      if (present && !test(value[name])) throw new Problem(`${what}: ${name} is not valid`);
    }
  }

  // An RFC 3339 time as sevref writes it, to milliseconds; NaN for a time that is no date.
  function timeOf(text) {
    const ms = Date.parse(text);
    return Number.isFinite(ms) && new Date(ms).toISOString() === text.replace('Z', '.000Z') ? ms : NaN;
  }

  function checkKeysShape(value, what) {
    const nullOrText = (v) => v === null || isText(v);
    const pem = matches(/^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n$/);
    const roles = (v) =>
      Array.isArray(v) && v.length >= 1 && new Set(v).size === v.length && v.every((r) => r === 'release' || r === 'timestamp');
    const key = (k) => {
      shape(
        k,
        {
          keyid: [isSha256, true],
          algorithm: [(v) => ALGORITHM_NAMES.includes(v), true],
          public_key: [(v) => pem(v) && v.length <= 1000, true],
          status: [(v) => v === 'active' || v === 'revoked', true],
          reason: [nullOrText, true],
          label: [nullOrText, true],
          roles: [roles, false],
        },
        `${what}: a key`,
      );
      return true;
    };
    shape(
      value,
      {
        schema: [(v) => v === KEYS_SCHEMA, true],
        publisher: [isId, true],
        version: [(v) => isInt(v, 1), true],
        keys: [(v) => Array.isArray(v) && v.length >= 1 && v.length <= 64 && v.every(key), true],
      },
      what,
    );
  }

  function checkIndexShape(value, what) {
    const open = isObject(value) && indexMinor(value.schema) > INDEX_MINOR;
    const ints = (...names) => Object.fromEntries(names.map((n) => [n, [(v) => isInt(v), true]]));
    const layout = (v) =>
      isObject(v) &&
      (shape(v, ints('groups_shard_hex', 'digests_shard_hex'), `${what}: layout`, open) || true) &&
      v.groups_shard_hex >= 1 && v.groups_shard_hex <= 4 && v.digests_shard_hex >= 1 && v.digests_shard_hex <= 4;
    const previous = (v) => (shape(v, { serial: [(s) => isInt(s, 1), true], sha256: [isSha256, true] }, `${what}: previous`, open), true);
    const signing = (v) =>
      v === null ||
      (shape(
        v,
        {
          keyid: [isSha256, true],
          algorithm: [(a) => ALGORITHM_NAMES.includes(a), true],
          keys_version: [(n) => isInt(n, 1), true],
        },
        `${what}: signing`,
        open,
      ),
      true);
    const file = (f) => (shape(f, { path: [matches(FILE_PATH), true], sha256: [isSha256, true], size: [(n) => isInt(n), true] }, `${what}: a file`, open), true);
    shape(
      value,
      {
        schema: [(v) => indexMinor(v) >= 0, true],
        publisher: [isId, true],
        product: [isId, true],
        stream: [isId, true],
        release: [matches(/^[A-Za-z0-9][A-Za-z0-9.+~:_-]{0,62}$/), true],
        serial: [(v) => isInt(v, 1), true],
        publisher_name: [(v) => isText(v), true],
        contact: [(v) => isText(v), true],
        url: [(v) => v === null || typeof v === 'string', true],
        issued: [(v) => isTime(v) && !Number.isNaN(timeOf(v)), true],
        expires: [(v) => isTime(v) && !Number.isNaN(timeOf(v)), true],
        sevref: [matches(/^[0-9]+\.[0-9]+\.[0-9]+/), true],
        counts: [(v) => (shape(v, ints('entries', 'groups', 'firmware'), `${what}: counts`, open), true), true],
        layout: [layout, true],
        previous: [previous, false],
        signing: [signing, true],
        files: [(v) => Array.isArray(v) && v.every(file), true],
      },
      what,
      open,
    );
  }

  const releaseOf = (index) => Object.fromEntries(RELEASE_FIELDS.map((k) => [k, index[k]]));

  /* ---- signatures (sevref/sign.py) ---- */

  // DSSE pre-authentication encoding.
  function pae(type, payload) {
    const t = encoder.encode(type);
    return concat([encoder.encode(`DSSEv1 ${t.length} `), t, encoder.encode(` ${payload.length} `), payload]);
  }

  // An ECDSA signature: strict DER SEQUENCE { r INTEGER, s INTEGER } to WebCrypto's r || s; null if malformed.
  function derToRaw(der, size) {
    let i = 0;
    const length = () => {
      if (i >= der.length) return -1;
      const n = der[i++];
      if (n < 0x80) return n;
      if (n !== 0x81 || i >= der.length) return -1;
      const long = der[i++];
      return long >= 0x80 ? long : -1;
    };
    if (der[i++] !== 0x30 || length() !== der.length - i) return null;
    const out = new Uint8Array(2 * size);
    for (let part = 0; part < 2; part += 1) {
      if (der[i++] !== 0x02) return null;
      const n = length();
      if (n < 1 || i + n > der.length) return null;
      let value = der.subarray(i, i + n);
      i += n;
      if (value[0] & 0x80) return null; // negative
      if (value.length > 1 && value[0] === 0 && !(value[1] & 0x80)) return null; // not minimal
      if (value.length > 1 && value[0] === 0) value = value.subarray(1);
      if (value.length > size) return null;
      out.set(value, (part + 1) * size - value.length);
    }
    return i === der.length ? out : null;
  }

  const ALGORITHMS = {
    'ecdsa-p256': { key: { name: 'ECDSA', namedCurve: 'P-256' }, hash: 'SHA-256', size: 32 },
    'ecdsa-p384': { key: { name: 'ECDSA', namedCurve: 'P-384' }, hash: 'SHA-384', size: 48 },
    ed25519: { key: { name: 'Ed25519' }, hash: null, size: 0 },
  };

  // A key: { keyid, algorithm, key } from DER SubjectPublicKeyInfo and an algorithm name; null if it is not one.
  async function importKey(der, algorithm) {
    try {
      const key = await crypto.subtle.importKey('spki', der, ALGORITHMS[algorithm].key, false, ['verify']);
      return { keyid: await sha256(der), algorithm, key };
    } catch (error) {
      return null;
    }
  }

  function pemToDer(pem, what) {
    const body = String(pem).replace(/-----(BEGIN|END) PUBLIC KEY-----/g, '').replace(/\s+/g, '');
    return strictBase64(body, `${what}: the public key`);
  }

  // Whether `signature` over `message` verifies; a DSSE signature hashes with the key's own hash,
  // a detached .sig with SHA-256 (`hash`).
  async function verifies(k, signature, message, hash = null) {
    const algorithm = ALGORITHMS[k.algorithm];
    let raw = signature;
    if (algorithm.size) {
      raw = derToRaw(signature, algorithm.size);
      if (!raw) return false;
    }
    const params = algorithm.size ? { name: 'ECDSA', hash: hash || algorithm.hash } : { name: 'Ed25519' };
    try {
      return await crypto.subtle.verify(params, k.key, raw, message);
    } catch (error) {
      return false;
    }
  }

  // parse_envelope: refuse before parsing what cannot be a DSSE envelope, then read it strictly.
  function parseEnvelope(bytes, what) {
    let containers = 0;
    let members = 0;
    for (const b of bytes) {
      if (b === 0x7b || b === 0x5b) containers += 1;
      else if (b === 0x2c) members += 1;
    }
    if (containers > 2 + MAX_ENVELOPE_SIGNATURES || members > 2 + 2 * MAX_ENVELOPE_SIGNATURES) {
      throw new Problem(`${what}: ${containers} objects or lists and ${members} commas; expected a DSSE envelope with at most ${MAX_ENVELOPE_SIGNATURES} signatures`);
    }
    return strictJson(bytes, what);
  }

  // The payload of a DSSE envelope without checking who signed it.
  function unverifiedPayload(envelope, what) {
    if (!isObject(envelope)) throw new Problem(`${what}: not a DSSE envelope`);
    return strictBase64(envelope.payload, `${what}: its payload`);
  }

  // open_envelope: the payload and the ids of the given keys whose signatures verify (sorted); a Problem if none does.
  async function openEnvelope(envelope, type, keys, what) {
    const names = isObject(envelope) ? Object.keys(envelope).sort().join(',') : '';
    if (names !== 'payload,payloadType,signatures') {
      throw new Problem(`${what}: expected a DSSE envelope with payload, payloadType and signatures`);
    }
    if (envelope.payloadType !== type) {
      throw new Problem(`${what}: payloadType is ${JSON.stringify(envelope.payloadType)}; expected ${JSON.stringify(type)}`);
    }
    const payload = strictBase64(envelope.payload, `${what}: malformed envelope: its payload`);
    if (!Array.isArray(envelope.signatures)) throw new Problem(`${what}: malformed envelope (signatures is not a list)`);
    const signatures = envelope.signatures.map((s) => {
      if (!isObject(s) || !('keyid' in s) || !('sig' in s)) throw new Problem(`${what}: malformed envelope (a signature without keyid and sig)`);
      const sig = strictBase64(s.sig, `${what}: malformed envelope: a signature`);
      if (typeof s.keyid !== 'string') throw new Problem(`${what}: malformed envelope (a keyid that is not text)`);
      return [s.keyid, sig];
    });
    const message = pae(type, payload);
    const verified = new Set();
    for (const [keyid, sig] of signatures) {
      const k = keys.get(keyid);
      if (k && !verified.has(keyid) && (await verifies(k, sig, message))) verified.add(keyid);
    }
    if (verified.size === 0) {
      const named = signatures.map(([keyid]) => keyid).join(', ') || 'none';
      throw new Problem(`${what}: no valid signature by a trusted key (signed by ${named}; trusted: ${[...keys.keys()].sort().join(', ') || 'none'})`);
    }
    return { payload, verified: [...verified].sort() };
  }

  /* ---- the key chain (sevref/keychain.py) ---- */

  // KeysDocument.from_bytes: strict canonical JSON valid against the keys schema, each key once,
  // each key's id and algorithm those of its public key. A Problem otherwise.
  async function keysDocument(payload, what) {
    const value = strictJson(payload, what);
    if (!isObject(value) || value.schema !== KEYS_SCHEMA) throw new Problem(`${what}: not a sevref keys document`);
    checkKeysShape(value, what);
    if (!isCanonical(value, payload)) throw new Problem(`${what}: not canonical JSON (RFC 8785); expected the bytes sevref writes`);
    const ids = value.keys.map((k) => k.keyid);
    if (new Set(ids).size !== ids.length) throw new Problem(`${what}: a key is listed twice; expected each key once`);
    const keys = [];
    for (const entry of value.keys) {
      const der = pemToDer(entry.public_key, `${what} key ${entry.keyid}`);
      const found = await sha256(der);
      if (found !== entry.keyid) throw new Problem(`${what}: key id ${entry.keyid} does not match its public key (${found})`);
      const imported = await importKey(der, entry.algorithm);
      if (!imported) throw new Problem(`${what}: key ${entry.keyid} is labelled ${entry.algorithm}; its public key is not one`);
      keys.push({ ...imported, status: entry.status, reason: entry.reason, label: entry.label, roles: entry.roles || ['release'] });
    }
    return { publisher: value.publisher, version: value.version, keys };
  }

  const entryOf = (document, keyid) => document.keys.find((k) => k.keyid === keyid) || null;

  // The active keys of a role, by id.
  function activeKeys(document, role) {
    return new Map(document.keys.filter((k) => k.status === 'active' && k.roles.includes(role)).map((k) => [k.keyid, k]));
  }

  // open_keys_document: keys/<version> opened with the keys allowed to sign it. A Problem when none of
  // `signers` signed it (the caller decides what that means); a refusal of `keys` when it is signed but wrong.
  async function openKeysDocument(data, version, signers, previous, revoked) {
    const path = `keys/${version}.dsse.json`;
    const parsed = parseEnvelope(data, path);
    const { payload } = await openEnvelope(parsed, KEYS_TYPE, signers, path);
    const document = await judged('keys', () => keysDocument(payload, path));
    if (document.version !== version) refuse('keys', `${path} says it is version ${document.version}; expected ${version}`);
    if (previous) {
      if (document.publisher !== previous.publisher) {
        refuse('keys', `${path} belongs to publisher ${JSON.stringify(document.publisher)}; keys/${previous.version} to ${JSON.stringify(previous.publisher)}`);
      }
      const added = new Map(document.keys.filter((k) => !entryOf(previous, k.keyid)).map((k) => [k.keyid, k]));
      let countersigned = new Set();
      if (added.size) {
        try {
          countersigned = new Set((await openEnvelope(parsed, KEYS_TYPE, added, path)).verified);
        } catch (error) {
          if (!(error instanceof Problem)) throw error;
        }
      }
      const missing = [...added.keys()].filter((k) => !countersigned.has(k)).sort();
      if (missing.length) refuse('keys', `${path} adds key ${missing.join(', ')} without its signature; every key added signs`);
    }
    const again = document.keys.filter((k) => k.status === 'active' && revoked.has(k.keyid)).map((k) => k.keyid).sort();
    if (again.length) refuse('keys', `${path} lists key ${again[0]} as active; the trusted chain revoked it before`);
    return document;
  }

  // Pinned public keys (PEM) by id, each imported as whichever algorithm it is.
  async function importPins(pems) {
    const pinned = new Map();
    for (const pem of pems) {
      const der = pemToDer(pem, 'a pinned key');
      let k = null;
      for (const algorithm of ALGORITHM_NAMES) {
        k = k || (await importKey(der, algorithm));
      }
      if (!k) throw new Problem('a pinned key is not an ECDSA P-256/P-384 or Ed25519 public key');
      pinned.set(k.keyid, k);
    }
    return pinned;
  }

  // Walk keys/1, keys/2, ... until the first missing one (bounded). Returns the newest document and the
  // ids revoked anywhere in the chain.
  async function keyChain(base, pins) {
    const pinned = pins ? await judged('keys', () => importPins(pins)) : null;
    let current = null;
    const revoked = new Set();
    let version = 1;
    let ended = false;
    for (let n = 0; n < MAX_KEY_DOCUMENTS; n += 1, version += 1) {
      const path = `keys/${version}.dsse.json`;
      let data;
      try {
        data = await readBounded(base, path, MAX_KEYS_DOCUMENT_BYTES);
      } catch (error) {
        if (!(error instanceof NotFound)) throw error;
        ended = true;
        break;
      }
      if (current === null && pinned) {
        // The chain is entered where a pinned key signed; a document no pinned key signed comes before.
        try {
          current = await openKeysDocument(data, version, pinned, null, revoked);
        } catch (error) {
          if (!(error instanceof Problem)) throw error;
        }
      } else if (current === null) {
        // No pin: the first document must be signed by its own active release keys.
        const own = await judged('keys', async () => activeKeys(await keysDocument(unverifiedPayload(parseEnvelope(data, path), path), path), 'release'));
        current = await judged('keys', () => openKeysDocument(data, version, own, null, revoked));
      } else {
        const before = current;
        current = await judged(
          'keys',
          () => openKeysDocument(data, version, activeKeys(before, 'release'), before, revoked),
          `keys/${version}.dsse.json is not signed by an active key of keys/${version - 1} (release role): `,
        );
      }
      if (current) for (const k of current.keys) if (k.status === 'revoked') revoked.add(k.keyid);
    }
    if (!ended) refuse('keys', `more than ${MAX_KEY_DOCUMENTS} keys documents; sevref reads at most that many a run`);
    if (!current) {
      refuse('keys', pinned ? `no keys document is signed by a pinned key (${[...pinned.keys()].sort().join(', ')})` : 'no key chain: keys/1.dsse.json is missing');
    }
    return { keys: current, revoked };
  }

  /* ---- a publication (sevref/trust.py) ---- */

  // index.dsse.json, parsed; a publication without one is unsigned if it has an index.json.
  async function indexEnvelope(base) {
    let data;
    try {
      data = await readBounded(base, 'index.dsse.json', MAX_INDEX_ENVELOPE_BYTES);
    } catch (error) {
      if (!(error instanceof NotFound)) throw error;
      try {
        await fetchAtMost(base, 'index.json', 0);
      } catch (missing) {
        if (missing instanceof NotFound) refuse('fetch', `${error.message}; no index.json either: no publication there`);
        throw missing;
      }
      const unsigned = new Refusal('signature', 'the publication is unsigned: no index.dsse.json (it has an index.json)');
      unsigned.unsigned = true;
      throw unsigned;
    }
    return judged('signature', () => parseEnvelope(data, 'index.dsse.json'));
  }

  async function signedIndex(envelope, keys, revoked) {
    try {
      return await openEnvelope(envelope, INDEX_TYPE, activeKeys(keys, 'release'), 'index.dsse.json');
    } catch (error) {
      if (!(error instanceof Problem)) throw error;
      const signatures = isObject(envelope) && Array.isArray(envelope.signatures) ? envelope.signatures : [];
      for (const s of signatures) {
        const keyid = isObject(s) ? s.keyid : null;
        if (typeof keyid === 'string' && revoked.has(keyid)) {
          const entry = entryOf(keys, keyid);
          const where = entry ? `keys/${keys.version} (${entry.reason})` : 'the trusted key chain';
          refuse('signature', `index.dsse.json is signed by key ${keyid}, revoked in ${where}`);
        }
      }
      return refuse('signature', error.message);
    }
  }

  // index.json: exactly the signed payload, strict canonical JSON, valid against the index schema.
  async function readIndex(base, payload) {
    let data;
    try {
      data = await fetchAtMost(base, 'index.json', payload.length);
    } catch (error) {
      if (error instanceof NotFound) refuse('integrity', `index.json is missing: ${error.message}`);
      throw error;
    }
    if (!sameBytes(data, payload)) refuse('integrity', 'index.json differs from the payload of index.dsse.json');
    return judged('integrity', () => {
      const index = strictJson(payload, 'index.json');
      checkIndexShape(index, 'index.json');
      if (!isCanonical(index, payload)) throw new Problem('index.json is not canonical JSON (RFC 8785); expected the bytes sevref writes');
      return index;
    });
  }

  // The key the index names as its signer: one that verified, listed with that algorithm, under a keys
  // document no newer than the chain served.
  function signerOf(index, verified, keys) {
    const signing = index.signing;
    if (signing === null) refuse('signature', 'index.json says the release is unsigned (signing: null), yet it is signed');
    if (!verified.includes(signing.keyid)) {
      refuse('signature', `index.json names signing key ${signing.keyid}; index.dsse.json is signed by ${verified.join(', ')}`);
    }
    const entry = entryOf(keys, signing.keyid);
    if (!entry || entry.algorithm !== signing.algorithm) {
      refuse('signature', `index.json names algorithm ${signing.algorithm}; keys/${keys.version} says ${entry ? entry.algorithm : 'nothing'}`);
    }
    if (signing.keys_version > keys.version) {
      refuse(
        'rollback',
        `index.json was signed under keys/${signing.keys_version}.dsse.json; the chain served ends at keys/${keys.version}.dsse.json (a newer document is withheld)`,
      );
    }
    return entry;
  }

  // Identity and expiry.
  function checkRelease(index, keys, expected, at) {
    for (const name of ['publisher', 'product', 'stream']) {
      if (expected && expected[name] !== undefined && index[name] !== expected[name]) {
        refuse('identity', `${name} is ${JSON.stringify(index[name])}; expected ${JSON.stringify(expected[name])}`);
      }
    }
    if (keys.publisher !== index.publisher) {
      refuse('identity', `keys/${keys.version} belongs to publisher ${JSON.stringify(keys.publisher)}; the index to ${JSON.stringify(index.publisher)}`);
    }
    if (at < timeOf(index.issued)) refuse('expiry', `issued ${index.issued}, after the checking time`);
    if (at >= timeOf(index.expires)) refuse('expiry', `expired at ${index.expires}`);
  }

  // A listed file: its sha256 and size as the index says; a JSON file strict and of this release.
  async function listedFile(base, path, trusted) {
    const file = trusted.files.get(path);
    if (!file) refuse('integrity', `${path} is not listed in the signed index`);
    let data;
    try {
      data = await fetchAtMost(base, path, Math.min(file.size, MAX_FETCH_BYTES));
    } catch (error) {
      if (error instanceof NotFound) refuse('integrity', `${path} is listed in the signed index but missing: ${error.message}`);
      throw error;
    }
    const found = await sha256(data);
    if (found !== file.sha256 || data.length !== file.size) {
      const what = data.length > file.size ? `more than ${file.size} bytes` : `sha256 ${found} (${data.length} bytes)`;
      refuse('integrity', `${path} has ${what}; the signed index says ${file.sha256} (${file.size} bytes)`);
    }
    if (!path.endsWith('.json')) return { data, value: null };
    const value = await judged('integrity', () => strictJson(data, path));
    const identity = isObject(value) ? value.release : undefined;
    if (!sameValue(identity, releaseOf(trusted.index))) refuse('integrity', `${path} belongs to another release`);
    return { data, value };
  }

  // The in-toto statement: signed by the release's key, naming exactly the listed files and this release.
  async function checkStatement(base, trusted) {
    const path = 'attestation.intoto.dsse.json';
    let data;
    try {
      data = await readBounded(base, path, 2 * trusted.indexBytes.length + (64 << 10));
    } catch (error) {
      if (error instanceof NotFound) refuse('integrity', `${path} is missing: ${error.message}`);
      throw error;
    }
    const statement = await judged('integrity', async () => {
      const signer = new Map([[trusted.signer.keyid, trusted.signer]]);
      const { payload } = await openEnvelope(parseEnvelope(data, path), INTOTO_TYPE, signer, path);
      return strictJson(payload, 'the in-toto statement');
    });
    const listed = {};
    for (const [p, f] of trusted.files) listed[p] = f.sha256;
    listed['index.json'] = trusted.indexSha256;
    let subjects = null;
    if (isObject(statement) && Array.isArray(statement.subject)) {
      subjects = {};
      for (const item of statement.subject) {
        if (!isObject(item) || typeof item.name !== 'string' || !isObject(item.digest)) {
          subjects = null;
          break;
        }
        subjects[item.name] = item.digest.sha256 === undefined ? null : item.digest.sha256;
      }
      if (subjects && Object.keys(subjects).length !== statement.subject.length) subjects = null;
    }
    if (subjects === null || !sameValue(subjects, listed)) refuse('integrity', `${path} does not state the files the index lists`);
    if (statement._type !== STATEMENT_TYPE || statement.predicateType !== PREDICATE_TYPE) {
      refuse('integrity', `${path}: _type ${statement._type} and predicateType ${statement.predicateType}; expected ${STATEMENT_TYPE} and ${PREDICATE_TYPE}`);
    }
    const index = trusted.index;
    const predicate = {
      release: releaseOf(index),
      issued: index.issued,
      expires: index.expires,
      index: { path: 'index.json', sha256: trusted.indexSha256 },
      counts: index.counts,
      calculator: `sevref ${index.sevref}`,
    };
    if (!sameValue(statement.predicate, predicate)) refuse('integrity', `${path}: the predicate does not state this release and its index`);
  }

  // Run `worker` on each item, at most `width` items ahead of the one the caller waits for: the
  // results come in order, so the first failure is the one a check in order meets first.
  function inOrder(items, worker, width = 16) {
    const started = [];
    const start = () => {
      if (started.length < items.length) {
        const promise = worker(items[started.length]);
        promise.catch(() => {}); // judged when its turn comes
        started.push(promise);
      }
    };
    for (let i = 0; i < width; i += 1) start();
    return async (i) => {
      const result = await started[i];
      start();
      return result;
    };
  }

  // Every listed file, every JSON file's detached .sig, the history link and the in-toto statement.
  async function checkEverything(base, trusted) {
    const paths = [...trusted.files.keys(), 'index.json'];
    const read = inOrder(paths, async (path) => {
      const file = path === 'index.json' ? { data: trusted.indexBytes, value: null } : await listedFile(base, path, trusted);
      if (!path.endsWith('.json')) return { ...file, signature: null }; // pages and assets: the signed index pins them
      try {
        return { ...file, signature: await readBounded(base, `${path}.sig`, MAX_SIGNATURE_FILE_BYTES) };
      } catch (error) {
        if (error instanceof NotFound) refuse('integrity', `${path}.sig is missing: ${error.message}`);
        throw error;
      }
    });
    let changes = null;
    for (let i = 0; i < paths.length; i += 1) {
      const path = paths[i];
      const { data, value, signature } = await read(i);
      if (path === 'changes.json') changes = value;
      if (signature && !(await verifies(trusted.signer, signature, data, 'SHA-256'))) {
        refuse('integrity', `${path}.sig does not verify with key ${trusted.signer.keyid}`);
      }
    }
    // The index and changes.json name the same previous release, or neither names one.
    const previous = trusted.index.previous;
    const named = previous ? [previous.serial, previous.sha256] : null;
    const link = changes && isObject(changes.previous) ? changes.previous : null;
    const linked = link ? [isObject(link.release) ? link.release.serial : null, link.index_sha256] : null;
    if (!sameValue(named, linked)) refuse('integrity', 'index.json and changes.json do not name the same previous release');
    await checkStatement(base, trusted);
  }

  // Check the publication at `base` (a folder URL of this origin) as sevref verify does.
  //   options.at: when (milliseconds or RFC 3339; default now); options.pins: PEM public keys where the
  //   chain may be entered (default none: keys/1 signs itself); options.expect: { publisher, product,
  //   stream } asked for; options.everyFile: check every listed file, .sig and the in-toto statement.
  // Returns { index, indexBytes, indexSha256, files, signer, keysVersion }; throws a Refusal (its
  // `check` as sevref names it) otherwise.
  async function verifyPublication(base, options = {}) {
    if (!window.crypto || !crypto.subtle) refuse('fetch', 'this browser offers no WebCrypto here (it needs HTTPS or localhost)');
    const at = typeof options.at === 'string' ? timeOf(options.at) : options.at === undefined ? Date.now() : options.at;
    if (!Number.isFinite(at)) throw new Error(`not a time: ${options.at}`);
    const envelope = await indexEnvelope(base);
    const { keys, revoked } = await keyChain(base, options.pins || null);
    const { payload, verified } = await signedIndex(envelope, keys, revoked);
    const index = await readIndex(base, payload);
    const signer = signerOf(index, verified, keys);
    checkRelease(index, keys, options.expect || null, at);
    const files = new Map();
    for (const file of index.files) {
      if (files.has(file.path)) refuse('integrity', `index.json lists ${file.path} twice; expected each file once`);
      files.set(file.path, { sha256: file.sha256, size: file.size });
    }
    const trusted = { index, indexBytes: payload, indexSha256: await sha256(payload), files, signer, keysVersion: keys.version };
    if (options.everyFile) await checkEverything(base, trusted);
    return trusted;
  }

  // An unsigned publication's index, read without any check of who wrote it (for its search alone).
  async function openUnverified(base) {
    const data = await readBounded(base, 'index.json', MAX_INDEX_ENVELOPE_BYTES);
    const index = await judged('integrity', () => strictJson(data, 'index.json'));
    if (!isObject(index) || indexMinor(index.schema) < 0 || !Array.isArray(index.files)) refuse('integrity', 'index.json is not a sevref release index');
    return { index, files: new Map(index.files.map((f) => [f.path, { sha256: f.sha256, size: f.size }])), unsigned: true };
  }

  window.sevref = Object.freeze({ verifyPublication });

  /* ---- this page ---- */

  // The publication's root: the folder above assets/, as this script's own address says.
  function publicationRoot() {
    if (!script || !script.src) throw new Refusal('page', 'this script cannot tell where it was loaded from');
    const own = new URL(script.src);
    if (!own.pathname.endsWith(`/${SCRIPT_PATH}`)) throw new Refusal('page', `this script was loaded from ${own.pathname}, not from ${SCRIPT_PATH} of a publication`);
    return new URL(own.pathname.slice(0, -SCRIPT_PATH.length), own.origin).href;
  }

  // This page's path in the publication, from its own address: the query and fragment play no part,
  // and a folder's address (ending in "/") means its index.html.
  function pagePath(root) {
    const here = new URL(location.href);
    const top = new URL(root);
    if (here.origin !== top.origin || !here.pathname.startsWith(top.pathname)) {
      throw new Refusal('page', `this page's address ${here.pathname} is outside the publication at ${top.pathname}`);
    }
    let rest = here.pathname.slice(top.pathname.length);
    if (rest === '' || rest.endsWith('/')) rest += 'index.html';
    let path;
    try {
      path = rest.split('/').map(decodeURIComponent).join('/');
    } catch (error) {
      path = rest;
    }
    if (path.split('/').length !== rest.split('/').length || !FILE_PATH.test(path)) {
      throw new Refusal('page', `this page's address (${rest}) is not a file a sevref publication lists`);
    }
    return path;
  }

  const FROM_DISK =
    'Not checked: this page was opened from disk (file://), from where a browser lets no page fetch the files ' +
    'it would check. Serve the folder over HTTP and open it from there: make serve, or python3 -m http.server ' +
    'in the folder, then http://127.0.0.1:8000/ (or use sevref verify).';

  const root = (() => {
    try {
      return publicationRoot();
    } catch (error) {
      return error;
    }
  })();

  const trust = (async () => {
    if (location.protocol === 'file:') throw new Error(FROM_DISK);
    if (root instanceof Error) throw root;
    try {
      return await verifyPublication(root);
    } catch (error) {
      if (error.unsigned) return openUnverified(root);
      throw error;
    }
  })();
  trust.catch(() => {}); // each user of `trust` says what failed

  // Set the banner; long hex (key ids, sha256s) goes in <code class="hash">, which may break on a phone.
  function say(state, text) {
    if (!status) return;
    status.dataset.status = state;
    status.replaceChildren();
    text.split(/([0-9a-f]{40,})/).forEach((part, i) => {
      if (i % 2 === 0) {
        status.appendChild(document.createTextNode(part));
      } else {
        const code = document.createElement('code');
        code.className = 'hash';
        code.textContent = part;
        status.appendChild(code);
      }
    });
  }

  function fail(reason) {
    failedAlready = true;
    if (location.protocol === 'file:') {
      // Nothing failed: a browser does not let a page opened from disk fetch the files it would check.
      say('unchecked', FROM_DISK);
      return;
    }
    say('failed', `Verification failed: ${reason}`);
  }

  function sameRelease(a, b) {
    return RELEASE_FIELDS.every((k) => a && b && a[k] === b[k]);
  }

  // Read a listed file and check it against the signed index.
  async function checked(path) {
    const { files } = await trust;
    const file = files.get(path);
    if (!file) throw new Error(`${path} is not listed in the signed index`);
    let bytes;
    try {
      bytes = await fetchAtMost(root, path, Math.min(file.size, MAX_FETCH_BYTES));
    } catch (error) {
      fail(error.message);
      throw error;
    }
    const found = await sha256(bytes);
    if (found !== file.sha256 || bytes.length !== file.size) {
      const what = bytes.length > file.size ? `more than ${file.size} bytes` : `sha256 ${found} (${bytes.length} bytes)`;
      const reason = `${path} has ${what}; the signed index says ${file.sha256} (${file.size} bytes)`;
      fail(reason);
      throw new Error(reason);
    }
    return bytes;
  }

  async function loadJson(path) {
    const { index } = await trust;
    const bytes = await checked(path);
    let value;
    try {
      value = strictJson(bytes, path);
    } catch (error) {
      fail(error.message);
      throw error;
    }
    if (!sameRelease(value.release, index)) {
      const reason = `${path} belongs to another release`;
      fail(reason);
      throw new Error(reason);
    }
    return value;
  }

  async function verifyPage() {
    let t;
    let path;
    try {
      t = await trust;
      if (t.unsigned) {
        fail('this publication is unsigned: nothing vouches for its values');
        return;
      }
      path = pagePath(root);
      if (!t.files.has(path)) {
        throw new Refusal('page', `this page's address (${path}) is not a file the signed index lists: nothing vouches for it`);
      }
      await Promise.all([path, 'assets/sevref.css', SCRIPT_PATH].map(checked));
    } catch (error) {
      if (!failedAlready) fail(error.message);
      return;
    }
    if (failedAlready) return;
    const { index, signer } = t;
    const label = signer.label ? ` (labelled “${signer.label}”)` : '';
    say(
      'verified',
      `Verified: release ${index.release} (serial ${index.serial}) is signed by key ${signer.keyid}${label}, ` +
        `valid until ${index.expires}. What was checked: the signed index and its key chain (keys/1 to ` +
        `keys/${t.keysVersion}) check out, and this page's file, ${path}, fetched again, matches the index. ` +
        'A host that serves you other content can still show other pages: compare the key id with the ' +
        "publisher's, and use sevref verify for a verdict.",
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
        // As sevref verify: the digest table must point to an entry that has this digest in its group.
        const own = g.entries.find(([n]) => n === count);
        if (!own || own[1] !== digest) {
          const reason = `${shard} gives entry ${entry} the digest ${digest}; its group gives it ${own ? own[1] : 'none'}`;
          fail(reason);
          throw new Error(reason);
        }
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

  if (status) {
    say('pending', 'Checking the signature…');
    verifyPage();
  }
  setupSearch();
  setupTableFilters();
})();
