// A minimal proxy-wasm host (ABI 0.2.1) in Node, to see where a filter's time goes under V8,
// the engine Envoy runs it on, without Envoy's own cost around it. It runs the benchmark's
// workload (`bench/flow/checkout.hcl`: a checkout calling `a` and `b`, then `c` after `a`), answers
// every callout at once from memory, and reports the time per request, the hostcalls each
// request makes, and optionally a CPU profile of the measured requests only.
//
//   node bench/profile/driver.mjs --wasm <filter.wasm> --config <plan.bin or JSON>
//        --expect checkout|concatenation [--requests 20000] [--warmup 2000]
//        [--profile <out.cpuprofile>] [--result <out.json>]
//
// `cargo xtask profile` builds the filters and the plan, runs this for the Semaphore filter and
// for the minimal filter of `bench/baseline-filter`, and summarizes the profile.

import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { parseArgs } from 'node:util';

const Status = { Ok: 0, NotFound: 1, BadArgument: 2 };
const BufferType = { HttpRequestBody: 0, HttpCallResponseBody: 4, PluginConfiguration: 7 };
const MapType = { HttpRequestHeaders: 0, HttpCallResponseHeaders: 6 };
const LogLevel = { Warn: 3 };
const ROOT_ID = 1;

// The clusters the plan's services name: `cargo xtask profile` compiles the flow with
// BENCH_<X>_HOST=http://127.0.0.1:<n>, and configures the minimal filter with the same names.
const UPSTREAMS = { '127.0.0.1:1': 'a', '127.0.0.1:2': 'b', '127.0.0.1:3': 'c' };

// --- The workload, as bench/engine/src/lib.rs writes it (serde_json's default map sorts keys). --

function items() {
  return Array.from({ length: 8 }, (_, i) => ({
    price: 12.5,
    quantity: i + 1,
    sku: `sku-${String(i).padStart(4, '0')}`,
    title: 'A product with a plausible title',
  }));
}

/** About 1 KB of JSON: what a client posts to `/checkout`. */
const input = () =>
  JSON.stringify({ id: 'order-1', items: items(), name: 'Ada', status: 'NEW', total: 100 });

/** About 1 KB of JSON: what each upstream answers. */
const answer = (name) =>
  JSON.stringify({ id: 'id-1', items: items(), name, status: 'ACTIVE', total: 1234 });

/** What the client must get back, checked in full on the first request. */
const EXPECTED = {
  // The flow's output: `id` from the input, `customer` from b, `status` from a, c's `total`
  // and `items`.
  checkout: (body) =>
    sameJson(JSON.parse(body), {
      id: 'order-1',
      customer: 'b',
      status: 'ACTIVE',
      total: 1234,
      items: items(),
    }),
  // The minimal filter's answer: the three bodies, a b c.
  concatenation: (body) => body === answer('a') + answer('b') + answer('c'),
};

/** Deep equality of parsed JSON, whatever the order of keys (proto3 JSON writes int64 as a string). */
function sameJson(actual, expected) {
  const canonical = (value) =>
    Array.isArray(value)
      ? value.map(canonical)
      : value !== null && typeof value === 'object'
        ? Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical(value[k])]))
        : String(value);
  return JSON.stringify(canonical(actual)) === JSON.stringify(canonical(expected));
}

// --- The host. -------------------------------------------------------------------------------

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The proxy-wasm header map format: u32 count, u32 key and value sizes, then each key and value NUL-terminated. */
function serializeMap(pairs) {
  const encoded = pairs.map(([k, v]) => [encoder.encode(k), encoder.encode(v)]);
  const size = 4 + encoded.reduce((n, [k, v]) => n + 8 + k.length + v.length + 2, 0);
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, pairs.length, true);
  let at = 4 + 8 * pairs.length;
  encoded.forEach(([k, v], i) => {
    view.setUint32(4 + 8 * i, k.length, true);
    view.setUint32(8 + 8 * i, v.length, true);
    bytes.set(k, at);
    at += k.length + 1;
    bytes.set(v, at);
    at += v.length + 1;
  });
  return bytes;
}

function deserializeMap(bytes) {
  if (bytes.length === 0) return [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(0, true);
  const pairs = [];
  let at = 4 + 8 * count;
  for (let i = 0; i < count; i++) {
    const [k, v] = [view.getUint32(4 + 8 * i, true), view.getUint32(8 + 8 * i, true)];
    const key = decoder.decode(bytes.subarray(at, at + k));
    at += k + 1;
    pairs.push([key, decoder.decode(bytes.subarray(at, at + v))]);
    at += v + 1;
  }
  return pairs;
}

/**
 * A header map, its serialized form kept until it changes: the host's own cost per request stays
 * small next to the module's, which is what is measured.
 */
/**
 * A header map, its serialized form and its values' encodings kept until it changes: the
 * driver stands for Envoy's C++, and its own costs should not weigh on the module's.
 */
class HeaderMap {
  constructor(pairs, serialized = null) {
    this.pairs = pairs;
    this.serialized = serialized;
    this.encoded = new Map();
  }
  copy() {
    return new HeaderMap(this.pairs.map(([k, v]) => [k, v]), this.bytes());
  }
  get(key) {
    return this.pairs.find(([name]) => name === key)?.[1];
  }
  /** A value's UTF-8 bytes, or undefined when the map lacks the key. */
  valueBytes(key) {
    if (!this.encoded.has(key)) {
      const value = this.get(key);
      this.encoded.set(key, value === undefined ? undefined : encoder.encode(value));
    }
    return this.encoded.get(key);
  }
  set(key, value) {
    const pair = this.pairs.find(([name]) => name === key);
    if (pair) pair[1] = value;
    else this.pairs.push([key, value]);
    this.serialized = null;
    this.encoded.clear();
  }
  remove(key) {
    this.pairs = this.pairs.filter(([name]) => name !== key);
    this.serialized = null;
    this.encoded.clear();
  }
  bytes() {
    return (this.serialized ??= serializeMap(this.pairs));
  }
}

const EMPTY_MAP = new HeaderMap([]);

/**
 * One VM: the module's memory and exports, the contexts, what the current request and callout
 * answer hold, the callouts pending, the local reply, and how often each hostcall was made.
 */
class Host {
  constructor(module, configuration) {
    this.configuration = configuration;
    this.roots = new Map(); // context id -> its root context id
    this.current = 0; // the context whose callback runs
    this.effective = 0; // the context hostcalls act on (proxy_set_effective_context)
    this.request = { headers: EMPTY_MAP, body: new Uint8Array() };
    this.callResponse = { headers: EMPTY_MAP, body: new Uint8Array() };
    this.pending = [];
    this.nextToken = 1;
    this.reply = null;
    this.metrics = [];
    this.warnings = 0;
    this.hostcalls = {}; // name -> calls
    this.callbacks = {}; // name -> calls
    this.instance = new WebAssembly.Instance(module, { env: this.imports(module) });
    this.exports = this.instance.exports;
    this.allocate = this.exports.proxy_on_memory_allocate ?? this.exports.malloc;
  }

  // Memory is read anew each time: an allocation may grow it, which detaches the old buffer.
  bytes(ptr, size) {
    return new Uint8Array(this.exports.memory.buffer, ptr >>> 0, size >>> 0);
  }
  string(ptr, size) {
    return decoder.decode(this.bytes(ptr, size));
  }
  writeU32(ptr, value) {
    new DataView(this.exports.memory.buffer).setUint32(ptr >>> 0, value, true);
  }

  /** Hands bytes to the module in memory it allocates (and frees), as Envoy does. */
  give(bytes, ptrPtr, sizePtr) {
    const ptr = this.allocate(bytes.length);
    this.bytes(ptr, bytes.length).set(bytes);
    this.writeU32(ptrPtr, ptr);
    this.writeU32(sizePtr, bytes.length);
    return Status.Ok;
  }

  headerMap(type) {
    if (type === MapType.HttpRequestHeaders) return this.request.headers;
    if (type === MapType.HttpCallResponseHeaders) return this.callResponse.headers;
    return EMPTY_MAP;
  }

  buffer(type) {
    if (type === BufferType.PluginConfiguration) return this.configuration;
    if (type === BufferType.HttpRequestBody) return this.request.body;
    if (type === BufferType.HttpCallResponseBody) return this.callResponse.body;
    return null;
  }

  /** The hostcalls that matter to these filters; every other import succeeds doing nothing. */
  hostcallsByName() {
    return {
      proxy_log: (level, ptr, size) => {
        if (level >= LogLevel.Warn && this.warnings++ < 10) {
          console.error(`filter log (level ${level}): ${this.string(ptr, size)}`);
        }
        return Status.Ok;
      },
      proxy_get_log_level: (ptr) => (this.writeU32(ptr, 2), Status.Ok),
      proxy_get_current_time_nanoseconds: (ptr) => {
        const now = BigInt(Date.now()) * 1_000_000n;
        new DataView(this.exports.memory.buffer).setBigUint64(ptr >>> 0, now, true);
        return Status.Ok;
      },
      proxy_get_buffer_bytes: (type, start, maxSize, ptrPtr, sizePtr) => {
        const buffer = this.buffer(type);
        if (buffer === null) return Status.NotFound;
        const from = Math.min(start >>> 0, buffer.length);
        const to = from + Math.min(maxSize >>> 0, buffer.length - from);
        return this.give(buffer.subarray(from, to), ptrPtr, sizePtr);
      },
      proxy_get_header_map_pairs: (type, ptrPtr, sizePtr) =>
        this.give(this.headerMap(type).bytes(), ptrPtr, sizePtr),
      proxy_get_header_map_value: (type, keyPtr, keySize, ptrPtr, sizePtr) => {
        const value = this.headerMap(type).valueBytes(this.string(keyPtr, keySize).toLowerCase());
        return value === undefined ? Status.NotFound : this.give(value, ptrPtr, sizePtr);
      },
      proxy_replace_header_map_value: (type, keyPtr, keySize, valuePtr, valueSize) => {
        this.headerMap(type).set(this.string(keyPtr, keySize).toLowerCase(), this.string(valuePtr, valueSize));
        return Status.Ok;
      },
      proxy_remove_header_map_value: (type, keyPtr, keySize) => {
        this.headerMap(type).remove(this.string(keyPtr, keySize).toLowerCase());
        return Status.Ok;
      },
      proxy_send_local_response: (status, _detailsPtr, _detailsSize, bodyPtr, bodySize, headersPtr, headersSize) => {
        this.reply = {
          status,
          headers: deserializeMap(this.bytes(headersPtr, headersSize)),
          body: this.string(bodyPtr, bodySize),
        };
        return Status.Ok;
      },
      proxy_http_call: (clusterPtr, clusterSize, headersPtr, headersSize, _b, _bs, _t, _ts, _timeout, tokenPtr) => {
        const token = this.nextToken++;
        // Kept as bytes: only the first request's are read, to show them.
        const headers = this.bytes(headersPtr, headersSize).slice();
        // As proxy-wasm-cpp-host does, the call is the root context's of the context it acts on:
        // its answer goes to that root context.
        const root = this.roots.get(this.effective) ?? ROOT_ID;
        this.pending.push({ token, cluster: this.string(clusterPtr, clusterSize), headers, root });
        this.writeU32(tokenPtr, token);
        return Status.Ok;
      },
      proxy_set_effective_context: (id) => {
        if (!this.roots.has(id)) return Status.BadArgument;
        this.effective = id;
        return Status.Ok;
      },
      proxy_define_metric: (_type, namePtr, nameSize, idPtr) => {
        this.metrics.push(this.string(namePtr, nameSize));
        this.writeU32(idPtr, this.metrics.length);
        return Status.Ok;
      },
      // No such function in this host: the filter then relies on header changes re-picking the route.
      proxy_call_foreign_function: () => Status.NotFound,
      proxy_get_property: () => Status.NotFound,
      proxy_get_shared_data: () => Status.NotFound,
    };
  }

  /** Every import the module declares, each counting its calls. */
  imports(module) {
    const known = this.hostcallsByName();
    const imports = {};
    for (const { module: from, name, kind } of WebAssembly.Module.imports(module)) {
      if (from !== 'env' || kind !== 'function') throw new Error(`unexpected import ${from}.${name} (${kind})`);
      const implementation = known[name] ?? (() => Status.Ok);
      this.hostcalls[name] = 0;
      imports[name] = (...args) => {
        this.hostcalls[name]++;
        return implementation(...args);
      };
    }
    return imports;
  }

  /** Calls one of the module's callbacks on a context, as Envoy does: that context is current. */
  enter(name, context, ...args) {
    this.callbacks[name] = (this.callbacks[name] ?? 0) + 1;
    [this.current, this.effective] = [context, context];
    return this.exports[name](context, ...args);
  }

  start() {
    this.exports._initialize?.();
    this.roots.set(ROOT_ID, ROOT_ID);
    this.enter('proxy_on_context_create', ROOT_ID, 0);
    this.enter('proxy_on_vm_start', ROOT_ID, 0);
    if (!this.enter('proxy_on_configure', ROOT_ID, this.configuration.length)) {
      throw new Error('the filter refused its configuration');
    }
  }

  /** One request on a new HTTP context, every callout answered at once, in the order made. */
  serve(context) {
    const body = BODY;
    this.reply = null;
    this.roots.set(context, ROOT_ID);
    this.enter('proxy_on_context_create', context, ROOT_ID);
    this.request = { headers: REQUEST_HEADERS.copy(), body };
    this.enter('proxy_on_request_headers', context, this.request.headers.pairs.length, 0);
    this.enter('proxy_on_request_body', context, body.length, 1);
    const callouts = [];
    while (this.reply === null && this.pending.length > 0) {
      const call = this.pending.shift();
      callouts.push(call);
      const name = UPSTREAMS[call.cluster];
      if (name === undefined) throw new Error(`a call to unknown cluster ${call.cluster}`);
      this.callResponse = { headers: ANSWER_HEADERS, body: ANSWERS[name] };
      this.enter('proxy_on_http_call_response', call.root, call.token, ANSWER_HEADERS.pairs.length, ANSWERS[name].length, 0);
    }
    // The stream ends: Envoy calls on_done, then on_log (access logging), then deletes it.
    this.enter('proxy_on_done', context);
    this.enter('proxy_on_log', context);
    this.enter('proxy_on_delete', context);
    this.roots.delete(context);
    if (this.reply === null) throw new Error('the filter did not answer the request');
    return { reply: this.reply, callouts };
  }

  resetCounts() {
    for (const name of Object.keys(this.hostcalls)) this.hostcalls[name] = 0;
    this.callbacks = {};
  }
}

const BODY = encoder.encode(input());
const REQUEST_HEADERS = new HeaderMap([
  [':method', 'POST'],
  [':path', '/checkout'],
  [':authority', 'localhost:8080'],
  [':scheme', 'http'],
  ['content-type', 'application/json'],
  ['content-length', String(BODY.length)],
]);
const ANSWERS = Object.fromEntries(['a', 'b', 'c'].map((name) => [name, encoder.encode(answer(name))]));
const ANSWER_HEADERS = new HeaderMap([[':status', '200'], ['content-type', 'application/json']]);

// --- The run. --------------------------------------------------------------------------------

const { values: options } = parseArgs({
  options: {
    wasm: { type: 'string' },
    config: { type: 'string' },
    expect: { type: 'string' },
    requests: { type: 'string', default: '20000' },
    warmup: { type: 'string', default: '2000' },
    profile: { type: 'string' },
    result: { type: 'string' },
  },
});
if (!options.wasm || !options.config || !(options.expect in EXPECTED)) {
  console.error('usage: driver.mjs --wasm <filter.wasm> --config <file> --expect checkout|concatenation ' +
    '[--requests N] [--warmup N] [--profile <out.cpuprofile>] [--result <out.json>]');
  process.exit(2);
}

const module = new WebAssembly.Module(readFileSync(options.wasm));
const named = WebAssembly.Module.customSections(module, 'name').length > 0;
if (options.profile && !named) {
  throw new Error(`${options.wasm} has no name section: the profile would show only function indexes`);
}
const host = new Host(module, new Uint8Array(readFileSync(options.config)));
host.start();

let context = ROOT_ID + 1;

// The first request, shown and checked in full.
const first = host.serve(context++);
for (const call of first.callouts) {
  const headers = new HeaderMap(deserializeMap(call.headers));
  const header = (name) => headers.get(name);
  console.log(`callout: ${header(':method')} ${call.cluster}${header(':path')} (token ${call.token}, answered on context ${call.root})`);
}
const shown = first.reply.body.length > 300 ? `${first.reply.body.slice(0, 300)}… (${first.reply.body.length} bytes)` : first.reply.body;
console.log(`first reply: ${first.reply.status} ${shown}`);
if (first.reply.status !== 200 || !EXPECTED[options.expect](first.reply.body)) {
  throw new Error(`the first reply is not the ${options.expect} expected`);
}

// Warm-up: V8 compiles wasm with its baseline compiler first and optimizes hot functions later.
const [requests, warmup] = [Number(options.requests), Number(options.warmup)];
for (let i = 0; i < warmup; i++) host.serve(context++);
host.resetCounts();

/** `count` requests, each checked; how long they took, in seconds. */
function run(count) {
  const started = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const { reply } = host.serve(context++);
    if (reply.status !== 200) throw new Error(`request ${i} answered ${reply.status}: ${reply.body}`);
  }
  return Number(process.hrtime.bigint() - started) / 1e9;
}

// Timed without the profiler, whose sampling slows what it samples, in rounds: on a shared
// machine some are slowed by other work, and the median round is the figure.
const ROUNDS = 5;
const perRound = Math.ceil(requests / ROUNDS);
const microsPerRound = Array.from({ length: ROUNDS }, () => (run(perRound) * 1e6) / perRound).sort((a, b) => a - b);
const micros = microsPerRound[Math.floor(ROUNDS / 2)];
const perRequest = (counts) =>
  Object.fromEntries(
    Object.entries(counts)
      .filter(([, n]) => n > 0)
      .sort(([, a], [, b]) => b - a)
      .map(([name, n]) => [name, n / (perRound * ROUNDS)]),
  );
const [hostcalls, callbacks] = [perRequest(host.hostcalls), perRequest(host.callbacks)];

if (options.profile) {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  // Every 50 µs: a request of tens of µs still gets samples.
  await session.post('Profiler.setSamplingInterval', { interval: 50 });
  await session.post('Profiler.start');
  run(requests);
  const { profile } = await session.post('Profiler.stop');
  writeFileSync(options.profile, JSON.stringify(profile));
  session.disconnect();
}

const result = {
  module: options.wasm,
  node: process.version,
  requests,
  warmup,
  requestsPerSecond: 1e6 / micros,
  microsPerRequest: micros,
  microsPerRequestByRound: microsPerRound,
  hostcallsPerRequest: hostcalls,
  callbacksPerRequest: callbacks,
};
console.log(`${requests} requests after ${warmup} warm-up: ${result.requestsPerSecond.toFixed(0)} requests/s, ` +
  `${micros.toFixed(1)} µs/request (rounds: ${microsPerRound.map((m) => m.toFixed(1)).join(', ')})`);
for (const [name, n] of Object.entries(result.hostcallsPerRequest)) console.log(`  ${n.toFixed(2).padStart(7)}  ${name}`);
if (options.result) writeFileSync(options.result, JSON.stringify(result, null, 2));
