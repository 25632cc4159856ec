import { it } from "node:test";
import assert from "node:assert/strict";
import { ApiException } from "@kubernetes/client-node";
import { apiMessage, apiStatus } from "./errors.ts";

it("apiStatus reads ApiException.code, a watch error's statusCode, and nothing else", () => {
  assert.equal(apiStatus(new ApiException(404, "Message: not found\nHTTP-Code: 404\nBody: {}", {}, {})), 404);
  assert.equal(apiStatus(Object.assign(new Error("watch"), { statusCode: 410 })), 410);
  assert.equal(apiStatus(Object.assign(new Error("socket"), { code: "ECONNREFUSED" })), undefined);
  assert.equal(apiStatus(new Error("plain")), undefined);
  assert.equal(apiStatus(undefined), undefined);
});

it("apiMessage keeps the first line only", () => {
  // ApiException's message is "HTTP-Code: 409\nMessage: ...\nBody: ...\nHeaders: ...".
  assert.equal(apiMessage(new ApiException(409, "Conflict", { big: "x".repeat(5000) }, {})), "HTTP-Code: 409");
  assert.equal(apiMessage(new Error("one line")), "one line");
  assert.equal(apiMessage("a string"), "a string");
});
