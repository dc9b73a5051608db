// node --test loader/ : the loader's overrides section (signed developer overrides and
// import-map-overrides entries), its pure parts. The browser part is tested in Chromium
// (tests/browser/test_overrides.py).
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  applyOverrides,
  importMapOf,
  importMapOverridesOf,
  keptOverrides,
  overrideClaims,
  overrideUrl,
} from "./skyline-loader.js";

// A token shaped as api/overrides.py signs it (the signature is the API's business).
function token(claims, signature = "c2ln") {
  const payload = Buffer.from(JSON.stringify(claims)).toString("base64url");
  return `${payload}.${signature}`;
}

const NOW = 1_800_000_000_000; // ms
const later = NOW / 1000 + 600;
const header = token({ v: 1, a: "shop", b: "header", u: "header@1.1.0", e: later, i: "dev" });
const footer = token({ v: 1, a: "shop", b: "footer", u: "footer@2.0.0", e: later, i: "dev" });
const expired = token({ v: 1, a: "shop", b: "header", u: "header@0.9.0", e: NOW / 1000 - 1, i: "dev" });

test("overrideClaims reads the unverified claims, and null for anything else", () => {
  assert.deepEqual(overrideClaims(header), {
    apartment: "shop",
    building: "header",
    unit: "header@1.1.0",
    expires_at: later,
  });
  assert.equal(overrideClaims("not a token"), null);
  assert.equal(overrideClaims(token({ a: "shop" })), null);
  assert.equal(overrideClaims(undefined), null);
});

test("keptOverrides: the URL's token replaces the stored one of its building; expired ones go", () => {
  const newer = token({ v: 1, a: "shop", b: "header", u: "header@1.2.0", e: later, i: "qa" });
  assert.deepEqual(keptOverrides([header, footer], newer, NOW), [newer, footer]);
  assert.deepEqual(keptOverrides([expired, footer], null, NOW), [footer]);
  assert.deepEqual(keptOverrides([], `${header},${footer}`, NOW), [header, footer]);
  assert.deepEqual(keptOverrides("garbage", null, NOW), []);
  assert.deepEqual(keptOverrides([header], "off", NOW), []);
  assert.deepEqual(keptOverrides([], "junk", NOW), []);
});

test("overrideUrl: the config's, else overrides/unit next to beacons", () => {
  const base = "https://shop.example/page";
  assert.equal(overrideUrl({ beacons: "https://api.example/beacons" }, base), "https://api.example/overrides/unit");
  assert.equal(overrideUrl({ beacons: "/beacons", override: "https://x.example/o" }, base), "https://x.example/o");
  assert.equal(overrideUrl({}, base), null);
});

const stable = { id: "header@1.0.0", name: "header", version: "1.0.0", url: "https://e/h/1.js", checksum: "sha384-s" };
const zero = { id: "header@1.1.0", name: "header", version: "1.1.0", url: "https://e/h/2.js", checksum: "sha384-z" };

test("applyOverrides: only the overridden building changes, with the split's unit as fallback", () => {
  const assignments = {
    header: { building: "header", bucket: 12, reason: "stable", unit: stable, excluded_by: null },
    footer: { building: "footer", bucket: 34, reason: "stable", unit: null, excluded_by: null },
  };
  applyOverrides(assignments, { header: { token: header, unit: zero, source: "skyline" }, main: { unit: zero } });
  assert.deepEqual(assignments.header, {
    building: "header",
    bucket: 12,
    reason: "override",
    unit: zero,
    excluded_by: null,
    fallback: stable,
    override: "skyline",
  });
  assert.equal(assignments.footer.reason, "stable");
  assert.equal(assignments.main, undefined);
  // The bare specifier names the override.
  assert.equal(importMapOf("shop", assignments).imports["@shop/header"], zero.url);
  assert.equal(importMapOf("shop", assignments).integrity[zero.url], "sha384-z");
});

test("importMapOverridesOf: entries for this apartment's buildings only, no SRI", () => {
  const map = { imports: { "@shop/header": "http://localhost:8080/header.js", "@other/header": "x", lodash: "y" } };
  const found = importMapOverridesOf("shop", ["header", "footer"], map);
  assert.deepEqual(Object.keys(found), ["header"]);
  assert.equal(found.header.unit.url, "http://localhost:8080/header.js");
  assert.equal(found.header.unit.checksum, undefined);
  assert.equal(found.header.source, "import-map-overrides");
  assert.deepEqual(importMapOverridesOf("shop", ["header"], null), {});
});
