//# allFunctionsCalledOnLoad
// (V8 explicit compile hint, Chromium 136+: every function of this file is compiled eagerly on
// the thread that streams the script, not lazily on the main thread at its first call. Most of
// the file runs on every page load; docs/benchmarks.md measures the difference.)
// Skyline loader: one no-build ES module a shell page includes.
//
// For each building of the apartment it picks the unit this user gets (stable
// bucket from FNV-1a of "user:apartment:building", criteria from the
// manifest), links the unit's stylesheets and loads its ES module, each with
// its SRI integrity, mounts it into the building's element and posts what
// happened to Skyline's RUM beacon endpoint, so a canary is judged on real
// browser loads. Before any unit module loads, one import map with an
// `integrity` section names every module (entry, static and dynamic chunks) of
// every unit the page may load, so the browser verifies each chunk it fetches;
// where the browser cannot honour that map, only the entry and the stylesheets
// are verified (docs/loader.md). Beacons carry a token
// the API signs for this page load (GET /beacon-token, next to /beacons): it
// binds them to the apartment, the units the manifest offered and one session.
//
// The split rules mirror skyline/split.py exactly; tests/vectors/split.json is
// checked against both (pytest and `node --test loader/`). Change both or neither.
//
// Shell usage (the config element must come before the loader):
//
//   <div data-skyline-building="header"></div>
//   <script type="application/json" data-skyline>
//     {"apartment": "shop",
//      "manifest": "https://edge.example/skyline/manifests/shop/manifest.json",
//      "beacons": "https://skyline.example/beacons",
//      "beacon_token": "https://skyline.example/beacon-token",   (optional: this is the default)
//      "user": {"id": "42", "region": "eu", "segments": ["beta"]}}
//   </script>
//   <script type="module" src="https://edge.example/skyline/loader/skyline-loader.<hash>.js"
//           integrity="sha384-..." crossorigin="anonymous"></script>
//
// Without "user", the id comes from the `skyline_user` query parameter or a
// random id kept in localStorage, so a browser keeps its bucket across visits.
// Progress is on `window.skyline` ({done, report}) and a `skyline:done` event.

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
export const BUCKETS = 10000;
export const OUTCOMES = Object.freeze(["loaded", "load_error", "runtime_error"]);

const encoder = new TextEncoder();

export function fnv1a32(text) {
  let h = FNV_OFFSET;
  for (const byte of encoder.encode(text)) {
    h ^= byte;
    // Math.imul keeps the product in 32 bits, as `& 0xffffffff` does in Python.
    h = Math.imul(h, FNV_PRIME) >>> 0;
  }
  return h >>> 0;
}

export function bucketOf(userId, apartment, building) {
  return fnv1a32(`${userId}:${apartment}:${building}`) % BUCKETS;
}

export function inPercentage(bucket, percentage) {
  return bucket < percentage * 100;
}

function nonEmpty(list) {
  return Array.isArray(list) && list.length > 0;
}

function ruleHolds(rule, attributes) {
  const value = attributes ? attributes[rule.attribute] : undefined;
  if (value === undefined || value === null) return false;
  const values = rule.values || [];
  switch (rule.operator || "eq") {
    case "eq":
      return values.length > 0 && value === values[0];
    case "neq":
      return values.length > 0 && value !== values[0];
    case "in":
      return values.includes(value);
    case "not_in":
      return !values.includes(value);
    default:
      return false;
  }
}

function lowered(list) {
  return (Array.isArray(list) ? list : []).map((v) => String(v).toLowerCase());
}

// Same as criteria_exclusion in skyline/split.py: the first criterion that
// excludes the user, or null. Regions, segments and flags compare case-insensitively.
export function criteriaExclusion(criteria, user) {
  const c = criteria || {};
  const region = user.region === undefined || user.region === null ? null : String(user.region).toLowerCase();
  if (nonEmpty(c.geo_regions) && !lowered(c.geo_regions).includes(region)) return "geo_regions";
  const segments = lowered(user.segments);
  if (nonEmpty(c.user_segments) && !lowered(c.user_segments).some((s) => segments.includes(s))) return "user_segments";
  const flags = lowered(user.flags);
  if (nonEmpty(c.feature_flags) && !lowered(c.feature_flags).every((f) => flags.includes(f))) return "feature_flags";
  for (const rule of c.custom_rules || []) {
    if (!ruleHolds(rule, user.attributes)) return `custom_rules.${rule.attribute}`;
  }
  return null;
}

export function criteriaMatch(criteria, user) {
  return criteriaExclusion(criteria, user) === null;
}

// Same as Building.canary() in skyline/manifest.py: the first unit in rollout
// that is not the active one.
export function canaryOf(building) {
  for (const unit of Object.values(building.units || {})) {
    if (unit.rollout && unit.id !== building.active_unit) return unit;
  }
  return null;
}

export function resolveBuilding(apartment, buildingId, building, user) {
  const bucket = bucketOf(user.id, apartment, buildingId);
  const canary = canaryOf(building);
  let excludedBy = null;
  if (canary && inPercentage(bucket, canary.rollout.percentage)) {
    excludedBy = criteriaExclusion(canary.rollout.criteria, user);
    if (excludedBy === null) return { building: buildingId, bucket, reason: "canary", unit: canary, excluded_by: null };
  }
  const active = building.active_unit ? (building.units || {})[building.active_unit] : undefined;
  if (!active) return { building: buildingId, bucket, reason: "none", unit: null, excluded_by: excludedBy };
  return { building: buildingId, bucket, reason: "stable", unit: active, excluded_by: excludedBy };
}

export function resolve(manifest, apartment, user) {
  const found = manifest.apartments && manifest.apartments[apartment];
  if (!found) throw new Error(`the manifest has no apartment ${JSON.stringify(apartment)}`);
  const out = {};
  for (const [id, building] of Object.entries(found.buildings || {})) {
    out[id] = resolveBuilding(apartment, id, building, user);
  }
  return out;
}

// Where the page gets its beacon token: `beacon_token`, or `beacon-token` next to `beacons`.
export function tokenUrl(config, base) {
  if (config.beacon_token) return new URL(config.beacon_token, base).href;
  if (!config.beacons) return null;
  return new URL("beacon-token", new URL(config.beacons, base)).href;
}

export function beacon(apartment, building, unit, outcome, seconds) {
  const body = { apartment, building, unit: unit.name, version: unit.version, outcome };
  if (typeof seconds === "number" && Number.isFinite(seconds)) {
    body.load_seconds = Math.round(Math.max(0, seconds) * 1e6) / 1e6;
  }
  return body;
}

// The files of a unit of one kind ("module", "style", "other"), from the manifest's
// `files` (units published before it existed have none: their entry alone).
export function unitFiles(unit, kind) {
  const files = unit && unit.files ? Object.values(unit.files) : [];
  return files.filter((f) => f && f.kind === kind && f.url && f.integrity);
}

// url -> SRI of every module of these units, the `integrity` section of the import map.
export function moduleIntegrity(units) {
  const out = {};
  for (const unit of units) {
    if (!unit) continue;
    for (const f of unitFiles(unit, "module")) out[f.url] = f.integrity;
    if (unit.url && unit.checksum && unitFiles(unit, "module").length > 0) out[unit.url] = unit.checksum;
  }
  return out;
}

// The bare specifier of a building's unit in the import map: "@shop/header".
export function specifierOf(apartment, building) {
  return `@${apartment}/${building}`;
}

// url -> SRI of a unit's modules with its entry always in (a bare specifier loads the
// entry without a <script integrity>). Same as module_integrity in skyline/importmap.py.
export function unitModuleIntegrity(unit) {
  const out = {};
  for (const f of unitFiles(unit, "module")) out[f.url] = f.integrity;
  out[unit.url] = unit.checksum;
  return out;
}

// The native import map of the units this user gets (skyline/importmap.py, shared
// vectors): `@<apartment>/<building>` -> the unit's entry, and the SRI of their modules.
export function importMapOf(apartment, assignments) {
  const imports = {};
  const integrity = {};
  const canaries = [];
  for (const [building, a] of Object.entries(assignments)) {
    if (!a.unit) continue;
    imports[specifierOf(apartment, building)] = a.unit.url;
    Object.assign(integrity, unitModuleIntegrity(a.unit));
    if (a.reason === "canary") canaries.push(building);
  }
  const variant = canaries.length ? `canary:${canaries.sort().join(",")}` : "stable";
  return { imports, integrity, variant };
}

// ---------------------------------------------------------------- skew protection
//
// A page keeps the manifest revision it started with: every later load of a unit in the
// same page (a building mounted lazily with `window.skyline.load`, a second `start()` of
// the loader module) resolves against that revision, never a newer manifest, so one page
// never mixes two versions of a unit. The pin lives in this module's memory (one per page:
// a module is evaluated once per document), so it costs no request and no storage; a new
// page reads the manifest afresh. The files of every revision stay in storage for the
// retention window after it stopped being served (docs/bundles.md#skew-protection).

// manifest URL -> {revision, manifest}: what this page started with.
const PAGE_PINS = new Map();

// The manifest this page pinned for `key` (its manifest URL), or null before the first read.
export function pinnedManifest(pins, key) {
  const found = pins.get(key);
  return found ? found.manifest : null;
}

// Pins `manifest` for `key` unless one is pinned already; returns the pinned one (the first wins).
export function pinRevision(pins, key, manifest) {
  const found = pins.get(key);
  if (found) return found.manifest;
  pins.set(key, { revision: manifest && manifest.version, manifest });
  return manifest;
}

// A building's unit for a later load in this page: from the pinned revision's assignment.
export function pinnedAssignment(assignments, revision, building) {
  const found = assignments[building];
  if (!found) throw new Error(`revision ${revision} of the manifest has no building ${JSON.stringify(building)}`);
  return found;
}

// ---------------------------------------------------------------- lifecycles

// single-spa lifecycles: a unit exporting bootstrap, mount and unmount (each a function
// or an array of functions, as single-spa allows) is driven as single-spa drives it;
// otherwise it is a Skyline unit, `mount(element, context)`.
function isLifecycle(value) {
  return typeof value === "function" || (Array.isArray(value) && value.length > 0 && value.every((f) => typeof f === "function"));
}

export function lifecyclesOf(module) {
  if (module && isLifecycle(module.bootstrap) && isLifecycle(module.mount) && isLifecycle(module.unmount)) {
    return { kind: "single-spa", update: isLifecycle(module.update) };
  }
  if (module && typeof module.mount === "function") return { kind: "skyline", update: false };
  return null;
}

// Calls one lifecycle (a function or an array of them, in order) with single-spa's props.
export async function callLifecycle(lifecycle, props) {
  for (const fn of Array.isArray(lifecycle) ? lifecycle : [lifecycle]) await fn(props);
}

// The props a single-spa application gets from Skyline's loader: single-spa's own
// (`name`, and `domElement`/`domElementGetter` that single-spa-react, -vue, ... honour)
// plus the Skyline context. No `singleSpa` or `mountParcel`: the loader is not single-spa.
export function singleSpaProps(context, element) {
  return {
    name: specifierOf(context.apartment, context.building),
    domElement: element,
    domElementGetter: () => element,
    ...context,
    skyline: context,
  };
}

// Whether the browser honours an import map's `integrity` (added by a module, after
// module loading began) is not something it says: two tiny data: modules of the same
// source find out, one listed with its right SRI (must load: data: modules are allowed
// here) and one with a wrong one (must be refused). data: URLs, not blob: ones: making a
// blob URL is a synchronous call to the browser process, several ms of a first visit.
export const INTEGRITY_PROBE_SOURCE = "export default 1;\n";
export const INTEGRITY_PROBE_SRI = "sha384-TfNfbmwP7o3QYLOKT2ylblYjdqWkjpHkmoyPgwQk/jxycBM1LOGLUePUz56+OBZF";
const WRONG_SRI = `sha384-${"A".repeat(64)}`;
// Two URLs (a module is fetched once per URL and page), one body.
export const INTEGRITY_PROBE_GOOD = `data:text/javascript,${encodeURIComponent(INTEGRITY_PROBE_SOURCE)}`;
export const INTEGRITY_PROBE_BAD = `data:text/javascript;charset=utf-8,${encodeURIComponent(INTEGRITY_PROBE_SOURCE)}`;

// A vitals beacon: web vitals of a page that loaded this unit version (LCP and INP in
// seconds, CLS unitless), for api/beacons.py's `kind: "vitals"`.
export function vitalsBeacon(apartment, building, unit, vitals) {
  const out = {};
  for (const name of ["lcp", "inp", "cls"]) {
    const v = vitals[name];
    if (typeof v === "number" && Number.isFinite(v)) out[name] = Math.round(Math.max(0, v) * 1e6) / 1e6;
  }
  return { apartment, building, unit: unit.name, version: unit.version, kind: "vitals", vitals: out };
}

// ---------------------------------------------------------------- overrides
// Signed developer overrides (api/overrides.py, docs/integrations.md#overrides-for-developers-and-qa):
// `?skyline_override=<token>[,…]` (`off` forgets) is kept in localStorage until it expires; the
// unit comes from GET /overrides/unit, which verifies the token (no URL is taken from a token);
// refused tokens are forgotten; beacons of the building say `override: true`. Opt-in
// `import_map_overrides`: that library's entries for `@<apartment>/<building>` (no SRI, no beacons).

export const OVERRIDE_PARAM = "skyline_override";
const OVERRIDES_KEY = "skyline.overrides";
const MAX_OVERRIDES = 8;

// The claims of an override token, read without verifying (the API does that): which
// apartment and building it is for, and when it expires. null when it is not one.
export function overrideClaims(token) {
  try {
    const payload = String(token).split(".")[0].replace(/-/g, "+").replace(/_/g, "/");
    const c = JSON.parse(atob(payload));
    if (typeof c.a !== "string" || typeof c.b !== "string" || typeof c.u !== "string" || typeof c.e !== "number") {
      return null;
    }
    return { apartment: c.a, building: c.b, unit: c.u, expires_at: c.e };
  } catch {
    return null;
  }
}

// The tokens this browser keeps, once the page's parameter is applied: a token from the URL
// replaces a stored one for the same apartment and building; expired ones are dropped.
export function keptOverrides(stored, param, nowMs) {
  if (param === "off") return [];
  const kept = new Map();
  const add = (token) => {
    const c = overrideClaims(token);
    if (c && c.expires_at * 1000 > nowMs) kept.set(`${c.apartment}/${c.building}`, token);
  };
  for (const token of Array.isArray(stored) ? stored : []) add(token);
  for (const token of param ? param.split(",") : []) add(token.trim());
  return [...kept.values()].slice(-MAX_OVERRIDES);
}

// Where the loader asks for an override's unit: `override`, or `overrides/unit` next to `beacons`.
export function overrideUrl(config, base) {
  if (config.override) return new URL(config.override, base).href;
  if (!config.beacons) return null;
  return new URL("overrides/unit", new URL(config.beacons, base)).href;
}

function storeOverrides(tokens) {
  try {
    if (tokens.length) localStorage.setItem(OVERRIDES_KEY, JSON.stringify(tokens));
    else localStorage.removeItem(OVERRIDES_KEY);
  } catch {
    // storage disabled: the parameter still applies to this page
  }
}

// This apartment's override tokens (the URL's, then the stored ones). A page without any
// costs a look at the query string and one localStorage read.
function pageOverrides(apartment) {
  let param = null;
  let stored = null;
  try {
    const search = location.search;
    if (search.includes(OVERRIDE_PARAM)) param = new URLSearchParams(search).get(OVERRIDE_PARAM);
    stored = localStorage.getItem(OVERRIDES_KEY);
  } catch {
    // storage disabled
  }
  if (!param && !stored) return [];
  let list = [];
  try {
    list = JSON.parse(stored || "[]");
  } catch {
    list = [];
  }
  const kept = keptOverrides(list, param, Date.now());
  if (param || kept.length !== (Array.isArray(list) ? list.length : 0)) storeOverrides(kept);
  return kept.filter((t) => overrideClaims(t).apartment === apartment);
}

function forgetOverride(token) {
  try {
    const list = JSON.parse(localStorage.getItem(OVERRIDES_KEY) || "[]");
    storeOverrides((Array.isArray(list) ? list : []).filter((t) => t !== token));
  } catch {
    // storage disabled
  }
}

// building -> {token, unit, expires_at} for each token the API vouches for; null when the
// page has none (then nothing is fetched).
function fetchOverrides(config, apartment) {
  const tokens = pageOverrides(apartment);
  const url = tokens.length ? overrideUrl(config, location.href) : null;
  if (!url) return null;
  const out = {};
  const one = async (token) => {
    try {
      const sep = url.includes("?") ? "&" : "?";
      const query = new URLSearchParams({ token });
      const response = await fetch(`${url}${sep}${query}`, { cache: "no-store", credentials: "omit" });
      if (response.status === 401 || response.status === 404) forgetOverride(token); // forged, expired, gone
      if (!response.ok) return;
      const body = await response.json();
      const unit = body && body.unit;
      if (body.apartment === apartment && unit && unit.url && unit.checksum) {
        out[body.building] = { token, unit, expires_at: body.expires_at, source: "skyline" };
      }
    } catch {
      // the API cannot be reached: no override on this page
    }
  };
  return Promise.all(tokens.map(one)).then(() => out);
}

// import-map-overrides' entries for this apartment's buildings: a developer's URL as given.
export function importMapOverridesOf(apartment, buildings, overrideMap) {
  const out = {};
  const imports = (overrideMap && overrideMap.imports) || {};
  for (const id of buildings) {
    const url = imports[specifierOf(apartment, id)];
    if (typeof url !== "string" || !url) continue;
    const unit = { id: `${id}@import-map-overrides`, name: id, version: "import-map-overrides", url };
    out[id] = { token: null, unit, expires_at: null, source: "import-map-overrides" };
  }
  return out;
}

function pageImportMapOverrides(config, apartment, buildings) {
  const imo = config.import_map_overrides && typeof window !== "undefined" ? window.importMapOverrides : null;
  if (!imo || typeof imo.getOverrideMap !== "function") return {};
  try {
    const found = importMapOverridesOf(apartment, Object.keys(buildings), imo.getOverrideMap());
    for (const o of Object.values(found)) o.unit.url = new URL(o.unit.url, location.href).href;
    return found;
  } catch {
    return {};
  }
}

// Each overridden building loads its override, falling back to the unit the split chose.
export function applyOverrides(assignments, overrides) {
  for (const [id, o] of Object.entries(overrides || {})) {
    const a = assignments[id];
    if (!a) continue;
    assignments[id] = {
      building: id,
      bucket: a.bucket,
      reason: "override",
      unit: o.unit,
      excluded_by: null,
      fallback: a.unit && a.unit.id !== o.unit.id ? a.unit : null,
      override: o.source,
    };
  }
  return assignments;
}

// A beacon of an overridden building says so (the API counts it apart); import-map-overrides
// loads send none (null).
function overridden(body, assignment) {
  if (assignment.reason !== "override") return body;
  return assignment.override === "skyline" ? { ...body, override: true } : null;
}

// ---------------------------------------------------------------- browser part

const USER_KEY = "skyline.user";
const DEFAULT_TIMEOUT_MS = 10000;

// Exported: the Module Federation plugin uses the same id, so a browser has one bucket in both.
export function userFromPage() {
  const fromQuery = new URL(location.href).searchParams.get("skyline_user");
  if (fromQuery) return { id: fromQuery };
  try {
    let id = localStorage.getItem(USER_KEY);
    if (!id) {
      id = crypto.randomUUID();
      localStorage.setItem(USER_KEY, id);
    }
    return { id };
  } catch {
    // Storage disabled: a per-page id still gives a valid, if unstable, split.
    return { id: crypto.randomUUID() };
  }
}

// ---------------------------------------------------------------- bucket keys
// A page that reports beacons splits by the browser's bucket key, an id the API chose and
// signed (GET /beacon-token answers it as `bucket`; api/beacon_tokens.py BucketKeys), kept in
// localStorage. The API assigns from the same key with the same split, and a beacon token
// covers only that unit and the stable one, so a page cannot choose the variant it reports
// on. A first visit has no key yet: it gets the stable unit of every building (its token
// is fetched in parallel with the units, never waited for), and its key from that token.

export const BUCKET_PARAM = "skyline_bucket";
const BUCKET_KEY = "skyline.bucket";

// The id inside a bucket key, read without verifying (the API does that); null when it is not one.
export function bucketIdOf(key) {
  try {
    const payload = String(key).split(".")[0].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(payload));
    return typeof claims.k === "string" && claims.k.length > 0 ? claims.k : null;
  } catch {
    return null;
  }
}

// The user the split is computed for: the shell's user with the bucket key's id, or null
// when there is no key (a first visit).
export function splitUserOf(user, key) {
  const id = key ? bucketIdOf(key) : null;
  return id ? { ...user, id } : null;
}

// A first visit's assignments: every building on its stable unit (what its token covers).
export function stableOnly(assignments, buildings) {
  const out = {};
  for (const [id, a] of Object.entries(assignments)) {
    if (a.reason !== "canary") {
      out[id] = a;
      continue;
    }
    const b = buildings[id] || {};
    const active = b.active_unit ? (b.units || {})[b.active_unit] : undefined;
    out[id] = active
      ? { ...a, reason: "stable", unit: active, excluded_by: "first_visit" }
      : { ...a, reason: "none", unit: null, excluded_by: "first_visit" };
  }
  return out;
}

// This browser's bucket key: `?skyline_bucket=` (kept from then on), else the stored one.
export function pageBucketKey() {
  const fromQuery = new URL(location.href).searchParams.get(BUCKET_PARAM);
  if (fromQuery) return fromQuery;
  try {
    return localStorage.getItem(BUCKET_KEY);
  } catch {
    return null;
  }
}

// Keeps the key a token answer carries (a new one when ours was missing or did not verify).
export function keepBucketKey(answer, current) {
  if (!answer || typeof answer.bucket !== "string" || answer.bucket === current) return;
  try {
    localStorage.setItem(BUCKET_KEY, answer.bucket);
  } catch {
    // Storage disabled: every page is a first visit.
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A module script element is the one way to load an ES module with SRI: the
// browser refuses bytes that do not match `integrity`. The later import() of
// the same URL is served from the document's module map, so it neither
// fetches again nor bypasses the check.
function loadModuleScript(url, integrity) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.type = "module";
    script.src = url;
    script.crossOrigin = "anonymous";
    if (integrity) script.integrity = integrity;
    script.addEventListener("load", () => resolve());
    script.addEventListener("error", () =>
      reject(new Error(`the browser refused or could not fetch ${url} (network error or integrity mismatch)`)),
    );
    document.head.appendChild(script);
  });
}

// A stylesheet with SRI: the browser applies none of it unless every byte matches.
function loadStylesheet(url, integrity, unitId, added) {
  return new Promise((resolve, reject) => {
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.crossOrigin = "anonymous";
    link.integrity = integrity;
    link.dataset.skylineUnit = unitId;
    link.addEventListener("load", () => resolve());
    link.addEventListener("error", () =>
      reject(new Error(`the browser refused or could not fetch stylesheet ${url} (network error or integrity mismatch)`)),
    );
    link.href = url;
    added.push(link);
    document.head.appendChild(link);
  });
}

// One import map for every unit this page may load (each building's unit and its
// fallback), added before any of their modules is imported: browsers that allow a
// single import map only accept one added before the first module import, and a later
// map may not re-state an URL an earlier one gave integrity to. Returns "importmap"
// when the browser verifies every listed module, "entry" when only the entry's
// <script integrity> is checked (no import maps, no `integrity` in them, a map added
// too late, or data: modules blocked by the page's CSP). docs/loader.md.
const PROBE_KEY = "skyline.integrity";

function cachedProbe() {
  try {
    const saved = JSON.parse(localStorage.getItem(PROBE_KEY) || "null");
    return saved && saved.ua === navigator.userAgent && saved.mode === "importmap";
  } catch {
    return false;
  }
}

function saveProbe() {
  try {
    localStorage.setItem(PROBE_KEY, JSON.stringify({ ua: navigator.userAgent, mode: "importmap" }));
  } catch {
    // storage disabled: probe again next time
  }
}

async function importsProbe(url, ms) {
  try {
    await withTimeout(import(url), ms, "integrity probe");
    return true;
  } catch {
    return false;
  }
}

// Adds the page's one import map: `imports` (the bare specifiers of the units this user
// gets, and a throw-away probe specifier) and `integrity`. Returns {mode, map}: mode as
// above (a promise while a first visit's probe runs); map true when the browser accepted
// the map (bare specifiers resolve).
async function injectImportMap(imports, integrity) {
  if (Object.keys(integrity).length === 0 && Object.keys(imports).length === 0) return { mode: "entry", map: false };
  if (typeof HTMLScriptElement === "undefined" || typeof HTMLScriptElement.supports !== "function") {
    return { mode: "entry", map: false };
  }
  if (!HTMLScriptElement.supports("importmap")) return { mode: "entry", map: false };
  // Whether the browser enforces `integrity` is a property of the browser: probed with
  // two data: modules (the refused one logs a console error), then remembered per user
  // agent. Whether it accepted this very map (added by a module, after module loading
  // began) is checked on every page, silently, by resolving a specifier the map names.
  const canResolve = typeof import.meta.resolve === "function";
  const known = cachedProbe() && canResolve;
  const probing = !known && Object.keys(integrity).length > 0;
  const specifier = `skyline-integrity-probe-${Math.random().toString(36).slice(2)}`;
  const target = "data:text/javascript,";
  const map = document.createElement("script");
  map.type = "importmap";
  map.dataset.skyline = "integrity";
  const all = { ...integrity };
  if (probing) Object.assign(all, { [INTEGRITY_PROBE_GOOD]: INTEGRITY_PROBE_SRI, [INTEGRITY_PROBE_BAD]: WRONG_SRI });
  map.textContent = JSON.stringify({ imports: { ...imports, [specifier]: target }, integrity: all });
  document.head.appendChild(map);
  let accepted = true;
  if (canResolve) {
    try {
      accepted = import.meta.resolve(specifier) === target;
    } catch {
      accepted = false;
    }
  }
  mark("skyline:map");
  if (Object.keys(integrity).length === 0 || !accepted) return { mode: "entry", map: accepted };
  if (known) return { mode: "importmap", map: true };
  // A browser's first visit: the map is in place and enforced (or not) whatever the probe
  // finds, which only says so in the report; so it runs beside the units' loading, not
  // before it. `mode` is then a promise, awaited before start() returns.
  const mode = (async () => {
    await new Promise((next) => setTimeout(next, 0)); // after the units started loading
    if (!(await importsProbe(INTEGRITY_PROBE_GOOD, 3000))) return "entry";
    if (await importsProbe(INTEGRITY_PROBE_BAD, 3000)) return "entry";
    saveProbe();
    return "importmap";
  })();
  return { mode, map: accepted };
}

async function mountUnit(unit, element, context, timeoutMs, mounted) {
  const started = performance.now();
  const links = [];
  try {
    // Stylesheets and the entry in parallel; the unit mounts only when all passed SRI.
    const styles = unitFiles(unit, "style").map((f) => loadStylesheet(f.url, f.integrity, unit.id, links));
    await withTimeout(
      Promise.all([loadModuleScript(unit.url, unit.checksum), ...styles]),
      timeoutMs,
      `loading ${unit.id}`,
    );
    const module = await import(unit.url);
    const life = lifecyclesOf(module);
    if (!life) throw new Error(`${unit.id} exports no mount(element, context) nor single-spa lifecycles`);
    element.replaceChildren();
    // A chunk the entry imports lazily while mounting is verified too: a mismatch fails the mount.
    if (life.kind === "single-spa") {
      mounted.props = singleSpaProps(context, element);
      await withTimeout(
        (async () => {
          await callLifecycle(module.bootstrap, mounted.props);
          await callLifecycle(module.mount, mounted.props);
        })(),
        timeoutMs,
        `bootstrapping and mounting ${unit.id}`,
      );
    } else {
      await withTimeout(Promise.resolve(module.mount(element, context)), timeoutMs, `mounting ${unit.id}`);
    }
    Object.assign(mounted, { kind: life.kind, module, element, context });
  } catch (err) {
    // A unit that failed leaves no styles behind for the fallback unit.
    for (const link of links) link.remove();
    throw err;
  }
  return (performance.now() - started) / 1000;
}

// Teardown of a mounted unit: single-spa's `unmount(props)`, or a Skyline unit's own
// `unmount(element, context)` when it exports one.
async function unmountUnit(m) {
  if (m.kind === "single-spa") await callLifecycle(m.module.unmount, m.props);
  else if (typeof m.module.unmount === "function") await m.module.unmount(m.element, m.context);
}

function baseOf(url) {
  return url.slice(0, url.lastIndexOf("/") + 1);
}

// One token per page load (a session), fetched after the manifest: `revision`
// tells the API which manifest this page read, so the token covers its units.
export async function fetchToken(url, apartment, revision, overrideTokens, bucketKey) {
  if (!url) return null;
  try {
    const query = new URLSearchParams({ apartment });
    if (revision !== null && revision !== undefined) query.set("revision", String(revision));
    if (overrideTokens && overrideTokens.length) query.set("override", overrideTokens.join(","));
    if (bucketKey) query.set("bucket", bucketKey);
    const sep = url.includes("?") ? "&" : "?";
    const response = await fetch(`${url}${sep}${query}`, { cache: "no-store", credentials: "omit" });
    if (!response.ok) return { error: response.status };
    const answer = await response.json();
    keepBucketKey(answer, bucketKey);
    return answer;
  } catch {
    return { error: 0 };
  }
}

async function post(url, beacons, session) {
  if (!url || beacons.length === 0) return null;
  if (!session || !session.token) return session && session.error !== undefined ? session.error : 0;
  try {
    // text/plain keeps this a CORS "simple request": no preflight per page load.
    const response = await fetch(url, {
      method: "POST",
      body: JSON.stringify({ token: session.token, beacons }),
      headers: { "content-type": "text/plain;charset=UTF-8" },
      credentials: "omit",
      keepalive: true,
    });
    return response.status;
  } catch {
    return 0;
  }
}

// `state` is window.skyline when the loader started itself: it gets `ready` (resolves
// once the import map is in the page, so a shell's modules may import "@shop/header"),
// `mounted`, `unmount(building?)` and `update(building, props)`.
export async function start(config, state = {}) {
  mark("skyline:start");
  const apartment = config.apartment;
  const timeoutMs = config.timeout_ms || DEFAULT_TIMEOUT_MS;
  const user = config.user && config.user.id ? config.user : userFromPage();
  const report = {
    apartment,
    user: user.id,
    revision: null,
    integrity: null,
    buildings: {},
    beacons: [],
    beacon_status: null,
    error: null,
    importmap: null,
  };
  // Signed overrides of this browser (the overrides section): looked up while the manifest
  // loads, once it is requested (a first visit's first localStorage read blocks for ms).
  let overriding = null;
  let mapReady;
  state.ready = new Promise((resolve) => {
    mapReady = resolve;
  });
  // Whatever happens, `ready` settles (to null when no map was added).
  const settle = (value) => mapReady(value);

  // Skew protection: a page that already read the manifest keeps that revision.
  let manifest = pinnedManifest(PAGE_PINS, config.manifest);
  if (manifest) {
    report.pinned = true;
    overriding = fetchOverrides(config, apartment);
  } else try {
    // no-cache: revalidate with the edge on every page load, so the page after
    // an emergency rollback already gets last-known-good.
    const request = fetch(config.manifest, { cache: "no-cache", credentials: "omit" });
    mark("skyline:fetch");
    overriding = fetchOverrides(config, apartment);
    const response = await request;
    if (!response.ok) throw new Error(`manifest answered ${response.status}`);
    // text + JSON.parse rather than json(): the same work, with the parse between marks.
    const text = await response.text();
    mark("skyline:manifest");
    manifest = pinRevision(PAGE_PINS, config.manifest, JSON.parse(text));
  } catch (err) {
    report.error = `cannot read the manifest: ${err.message}`;
    settle(null);
    return report;
  }
  report.revision = manifest.version;

  // The beacon token, while the units load.
  const tokenFrom = config.beacons ? tokenUrl(config, location.href) : null;
  const overrides = overriding ? await overriding : null;
  const overrideTokens = Object.values(overrides || {}).map((o) => o.token);
  // A page with beacons splits by its bucket key (the bucket keys section), one without by the user.
  const bucketKey = tokenFrom ? pageBucketKey() : null;
  const splitUser = tokenFrom ? splitUserOf(user, bucketKey) : user;
  report.bucket = splitUser && tokenFrom ? splitUser.id : null;
  let session = fetchToken(tokenFrom, apartment, manifest.version, overrideTokens, bucketKey);
  // A token close to expiry (a long-lived page reporting a late runtime error) is renewed.
  const currentSession = async () => {
    let s = await session;
    if (s && s.expires_at && s.expires_at * 1000 - Date.now() < 10000) {
      session = fetchToken(tokenFrom, apartment, manifest.version, overrideTokens, bucketKey);
      s = await session;
    }
    report.beacon_session = s && s.session ? s.session : null;
    return s;
  };

  let assignments;
  try {
    assignments = resolve(manifest, apartment, splitUser || user);
  } catch (err) {
    report.error = err.message;
    settle(null);
    return report;
  }
  const buildings = manifest.apartments[apartment].buildings;
  if (!splitUser) assignments = stableOnly(assignments, buildings);
  applyOverrides(assignments, { ...pageImportMapOverrides(config, apartment, buildings), ...overrides });
  report.overrides = overrides || null;
  const beacons = report.beacons;
  const watched = [];
  const mounted = {};
  state.mounted = mounted;
  // Teardown and updates, for shells that unmount (single-spa's unmount/update lifecycles).
  state.unmount = async (building) => {
    for (const id of building ? [building] : Object.keys(mounted)) {
      const m = mounted[id];
      if (!m) continue;
      delete mounted[id];
      await unmountUnit(m);
    }
  };
  state.update = async (building, props) => {
    const m = mounted[building];
    if (!m || m.kind !== "single-spa" || !isLifecycle(m.module.update)) return false;
    m.props = { ...m.props, ...(props || {}) };
    await callLifecycle(m.module.update, m.props);
    return true;
  };

  const loadOne = async (id, assignment, into) => {
    const building = buildings[id];
    const selector = (building.routing && building.routing.mount) || `[data-skyline-building="${id}"]`;
    const element = into || document.querySelector(selector);
    const entry = { bucket: assignment.bucket, reason: assignment.reason, unit: null, state: "skipped", attempts: [] };
    report.buildings[id] = entry;
    // A page that has no place for a building loads nothing for it.
    if (!element || !assignment.unit) return;
    const candidates = [assignment.unit];
    // A canary that fails falls back to the stable unit: the failure is still
    // reported, the user still gets a working page.
    const active = building.active_unit && building.units[building.active_unit];
    if (assignment.reason === "canary" && active) candidates.push(active);
    if (assignment.fallback) candidates.push(assignment.fallback);
    for (const unit of candidates) {
      const context = { apartment, building: id, unit: unit.id, version: unit.version, user: { id: user.id } };
      const m = { building: id, unit: unit.id };
      try {
        const seconds = await mountUnit(unit, element, context, timeoutMs, m);
        mounted[id] = m;
        const b = overridden(beacon(apartment, id, unit, "loaded", seconds), assignment);
        if (b) beacons.push(b);
        entry.attempts.push({ unit: unit.id, outcome: "loaded", seconds });
        entry.unit = unit.id;
        entry.state = "loaded";
        element.dataset.skylineUnit = unit.id;
        element.dataset.skylineState = "loaded";
        watched.push({ base: baseOf(unit.url), building: id, unit, reported: false, assignment });
        return;
      } catch (err) {
        const b = overridden(beacon(apartment, id, unit, "load_error"), assignment);
        if (b) beacons.push(b);
        entry.attempts.push({ unit: unit.id, outcome: "load_error", error: String(err && err.message) });
        entry.unit = unit.id;
        entry.state = "load_error";
        element.dataset.skylineUnit = unit.id;
        element.dataset.skylineState = "load_error";
      }
    }
  };

  // Skew protection: a building mounted later (an element the shell's router added, or one
  // unmounted and loaded again) gets the unit of the revision this page started with.
  state.load = (id, element) => lazyLoad(id, element);
  const lazyLoad = async (id, element) => {
    const assignment = pinnedAssignment(assignments, manifest.version, id);
    const current = mounted[id];
    if (!current || (element && current.element !== element)) {
      const from = beacons.length;
      await loadOne(id, assignment, element);
      const fresh = beacons.slice(from).filter((b) => b.building === id && b.outcome !== "runtime_error");
      if (fresh.length) report.lazy_beacon_status = await post(config.beacons, fresh, await currentSession());
    }
    return { ...report.buildings[id], revision: manifest.version };
  };

  // Errors thrown later by a mounted unit's own scripts: one beacon per unit
  // and page, so a unit throwing in a loop cannot flood the endpoint.
  const runtimeError = (w) => {
    w.reported = true;
    const b = overridden(beacon(apartment, w.building, w.unit, "runtime_error"), w.assignment);
    if (!b) return;
    report.beacons.push(b);
    currentSession()
      .then((s) => post(config.beacons, [b], s))
      .then((status) => {
        report.runtime_beacon_status = status;
      });
  };
  const blame = (text) => watched.find((w) => !w.reported && text && text.includes(w.base));
  window.addEventListener("error", (event) => {
    const w = blame(event.filename);
    if (w) runtimeError(w);
  });
  window.addEventListener("unhandledrejection", (event) => {
    const w = blame(String((event.reason && event.reason.stack) || ""));
    if (w) runtimeError(w);
  });

  // Every unit a building may load here (its unit, and the stable one a canary falls back
  // to) goes into one import map before any of them is imported, with the bare specifier
  // (`@<apartment>/<building>`) of every unit this user gets, for the shell's own modules.
  const mayLoad = [];
  for (const [id, a] of Object.entries(assignments)) {
    const building = buildings[id];
    const selector = (building.routing && building.routing.mount) || `[data-skyline-building="${id}"]`;
    if (!a.unit || !document.querySelector(selector)) continue;
    mayLoad.push(a.unit);
    if (a.reason === "canary" && building.active_unit) mayLoad.push(building.units[building.active_unit]);
    if (a.fallback) mayLoad.push(a.fallback);
  }
  const native = importMapOf(apartment, assignments);
  const integrity = { ...moduleIntegrity(mayLoad), ...native.integrity };
  const vitals = config.vitals && config.vitals.url ? config.vitals : null;
  if (vitals && vitals.integrity) integrity[new URL(vitals.url, location.href).href] = vitals.integrity;
  const injected = await injectImportMap(native.imports, integrity);
  report.importmap = injected.map ? { imports: native.imports, variant: native.variant } : null;
  settle(report.importmap);
  mark("skyline:units");

  const loading = Promise.all(Object.entries(assignments).map(([id, a]) => loadOne(id, a)));
  [report.integrity] = await Promise.all([injected.mode, loading]);
  // Runtime errors (a unit that threw while others were still loading) went on their own.
  const loads = beacons.filter((b) => b.outcome !== "runtime_error");
  report.beacon_status = await post(config.beacons, loads, config.beacons ? await currentSession() : null);
  if (vitals && !Object.values(assignments).some((a) => a.reason === "override")) {
    // Web vitals of this page (not of a page under an override: they would mix its unit in), reported for every unit version it loaded (docs/integrations.md).
    const units = Object.entries(report.buildings)
      .filter(([, e]) => e.state === "loaded")
      .map(([id, e]) => ({ building: id, unit: buildings[id].units[e.unit] }));
    report.vitals = {};
    report.vitals_status = {};
    const send = async (name, batch) => {
      const s = await currentSession();
      const bodies = batch.map((v) => vitalsBeacon(apartment, v.building, v.unit, v.vitals));
      report.vitals_status[name] = await post(config.beacons, bodies, s);
    };
    reportVitals(vitals.url, units, send, report.vitals);
  }
  return report;
}

// The optional vitals module: the `web-vitals` library's ESM build (config.vitals.url, its
// SRI in the import map), imported only after the units loaded, so it costs the loader's
// critical path nothing; its observers are `buffered`, so LCP and CLS since navigation
// are still seen. Each metric, once web-vitals reports it (LCP on the first input or when
// the page is hidden, CLS and INP when hidden), is one POST with one beacon per unit.
function reportVitals(url, units, send, out) {
  if (units.length === 0) return;
  import(url)
    .then((webVitals) => {
      const observe = (name, scale) => (metric) => {
        out[name] = metric.value * scale;
        for (let i = 0; i < units.length; i += MAX_BATCH) {
          send(name, units.slice(i, i + MAX_BATCH).map((u) => ({ ...u, vitals: { [name]: metric.value * scale } })));
        }
      };
      webVitals.onLCP(observe("lcp", 1 / 1000));
      webVitals.onINP(observe("inp", 1 / 1000));
      webVitals.onCLS(observe("cls", 1));
    })
    .catch((err) => {
      out.error = `cannot load web-vitals from ${url}: ${err && err.message}`;
    });
}

const MAX_BATCH = 20;

// performance.mark, where there is one. bench/loader.py reads them: skyline:start (start()
// runs), skyline:fetch (manifest requested), skyline:manifest (its body arrived),
// skyline:map (the import map is in), skyline:units (the first unit starts loading).
function mark(name) {
  if (typeof performance !== "undefined" && typeof performance.mark === "function") performance.mark(name);
}

// Start by itself when the page carries a config element; importing the
// module (node tests, another loader) does nothing.
if (typeof document !== "undefined" && typeof window !== "undefined") {
  const element = document.querySelector('script[type="application/json"][data-skyline]');
  if (element) {
    const state = { done: false, report: null };
    window.skyline = state;
    let config;
    try {
      config = JSON.parse(element.textContent);
    } catch (err) {
      config = null;
      state.report = { error: `the data-skyline config is not JSON: ${err.message}` };
      state.done = true;
    }
    if (config) {
      start(config, state)
        .catch((err) => ({ error: String(err && err.message) }))
        .then((report) => {
          state.report = report;
          state.done = true;
          document.dispatchEvent(new CustomEvent("skyline:done", { detail: report }));
        });
    }
  }
}
