import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { redactUrl, redactUserInfo } from "./redact.ts";

describe("redactUrl", () => {
  const cases: Array<{ name: string; url: string | URL; want: string }> = [
    { name: "user and password", url: "https://u:p@h:1/x?y=1", want: "https://REDACTED:REDACTED@h:1/x?y=1" },
    { name: "user only", url: "http://token@h/x", want: "http://REDACTED@h/x" },
    { name: "password only", url: "http://:secret@h/", want: "http://REDACTED:REDACTED@h/" },
    {
      name: "no user-info: unchanged, not normalised",
      url: "https://h:9090/api/v1/write",
      want: "https://h:9090/api/v1/write",
    },
    { name: "query parameters are kept", url: "http://h/metrics?token=t", want: "http://h/metrics?token=t" },
    {
      name: "a URL object",
      url: new URL("http://a:b@127.0.0.1:8080/metrics"),
      want: "http://REDACTED:REDACTED@127.0.0.1:8080/metrics",
    },
    { name: "a URL object without user-info", url: new URL("http://127.0.0.1:8080"), want: "http://127.0.0.1:8080/" },
    { name: "not a URL, user-info hidden all the same", url: "//u :p@h", want: "//REDACTED@h" },
    { name: "not a URL, without user-info", url: "not a url", want: "not a url" },
  ];
  for (const c of cases) it(c.name, () => assert.equal(redactUrl(c.url), c.want));
});

describe("redactUserInfo", () => {
  it("hides every user-info in a message", () => {
    assert.equal(
      redactUserInfo("connect to http://u:p@proxy:3128 via https://x:y@other/ failed"),
      "connect to http://REDACTED@proxy:3128 via https://REDACTED@other/ failed",
    );
  });
  it("leaves text without user-info alone, also an @ outside a URL", () => {
    const text = "getaddrinfo ENOTFOUND h for https://h/x (user@example)";
    assert.equal(redactUserInfo(text), text);
  });
});
