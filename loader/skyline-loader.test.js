// node --test loader/ : the loader's split against the vectors pytest checks too.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

import {
  BUCKETS,
  beacon,
  bucketIdOf,
  bucketOf,
  canaryOf,
  criteriaExclusion,
  criteriaMatch,
  callLifecycle,
  fnv1a32,
  importMapOf,
  INTEGRITY_PROBE_BAD,
  INTEGRITY_PROBE_GOOD,
  INTEGRITY_PROBE_SOURCE,
  INTEGRITY_PROBE_SRI,
  inPercentage,
  lifecyclesOf,
  moduleIntegrity,
  pinnedAssignment,
  pinnedManifest,
  pinRevision,
  resolve,
  singleSpaProps,
  splitUserOf,
  stableOnly,
  tokenUrl,
  unitFiles,
  vitalsBeacon,
} from "./skyline-loader.js";

const vectors = JSON.parse(readFileSync(new URL("../tests/vectors/split.json", import.meta.url), "utf8"));

test("FNV-1a 32 matches the published reference values", () => {
  assert.equal(fnv1a32(""), 0x811c9dc5);
  assert.equal(fnv1a32("a"), 0xe40c292c);
  assert.equal(fnv1a32("foobar"), 0xbf9cf968);
});

test("hash vectors (UTF-8 bytes, not UTF-16 code units)", () => {
  assert.ok(vectors.hash.length > 0);
  for (const v of vectors.hash) assert.equal(fnv1a32(v.input), v.fnv1a32, JSON.stringify(v.input));
});

test("bucket vectors", () => {
  assert.ok(vectors.buckets.length > 0);
  for (const v of vectors.buckets) {
    const got = bucketOf(v.user, v.apartment, v.building);
    assert.equal(got, v.bucket, JSON.stringify(v));
    assert.ok(got >= 0 && got < BUCKETS);
  }
});

test("percentage vectors", () => {
  for (const v of vectors.percentages) assert.equal(inPercentage(v.bucket, v.percentage), v.in, JSON.stringify(v));
});

test("criteria vectors", () => {
  for (const v of vectors.criteria) {
    assert.equal(criteriaMatch(v.criteria, v.user), v.match, JSON.stringify(v));
    assert.equal(criteriaExclusion(v.criteria, v.user), v.excluded_by, JSON.stringify(v));
  }
});

test("resolve vectors: every building of every user", () => {
  const { apartment, manifest, cases } = vectors.resolve;
  assert.ok(cases.length > 0);
  for (const c of cases) {
    const got = resolve(manifest, apartment, c.user);
    const simple = Object.fromEntries(
      Object.entries(got).map(([b, a]) => [b, { unit: a.unit ? a.unit.id : null, reason: a.reason, bucket: a.bucket }]),
    );
    assert.deepEqual(simple, c.expected, c.user.id);
  }
});

test("the active unit is never its own canary", () => {
  const footer = vectors.resolve.manifest.apartments.shop.buildings.footer;
  assert.ok(footer.units[footer.active_unit].rollout, "vector keeps a rollout on the active unit");
  assert.equal(canaryOf(footer), null);
});

test("raising the percentage only adds users", () => {
  const users = Array.from({ length: 2000 }, (_, i) => `user-${i}`);
  let previous = new Set();
  for (const pct of [1, 5, 25, 50, 100]) {
    const now = new Set(users.filter((u) => inPercentage(bucketOf(u, "shop", "header"), pct)));
    for (const u of previous) assert.ok(now.has(u), `${u} left the canary at ${pct}%`);
    previous = now;
  }
  assert.equal(previous.size, users.length);
});

test("an unknown apartment is an error that names it", () => {
  assert.throws(() => resolve(vectors.resolve.manifest, "nope", { id: "u" }), /"nope"/);
});

test("beacon carries exactly the labels the API accepts", () => {
  const unit = { id: "header@1.1.0", name: "header", version: "1.1.0" };
  assert.deepEqual(beacon("shop", "header", unit, "loaded", 0.1234567891), {
    apartment: "shop",
    building: "header",
    unit: "header",
    version: "1.1.0",
    outcome: "loaded",
    load_seconds: 0.123457,
  });
  assert.deepEqual(Object.keys(beacon("shop", "header", unit, "load_error")), [
    "apartment",
    "building",
    "unit",
    "version",
    "outcome",
  ]);
});

test("the beacon token comes from beacon-token next to the beacons URL, or from beacon_token", () => {
  const page = "https://shop.example/index.html";
  assert.equal(tokenUrl({ beacons: "https://api.example/beacons" }, page), "https://api.example/beacon-token");
  assert.equal(
    tokenUrl({ beacons: "https://api.example/skyline/beacons" }, page),
    "https://api.example/skyline/beacon-token",
  );
  assert.equal(tokenUrl({ beacons: "/beacons" }, page), "https://shop.example/beacon-token");
  assert.equal(
    tokenUrl({ beacons: "https://api.example/beacons", beacon_token: "https://t.example/tok" }, page),
    "https://t.example/tok",
  );
  assert.equal(tokenUrl({}, page), null);
});

test("the integrity probe's SRI is the sha384 of its source", () => {
  const digest = createHash("sha384").update(INTEGRITY_PROBE_SOURCE).digest("base64");
  assert.equal(INTEGRITY_PROBE_SRI, `sha384-${digest}`);
});

test("the two probe URLs are different URLs of the probe's source (data: bodies)", async () => {
  assert.notEqual(INTEGRITY_PROBE_GOOD, INTEGRITY_PROBE_BAD);
  for (const url of [INTEGRITY_PROBE_GOOD, INTEGRITY_PROBE_BAD]) {
    assert.equal(await (await fetch(url)).text(), INTEGRITY_PROBE_SOURCE);
  }
});

const UNIT = {
  id: "catalog@1.1.0",
  url: "https://edge/b/catalog/index.aa.js",
  checksum: "sha384-entry",
  files: {
    "index.js": { url: "https://edge/b/catalog/index.aa.js", integrity: "sha384-entry", kind: "module" },
    "chunk-X.js": { url: "https://edge/b/catalog/chunk-X.js", integrity: "sha384-chunk", kind: "module" },
    "lazy-Y.js": { url: "https://edge/b/catalog/lazy-Y.js", integrity: "sha384-lazy", kind: "module" },
    "index.css": { url: "https://edge/b/catalog/index.bb.css", integrity: "sha384-css", kind: "style" },
    "lazy-Y.css": { url: "https://edge/b/catalog/lazy-Y.css", integrity: "sha384-lazycss", kind: "other" },
  },
};

test("unit files by kind: modules for the import map, styles to link", () => {
  assert.deepEqual(
    unitFiles(UNIT, "style").map((f) => f.url),
    ["https://edge/b/catalog/index.bb.css"],
  );
  assert.equal(unitFiles(UNIT, "module").length, 3);
  // a unit published before `files` existed: nothing but its entry
  assert.deepEqual(unitFiles({ url: "u", checksum: "c" }, "style"), []);
});

test("one import map integrity section for every unit the page may load", () => {
  const stable = {
    id: "catalog@1.0.0",
    url: "https://edge/b/catalog/index.cc.js",
    checksum: "sha384-old",
    files: { "index.js": { url: "https://edge/b/catalog/index.cc.js", integrity: "sha384-old", kind: "module" } },
  };
  const legacy = { id: "footer@1.0.0", url: "https://edge/b/footer/index.js", checksum: "sha384-f" };
  assert.deepEqual(moduleIntegrity([UNIT, stable, legacy, null]), {
    "https://edge/b/catalog/index.aa.js": "sha384-entry",
    "https://edge/b/catalog/chunk-X.js": "sha384-chunk",
    "https://edge/b/catalog/lazy-Y.js": "sha384-lazy",
    "https://edge/b/catalog/index.cc.js": "sha384-old",
  });
  assert.deepEqual(moduleIntegrity([legacy]), {});
});

test("import map vectors: bare specifiers and integrity of the units each user gets", () => {
  const { apartment, cases } = vectors.importmap;
  assert.ok(cases.length > 0);
  const variants = new Set();
  for (const c of cases) {
    const map = importMapOf(apartment, resolve(vectors.resolve.manifest, apartment, c.user));
    assert.deepEqual({ imports: map.imports, integrity: map.integrity }, c.map, JSON.stringify(c.user));
    assert.equal(map.variant, c.variant, JSON.stringify(c.user));
    variants.add(map.variant);
  }
  assert.ok(variants.has("stable") && [...variants].some((v) => v.startsWith("canary:")));
});

test("single-spa lifecycles are told from a Skyline unit", () => {
  const f = async () => {};
  assert.deepEqual(lifecyclesOf({ bootstrap: f, mount: f, unmount: f }), { kind: "single-spa", update: false });
  assert.deepEqual(lifecyclesOf({ bootstrap: [f, f], mount: f, unmount: [f], update: f }), {
    kind: "single-spa",
    update: true,
  });
  assert.deepEqual(lifecyclesOf({ mount: f }), { kind: "skyline", update: false });
  assert.deepEqual(lifecyclesOf({ mount: f, unmount: f }), { kind: "skyline", update: false });
  assert.equal(lifecyclesOf({ bootstrap: f, unmount: f }), null);
  assert.equal(lifecyclesOf({ bootstrap: [], mount: f, unmount: f }).kind, "skyline");
});

test("lifecycle arrays run in order with single-spa props", async () => {
  const seen = [];
  const element = { id: "slot" };
  const context = { apartment: "shop", building: "header", unit: "header@1.1.0", version: "1.1.0", user: { id: "u" } };
  const props = singleSpaProps(context, element);
  assert.equal(props.name, "@shop/header");
  assert.equal(props.domElement, element);
  assert.equal(props.domElementGetter(), element);
  assert.equal(props.version, "1.1.0");
  await callLifecycle(
    [
      async (p) => seen.push(["a", p.name]),
      (p) => seen.push(["b", p.building]),
    ],
    props,
  );
  assert.deepEqual(seen, [["a", "@shop/header"], ["b", "header"]]);
});

test("vitals beacons carry finite, rounded metrics only", () => {
  const unit = { name: "header", version: "1.1.0" };
  assert.deepEqual(vitalsBeacon("shop", "header", unit, { lcp: 1.23456789, cls: 0.1, inp: Number.NaN }), {
    apartment: "shop",
    building: "header",
    unit: "header",
    version: "1.1.0",
    kind: "vitals",
    vitals: { lcp: 1.234568, cls: 0.1 },
  });
});

test("skew protection: the first manifest a page read stays pinned for later loads", () => {
  const pins = new Map();
  const url = "https://edge/skyline/manifests/shop/manifest.json";
  const first = { version: "7", apartments: { shop: { buildings: { header: { active_unit: "header@1.0.0", units: { "header@1.0.0": { id: "header@1.0.0", version: "1.0.0" } } } } } } };
  const promoted = { version: "8", apartments: { shop: { buildings: { header: { active_unit: "header@1.1.0", units: { "header@1.1.0": { id: "header@1.1.0", version: "1.1.0" } } } } } } };
  assert.equal(pinnedManifest(pins, url), null);
  assert.equal(pinRevision(pins, url, first), first);
  // A newer revision read later in the same page does not replace the pin.
  assert.equal(pinRevision(pins, url, promoted), first);
  assert.equal(pinnedManifest(pins, url).version, "7");
  // Another apartment's manifest has its own pin.
  assert.equal(pinRevision(pins, "https://edge/skyline/manifests/other/manifest.json", promoted), promoted);
  // Later loads resolve against the pinned revision's assignments.
  const assignments = resolve(pinnedManifest(pins, url), "shop", { id: "u1" });
  assert.equal(pinnedAssignment(assignments, "7", "header").unit.id, "header@1.0.0");
  assert.throws(() => pinnedAssignment(assignments, "7", "footer"), /revision 7 of the manifest has no building "footer"/);
});

// Keys as api/beacon_tokens.py BucketKeys issues them (key b"0123456789abcdef0123").
const PY_KEY = "eyJrIjoidXNlci0wMDcifQ.RpLrUEtDjMyUanfPYUKpYNNsp0eohXPLDGZC_fTGMbQ";
const PY_KEY_ESCAPED = "eyJrIjoiXHUwMGU5LTQyIn0.c0KmEMxb0xxarS8Bkwl1aBaXTUte9JXpkwUcFa80vJs";

test("a bucket key's id is read as the API wrote it; anything else is no key", () => {
  assert.equal(bucketIdOf(PY_KEY), "user-007");
  assert.equal(bucketIdOf(PY_KEY_ESCAPED), "\u00e9-42");
  for (const bad of [null, "", "garbage", "e30.sig", "eyJrIjo1fQ.sig"]) assert.equal(bucketIdOf(bad), null, bad);
});

test("the split user is the key's id (the shell's attributes kept); no key, no split user", () => {
  const user = { id: "42", region: "eu" };
  assert.deepEqual(splitUserOf(user, PY_KEY), { id: "user-007", region: "eu" });
  assert.equal(splitUserOf(user, null), null);
  assert.equal(splitUserOf(user, "not-a-key"), null);
});

test("a first visit loads every building's stable unit, never the canary", () => {
  const stable = { id: "h@1.0.0", name: "h", version: "1.0.0" };
  const canary = { id: "h@2.0.0", name: "h", version: "2.0.0", rollout: { percentage: 100 } };
  const manifest = {
    apartments: {
      shop: {
        buildings: {
          header: { active_unit: stable.id, units: { [stable.id]: stable, [canary.id]: canary } },
          fresh: { active_unit: null, units: { [canary.id]: canary } },
        },
      },
    },
  };
  const buildings = manifest.apartments.shop.buildings;
  const all = resolve(manifest, "shop", { id: "anyone" });
  assert.equal(all.header.reason, "canary");
  const first = stableOnly(all, buildings);
  assert.equal(first.header.reason, "stable");
  assert.equal(first.header.unit.id, stable.id);
  assert.equal(first.header.excluded_by, "first_visit");
  assert.equal(first.fresh.unit, null);
});
