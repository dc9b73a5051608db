// Skyline's runtime plugin for Module Federation 2 (`@module-federation/runtime` 2.x).
//
// A host built once keeps loading each remote from whatever version Skyline's
// manifest gives this user: canaries, rollbacks and promotions reach the host
// on its next page load, with no rebuild. For every remote whose name maps to
// a building of the apartment, the plugin
//
//   - reads the apartment's manifest from the edge once per page load
//     (`cache: "no-cache"`, as the loader does) and splits the user with the
//     loader's own `resolve` (same FNV-1a bucket of "user:apartment:building",
//     same criteria; tests/vectors/split.json keeps Python and JS equal), so a
//     user gets the same unit from the loader, the import map and this plugin;
//   - rewrites the remote's `entry` (and `type`, from the unit's `federation`)
//     in `beforeRequest` (and `beforePreloadRemote`), before the runtime matches
//     the request to a remote; remotes registered later are split when first asked for;
//   - loads the entry with its SRI (`loadEntry`: a module <script integrity> then
//     import() for "module"/"esm" remotes; `createScript`: `integrity` on the
//     classic script of the others), and adds one import map whose `integrity`
//     names every module file of the units it may load, for the browsers that
//     verify the chunks a remote imports (Chromium 133+);
//   - posts a `loaded` or `load_error` beacon per remote version and page (and
//     one `runtime_error` for errors later thrown by its scripts) with the
//     page's signed token (GET /beacon-token), exactly as the loader reports
//     units, so the canary's analysis counts remote loads;
//   - falls back to the stable unit when a canary remote fails to load
//     (`errorLoadRemote`): the failure is reported, the host still gets a remote.
//
// A remote maps to a building by `config.remotes[remoteName]`, else by the
// container name a published unit recorded from its mf-manifest.json
// (`unit.federation.name`), else by a building of that id. Remotes that map to
// nothing, and every remote when the manifest cannot be read, keep the entry
// the host was built with.
//
//   import { createInstance } from "@module-federation/runtime";
//   import { skylineFederation } from "./skyline-mf-plugin.js";
//   const mf = createInstance({
//     name: "host",
//     remotes: [{ name: "checkout", entry: "https://edge.example/skyline/bundles/checkout/remoteEntry.js", type: "module" }],
//     plugins: [skylineFederation({
//       apartment: "shop",
//       manifest: "https://edge.example/skyline/manifests/shop/manifest.json",
//       beacons: "https://skyline.example/beacons",
//       user: { id: "42" },                              // optional: as the loader's config
//     })],
//   });
//   const cart = await mf.loadRemote("checkout/Cart");
//
// It imports the split from skyline-loader.js next to it (the loader only starts
// itself in a page with a `data-skyline` config element). A page that also runs
// the loader should import both from the same URL (or bundle both from the same
// file), so that the loader module is evaluated once.

import {
  beacon,
  keepBucketKey,
  moduleIntegrity,
  pageBucketKey,
  resolve,
  splitUserOf,
  stableOnly,
  tokenUrl,
  userFromPage,
} from "./skyline-loader.js";

const DEFAULT_TIMEOUT_MS = 10000;
const ESM_TYPES = new Set(["module", "esm"]);

// The building a remote maps to, or null (see the header).
export function buildingOf(remoteName, buildings, mapping) {
  if (mapping && Object.prototype.hasOwnProperty.call(mapping, remoteName)) {
    return buildings[mapping[remoteName]] ? mapping[remoteName] : null;
  }
  for (const [id, building] of Object.entries(buildings || {})) {
    for (const unit of Object.values(building.units || {})) {
      if (unit.federation && unit.federation.name === remoteName) return id;
    }
  }
  return buildings && buildings[remoteName] ? remoteName : null;
}

// remote name -> {building, bucket, reason, unit, stable}: what this user gets for each
// remote of the host, from the loader's split of the whole apartment.
// `user` null: a first visit of a page with beacons (no bucket key yet), on the stable units.
export function remoteAssignments(manifest, apartment, user, remoteNames, mapping) {
  const buildings = manifest.apartments[apartment] ? manifest.apartments[apartment].buildings : {};
  const assignments = user
    ? resolve(manifest, apartment, user)
    : stableOnly(resolve(manifest, apartment, { id: "" }), buildings);
  const out = {};
  for (const name of remoteNames) {
    const id = buildingOf(name, buildings, mapping);
    if (!id || !assignments[id] || !assignments[id].unit) continue;
    const a = assignments[id];
    const building = buildings[id];
    const stable = building.active_unit ? building.units[building.active_unit] || null : null;
    out[name] = { building: id, bucket: a.bucket, reason: a.reason, unit: a.unit, stable };
  }
  return out;
}

// The remote as the runtime should load it: the unit's entry and, when the unit is a
// published Module Federation remote, its entry type and global name.
export function rewriteRemote(remote, unit) {
  remote.entry = unit.url;
  if ("version" in remote) delete remote.version; // a remote has an entry or a version, never both
  const fed = unit.federation;
  if (fed && fed.type) remote.type = fed.type;
  if (fed && fed.global_name) remote.entryGlobalName = fed.global_name;
  return remote;
}

// The remote a request id ("checkout/Cart", or through an alias) is for.
export function remoteOfRequest(remotes, id) {
  for (const r of remotes || []) {
    for (const n of [r.name, r.alias]) if (n && (id === n || id.startsWith(`${n}/`))) return r;
  }
  return null;
}

function loadModuleScript(url, integrity, timeoutMs) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.type = "module";
    script.src = url;
    script.crossOrigin = "anonymous";
    if (integrity) script.integrity = integrity;
    const timer = setTimeout(() => reject(new Error(`loading ${url} timed out after ${timeoutMs} ms`)), timeoutMs);
    script.addEventListener("load", () => {
      clearTimeout(timer);
      resolve();
    });
    script.addEventListener("error", () => {
      clearTimeout(timer);
      reject(new Error(`the browser refused or could not fetch ${url} (network error or integrity mismatch)`));
    });
    document.head.appendChild(script);
  });
}

function baseOf(url) {
  return url.slice(0, url.lastIndexOf("/") + 1);
}

export function skylineFederation(config) {
  const apartment = config.apartment;
  const timeoutMs = config.timeout_ms || DEFAULT_TIMEOUT_MS;
  const user = config.user && config.user.id ? config.user : userFromPage();
  const report = {
    apartment,
    user: user.id,
    revision: null,
    error: null,
    remotes: {},
    beacons: [],
    beacon_status: [],
  };
  const byName = {}; // remote name -> assignment + page state
  const reported = new Set(); // unit ids with an outcome on this page
  const queue = [];
  let page = null;
  let session = null;
  let flushing = null;

  const tokenFrom = config.beacons ? tokenUrl(config, location.href) : null;
  // A host with beacons splits by the browser's bucket key, as the loader does.
  const bucketKey = tokenFrom ? pageBucketKey() : null;
  const splitUser = tokenFrom ? splitUserOf(user, bucketKey) : user;
  report.bucket = tokenFrom && splitUser ? splitUser.id : null;
  const fetchToken = async (revision) => {
    if (!tokenFrom) return null;
    try {
      const query = new URLSearchParams({ apartment, revision: String(revision) });
      if (bucketKey) query.set("bucket", bucketKey);
      const sep = tokenFrom.includes("?") ? "&" : "?";
      const response = await fetch(`${tokenFrom}${sep}${query}`, { cache: "no-store", credentials: "omit" });
      if (!response.ok) return { error: response.status };
      const answer = await response.json();
      keepBucketKey(answer, bucketKey);
      return answer;
    } catch {
      return { error: 0 };
    }
  };

  // Beacons go out in small batches: every outcome of one turn of the event loop together.
  const flush = async () => {
    await new Promise((r) => setTimeout(r, 0));
    flushing = null;
    const batch = queue.splice(0, 20);
    if (batch.length === 0 || !config.beacons) return;
    let s = await session;
    if (s && s.expires_at && s.expires_at * 1000 - Date.now() < 10000) {
      session = fetchToken(page.manifest.version);
      s = await session;
    }
    let status = s && s.error !== undefined ? s.error : 0;
    if (s && s.token) {
      try {
        const response = await fetch(config.beacons, {
          method: "POST",
          body: JSON.stringify({ token: s.token, beacons: batch }),
          headers: { "content-type": "text/plain;charset=UTF-8" },
          credentials: "omit",
          keepalive: true,
        });
        status = response.status;
      } catch {
        status = 0;
      }
    }
    report.beacon_status.push(status);
    if (queue.length) flushing = flush();
  };
  const send = (b) => {
    report.beacons.push(b);
    queue.push(b);
    flushing ||= flush();
  };
  const outcome = (r, unit, what, seconds) => {
    if (reported.has(unit.id)) return;
    reported.add(unit.id);
    send(beacon(apartment, r.building, unit, what, seconds));
    const entry = report.remotes[r.name];
    entry.attempts.push({ unit: unit.id, outcome: what, seconds });
    entry.unit = unit.id;
    entry.state = what;
    if (what === "loaded") watched.push({ base: baseOf(unit.url), r, unit, reported: false });
  };

  // Errors later thrown by a loaded remote's own scripts: one beacon per unit and page.
  const watched = [];
  const blame = (text) => watched.find((w) => !w.reported && text && text.includes(w.base));
  const runtimeError = (w) => {
    w.reported = true;
    send(beacon(apartment, w.r.building, w.unit, "runtime_error"));
  };
  if (typeof window !== "undefined") {
    window.addEventListener("error", (event) => {
      const w = blame(event.filename);
      if (w) runtimeError(w);
    });
    window.addEventListener("unhandledrejection", (event) => {
      const w = blame(String((event.reason && event.reason.stack) || ""));
      if (w) runtimeError(w);
    });
  }

  // The manifest, once per page load (and per plugin).
  const ready = () => {
    page ||= (async () => {
      const response = await fetch(config.manifest, { cache: "no-cache", credentials: "omit" });
      if (!response.ok) throw new Error(`manifest answered ${response.status}`);
      const manifest = await response.json();
      report.revision = manifest.version;
      session = fetchToken(manifest.version);
      return { manifest };
    })().catch((err) => {
      report.error = `cannot read the manifest: ${err.message}`;
      return null;
    });
    return page;
  };

  // What each remote gets, the first time the host asks for it (remotes registered later
  // with registerRemotes are split too, from the same manifest).
  const seen = new Set();
  const assign = (manifest, remotes) => {
    const names = remotes.map((r) => r.name).filter((n) => !seen.has(n));
    if (names.length === 0) return;
    for (const n of names) seen.add(n);
    let assigned;
    try {
      assigned = remoteAssignments(manifest, apartment, splitUser, names, config.remotes);
    } catch (err) {
      report.error = err.message; // the manifest has no such apartment: the host's own entries
      return;
    }
    const mayLoad = [];
    for (const [name, a] of Object.entries(assigned)) {
      byName[name] = { ...a, name, current: a.unit, started: null };
      report.remotes[name] = {
        building: a.building,
        bucket: a.bucket,
        reason: a.reason,
        unit: a.unit.id,
        state: "assigned",
        attempts: [],
      };
      mayLoad.push(a.unit);
      if (a.reason === "canary" && a.stable) mayLoad.push(a.stable);
    }
    addIntegrityMap(moduleIntegrity(mayLoad));
  };

  // Every mapped remote of the host loads the unit this user gets.
  const rewrite = async (remotes) => {
    const loaded = await ready();
    if (!loaded) return false; // no manifest: the host's own entries
    assign(loaded.manifest, remotes);
    for (const remote of remotes) {
      const r = byName[remote.name];
      if (r) rewriteRemote(remote, r.current);
    }
    return true;
  };

  const unitOf = (remoteInfo) => {
    const r = remoteInfo && byName[remoteInfo.name];
    return r && remoteInfo.entry === r.current.url ? r : null;
  };

  return {
    name: "skyline-federation",
    version: "1",
    report,
    ready, // starts (or joins) the page's manifest read: a host may call it early

    async beforeRequest(args) {
      if (!(await rewrite(args.options.remotes))) return args;
      const requested = remoteOfRequest(args.options.remotes, args.id);
      const r = requested && byName[requested.name];
      if (r && r.started === null) r.started = performance.now();
      return args;
    },

    // preloadRemote() fetches entries too: the same units.
    async beforePreloadRemote({ options }) {
      await rewrite(options.remotes);
    },

    // "module"/"esm" remotes: the entry through a module <script integrity> (the browser
    // refuses other bytes), then import() of the same URL from the module map.
    async loadEntry({ remoteInfo }) {
      const r = unitOf(remoteInfo);
      if (!r || !ESM_TYPES.has(remoteInfo.type) || !r.current.checksum) return undefined;
      await loadModuleScript(r.current.url, r.current.checksum, timeoutMs);
      return import(/* webpackIgnore: true */ /* @vite-ignore */ r.current.url);
    },

    // Classic-script remotes ("var", "global", …): the runtime's <script> gets the SRI.
    createScript({ url, remoteInfo }) {
      const r = unitOf(remoteInfo);
      if (!r || url !== r.current.url || !r.current.checksum) return undefined;
      const script = document.createElement("script");
      script.src = url;
      script.crossOrigin = "anonymous";
      script.integrity = r.current.checksum;
      return { script, timeout: timeoutMs };
    },

    async afterLoadRemote({ remote, error, recovered }) {
      const r = remote && byName[remote.name];
      if (!r || error || recovered || remote.entry !== r.current.url) return;
      outcome(r, r.current, "loaded", r.started === null ? undefined : (performance.now() - r.started) / 1000);
    },

    // A remote that failed to load is a load_error; a canary falls back to the stable unit.
    async errorLoadRemote({ id, error, lifecycle, remote, options, origin }) {
      if (lifecycle !== "onLoad") return undefined;
      const r = remote && byName[remote.name];
      if (!r || remote.entry !== r.current.url) return undefined;
      outcome(r, r.current, "load_error");
      report.remotes[r.name].error = String((error && error.message) || error);
      if (r.reason !== "canary" || !r.stable || r.current === r.stable) return undefined;
      r.current = r.stable;
      r.started = performance.now();
      const registered = origin.options.remotes.find((x) => x.name === r.name);
      origin.registerRemotes([rewriteRemote({ ...registered }, r.stable)], { force: true });
      return origin.loadRemote(id, options);
    },
  };
}

// One import map naming the SRI of every module of the units the page may load, added
// before the first remote loads: where the browser honours `integrity` in a map added
// after module loading began (Chromium 133+), every chunk a remote imports is verified;
// elsewhere only the entries are. An URL another map already gave an integrity keeps it.
function addIntegrityMap(integrity) {
  if (Object.keys(integrity).length === 0 || typeof document === "undefined") return;
  if (typeof HTMLScriptElement === "undefined" || !HTMLScriptElement.supports?.("importmap")) return;
  const map = document.createElement("script");
  map.type = "importmap";
  map.dataset.skyline = "federation";
  map.textContent = JSON.stringify({ imports: {}, integrity });
  document.head.appendChild(map);
}
