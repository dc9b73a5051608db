// node --test loader/ : the Module Federation plugin's pure parts, on the shared split vectors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { buildingOf, remoteAssignments, remoteOfRequest, rewriteRemote, skylineFederation } from "./skyline-mf-plugin.js";

const vectors = JSON.parse(readFileSync(new URL("../tests/vectors/split.json", import.meta.url), "utf8"));

test("a remote gets what the loader's split gives its building (vectors)", () => {
  const { apartment, manifest, cases } = vectors.resolve;
  const names = Object.keys(manifest.apartments[apartment].buildings);
  for (const c of cases) {
    const got = remoteAssignments(manifest, apartment, c.user, names, undefined);
    for (const [building, want] of Object.entries(c.expected)) {
      if (want.unit === null) {
        assert.equal(got[building], undefined, `${c.user.id} ${building}`);
        continue;
      }
      assert.equal(got[building].unit.id, want.unit, `${c.user.id} ${building}`);
      assert.equal(got[building].reason, want.reason);
      assert.equal(got[building].bucket, want.bucket);
      const b = manifest.apartments[apartment].buildings[building];
      assert.equal(got[building].stable ? got[building].stable.id : null, b.active_unit || null);
    }
  }
});

test("remotes map to buildings: explicitly, by the unit's container name, by building id", () => {
  const buildings = {
    main: { units: { "checkout@1.0.0": { id: "checkout@1.0.0", federation: { name: "checkout_app" } } } },
    header: { units: {} },
  };
  assert.equal(buildingOf("checkout_app", buildings, undefined), "main");
  assert.equal(buildingOf("header", buildings, undefined), "header");
  assert.equal(buildingOf("nav", buildings, { nav: "header" }), "header");
  assert.equal(buildingOf("nav", buildings, { nav: "gone" }), null);
  assert.equal(buildingOf("unknown", buildings, undefined), null);
});

test("the rewritten remote loads the unit's entry as its federation says", () => {
  const remote = { name: "checkout", version: "1.0.0", type: "global" };
  const unit = { url: "https://edge/b/checkout/remoteEntry.0123.js", federation: { name: "checkout", type: "module" } };
  assert.deepEqual(rewriteRemote(remote, unit), { name: "checkout", type: "module", entry: unit.url });
  const classic = rewriteRemote({ name: "c", entry: "x" }, { url: "u", federation: { type: "var", global_name: "c_g" } });
  assert.deepEqual(classic, { name: "c", entry: "u", type: "var", entryGlobalName: "c_g" });
  assert.deepEqual(rewriteRemote({ name: "p", entry: "x", type: "module" }, { url: "u" }), { name: "p", entry: "u", type: "module" });
});

test("a request id names its remote, by name or alias", () => {
  const remotes = [{ name: "checkout", alias: "co" }, { name: "check" }];
  assert.equal(remoteOfRequest(remotes, "checkout/Cart").name, "checkout");
  assert.equal(remoteOfRequest(remotes, "co/Cart").name, "checkout");
  assert.equal(remoteOfRequest(remotes, "check").name, "check");
  assert.equal(remoteOfRequest(remotes, "checkoutx/Cart"), null);
});

test("the plugin is a plain object with the runtime's hook names", () => {
  const plugin = skylineFederation({ apartment: "shop", manifest: "https://edge/m.json", user: { id: "u" } });
  assert.equal(Object.getPrototypeOf(plugin), Object.prototype);
  assert.equal(plugin.name, "skyline-federation");
  for (const hook of ["beforeRequest", "beforePreloadRemote", "loadEntry", "createScript", "afterLoadRemote", "errorLoadRemote"]) {
    assert.equal(typeof plugin[hook], "function", hook);
  }
  assert.equal(plugin.report.user, "u");
});

test("beforeRequest gives mapped remotes the user's units, late remotes too; without a manifest, nothing changes", async () => {
  const { apartment, manifest, cases } = vectors.resolve;
  const c = cases.find((x) => x.expected.header.reason === "canary");
  const units = (b) => manifest.apartments[apartment].buildings[b].units;
  const realFetch = globalThis.fetch;
  let reads = 0;
  try {
    globalThis.fetch = async () => {
      reads += 1;
      return { ok: true, json: async () => manifest };
    };
    const plugin = skylineFederation({ apartment, manifest: "https://edge/m.json", user: c.user });
    const remotes = [
      { name: "header", entry: "https://built-in.example/header.js" },
      { name: "elsewhere", entry: "https://built-in.example/elsewhere.js" },
    ];
    const args = { id: "header/Menu", options: { remotes }, origin: {} };
    assert.equal(await plugin.beforeRequest(args), args);
    assert.equal(remotes[0].entry, units("header")[c.expected.header.unit].url);
    assert.equal(remotes[1].entry, "https://built-in.example/elsewhere.js");
    assert.equal(plugin.report.remotes.header.reason, "canary");
    assert.equal(plugin.report.remotes.header.bucket, c.expected.header.bucket);
    remotes.push({ name: "footer", entry: "https://built-in.example/footer.js" });
    await plugin.beforeRequest({ id: "footer/Links", options: { remotes }, origin: {} });
    assert.equal(remotes[2].entry, units("footer")[c.expected.footer.unit].url);
    assert.equal(reads, 1); // one manifest read per page load

    globalThis.fetch = async () => ({ ok: false, status: 503 });
    const offline = skylineFederation({ apartment, manifest: "https://edge/m.json", user: c.user });
    const mine = [{ name: "header", entry: "https://built-in.example/header.js" }];
    await offline.beforeRequest({ id: "header/Menu", options: { remotes: mine }, origin: {} });
    assert.equal(mine[0].entry, "https://built-in.example/header.js");
    assert.match(offline.report.error, /503/);
  } finally {
    globalThis.fetch = realFetch;
  }
});
