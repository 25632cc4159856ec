import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { V1Endpoint, V1EndpointSlice } from "@kubernetes/client-node";
import { SettledEndpoints, WEBHOOK_SETTLE_MS } from "./webhook-endpoints.ts";

const slice = (...endpoints: V1Endpoint[]): V1EndpointSlice => ({ addressType: "IPv4", endpoints });
const ready = (ip: string): V1Endpoint => ({ addresses: [ip], conditions: { ready: true, serving: true } });
const starting = (ip: string): V1Endpoint => ({ addresses: [ip], conditions: { ready: false, serving: false } });
const leaving = (ip: string): V1Endpoint => ({
  addresses: [ip],
  conditions: { ready: false, serving: true, terminating: true },
});

describe("SettledEndpoints: rolls that need the webhook wait for its Service", () => {
  it("waits while no EndpointSlice was seen, and while no endpoint is ready", () => {
    const s = new SettledEndpoints();
    assert.equal(s.waitMs(0), Infinity);
    s.observe([], 0);
    assert.equal(s.waitMs(60_000), Infinity);
    s.observe([slice(starting("10.0.0.5"))], 1000);
    assert.equal(s.waitMs(60_000), Infinity, "an endpoint that is not ready does not serve the apiserver");
    assert.match(s.describe(60_000), /no ready endpoint/);
  });

  it("opens once a ready endpoint has stayed unchanged for the settle time", () => {
    const s = new SettledEndpoints();
    s.observe([slice(ready("10.0.0.5"))], 1000);
    assert.equal(s.waitMs(1000), WEBHOOK_SETTLE_MS);
    assert.equal(s.waitMs(1000 + WEBHOOK_SETTLE_MS - 1), 1);
    assert.equal(s.waitMs(1000 + WEBHOOK_SETTLE_MS), 0);
    // The same endpoints observed again (a resync, another slice's update) do not restart the wait.
    s.observe([slice(ready("10.0.0.5"))], 5000);
    assert.equal(s.waitMs(1000 + WEBHOOK_SETTLE_MS), 0);
  });

  it("a rolling update of the operator restarts the wait at every change: new replica ready, old one terminating", () => {
    const s = new SettledEndpoints();
    s.observe([slice(ready("10.0.0.5"))], 0);
    assert.equal(s.waitMs(WEBHOOK_SETTLE_MS), 0);
    s.observe([slice(ready("10.0.0.5"), ready("10.0.0.6"))], 20_000);
    assert.equal(s.waitMs(20_000), WEBHOOK_SETTLE_MS, "a new replica (of a new version) joined");
    s.observe([slice(leaving("10.0.0.5"), ready("10.0.0.6"))], 25_000);
    assert.equal(s.waitMs(30_000), 5000, "the old replica is leaving");
    s.observe([slice(ready("10.0.0.6"))], 40_000);
    assert.equal(s.waitMs(40_000 + WEBHOOK_SETTLE_MS), 0);
    assert.match(s.describe(45_000), /1 ready endpoint\(s\), unchanged for 5s of 10s/);
  });

  it("endpoints spread over several slices count together, in any order", () => {
    const s = new SettledEndpoints();
    s.observe([slice(ready("10.0.0.5")), slice(ready("10.0.0.6"))], 0);
    s.observe([slice(ready("10.0.0.6")), slice(ready("10.0.0.5"))], 9000);
    assert.equal(s.waitMs(WEBHOOK_SETTLE_MS), 0, "the same endpoints, listed in another order");
  });
});
