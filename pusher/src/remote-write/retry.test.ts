import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { BACKOFF_MAX_MS, RETRY_AFTER_MAX_MS, backoffMs, decide, parseRetryAfter } from "./retry.ts";

const NOW = Date.parse("2026-11-27T04:00:00Z");
const half = (): number => 0.5;

describe("decide, per status code", () => {
  const cases: { status: number; action: "success" | "retry" | "drop"; reason?: string }[] = [
    { status: 200, action: "success" },
    { status: 204, action: "success" },
    { status: 299, action: "success" },
    { status: 400, action: "drop" },
    { status: 401, action: "drop" },
    { status: 403, action: "drop" },
    { status: 404, action: "drop" },
    { status: 408, action: "drop" },
    { status: 409, action: "drop" },
    { status: 413, action: "drop" },
    { status: 415, action: "drop" },
    { status: 422, action: "drop" },
    { status: 429, action: "retry", reason: "rate_limited" },
    { status: 500, action: "retry", reason: "server_error" },
    { status: 502, action: "retry", reason: "server_error" },
    { status: 503, action: "retry", reason: "server_error" },
    { status: 504, action: "retry", reason: "server_error" },
    { status: 599, action: "retry", reason: "server_error" },
    { status: 302, action: "drop" },
    { status: 100, action: "drop" },
  ];
  for (const c of cases) {
    it(`${c.status} → ${c.action}`, () => {
      const d = decide({ kind: "response", status: c.status }, 0, NOW, half);
      assert.equal(d.action, c.action);
      if (d.action === "retry") assert.equal(d.reason, c.reason);
      if (d.action === "drop") assert.equal(d.status, c.status);
    });
  }

  it("network errors, timeouts and unreadable credentials are retried with backoff", () => {
    for (const reason of ["network", "timeout", "credentials"] as const) {
      const d = decide({ kind: "error", reason }, 3, NOW, half);
      assert.deepEqual(d, { action: "retry", reason, delayMs: backoffMs(3, half) });
    }
  });

  it("429 waits Retry-After in seconds", () => {
    assert.deepEqual(decide({ kind: "response", status: 429, retryAfter: "3" }, 0, NOW, half), {
      action: "retry",
      reason: "rate_limited",
      delayMs: 3000,
    });
  });

  it("429 waits until a Retry-After HTTP date", () => {
    const at = new Date(NOW + 7000).toUTCString();
    const d = decide({ kind: "response", status: 429, retryAfter: at }, 0, NOW, half);
    assert.equal(d.action, "retry");
    assert.equal(d.action === "retry" && d.delayMs, 7000);
  });

  it("429 without (or with a bad) Retry-After backs off", () => {
    for (const retryAfter of [undefined, "soon", "-1", "1.5"]) {
      const d = decide({ kind: "response", status: 429, retryAfter }, 2, NOW, half);
      assert.deepEqual(d, { action: "retry", reason: "rate_limited", delayMs: backoffMs(2, half) }, String(retryAfter));
    }
  });

  it("503 with Retry-After honours it; a huge Retry-After is capped", () => {
    assert.equal(
      (decide({ kind: "response", status: 503, retryAfter: "2" }, 0, NOW) as { delayMs: number }).delayMs,
      2000,
    );
    assert.equal(
      (decide({ kind: "response", status: 429, retryAfter: "86400" }, 0, NOW) as { delayMs: number }).delayMs,
      RETRY_AFTER_MAX_MS,
    );
  });

  it("Retry-After never shortens the backoff: 0, a past date or garbage wait at least backoffMs(retry)", () => {
    const past = "Fri, 27 Nov 2026 03:59:00 GMT"; // a minute before NOW, the injected clock
    for (const retryAfter of ["0", past, "garbage", "", " 0 "]) {
      for (const retry of [0, 1, 4, 10]) {
        for (const status of [429, 503]) {
          const d = decide({ kind: "response", status, retryAfter }, retry, NOW, half);
          assert.equal(d.action, "retry");
          assert.equal(
            d.action === "retry" && d.delayMs,
            backoffMs(retry, half),
            `${status}, Retry-After ${JSON.stringify(retryAfter)}, retry ${retry}`,
          );
        }
      }
    }
  });

  it("Retry-After shorter than the backoff waits the backoff; longer waits Retry-After", () => {
    // Retry 8: backoff 5 s (random 1). Retry-After 1 s is shorter; 7 s is longer.
    const one = () => 1;
    assert.equal(
      (decide({ kind: "response", status: 429, retryAfter: "1" }, 8, NOW, one) as { delayMs: number }).delayMs,
      5000,
    );
    assert.equal(
      (decide({ kind: "response", status: 429, retryAfter: "7" }, 8, NOW, one) as { delayMs: number }).delayMs,
      7000,
    );
    const soon = new Date(NOW + 2000).toUTCString();
    assert.equal(
      (decide({ kind: "response", status: 429, retryAfter: soon }, 8, NOW, one) as { delayMs: number }).delayMs,
      5000,
    );
  });

  it("a 4xx with Retry-After is still dropped", () => {
    assert.equal(decide({ kind: "response", status: 400, retryAfter: "1" }, 0, NOW).action, "drop");
  });
});

describe("backoffMs", () => {
  it("starts at 30 ms and doubles, with jitter within [base/2, base]", () => {
    assert.equal(
      backoffMs(0, () => 1),
      30,
    );
    assert.equal(
      backoffMs(0, () => 0),
      15,
    );
    assert.equal(
      backoffMs(1, () => 1),
      60,
    );
    assert.equal(
      backoffMs(4, () => 1),
      480,
    );
  });
  it("is capped at 5 s", () => {
    assert.equal(
      backoffMs(8, () => 1),
      BACKOFF_MAX_MS,
    );
    assert.equal(
      backoffMs(1000, () => 1),
      BACKOFF_MAX_MS,
    );
    assert.equal(
      backoffMs(1000, () => 0),
      BACKOFF_MAX_MS / 2,
    );
  });
  it("is random between retries", () => {
    const seen = new Set(Array.from({ length: 50 }, () => backoffMs(6)));
    assert.ok(seen.size > 5, `jitter produced only ${[...seen].join(",")}`);
    for (const v of seen) assert.ok(v >= 960 && v <= 1920, String(v));
  });
});

describe("parseRetryAfter", () => {
  it("reads seconds and HTTP dates", () => {
    assert.equal(parseRetryAfter("0", NOW), 0);
    assert.equal(parseRetryAfter(" 120 ", NOW), 120_000);
    assert.equal(parseRetryAfter("Fri, 27 Nov 2026 04:00:05 GMT", NOW), 5000);
    assert.equal(parseRetryAfter("Fri, 27 Nov 2026 03:59:00 GMT", NOW), 0, "a date in the past means now");
  });
  it("ignores what it cannot read", () => {
    for (const v of [undefined, "", "soon", "1.5", "-3", "12 34"])
      assert.equal(parseRetryAfter(v, NOW), undefined, String(v));
  });
});
