// node --test loader/ : the loader's split against the vectors pytest checks too.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import {
  BUCKETS,
  beacon,
  bucketOf,
  canaryOf,
  criteriaExclusion,
  criteriaMatch,
  fnv1a32,
  inPercentage,
  resolve,
  tokenUrl,
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
