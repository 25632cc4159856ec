// The one way the pusher hides credentials in what it logs: the user-info of a URL (`user:password@`). Query
// parameters are logged as they are (no URL the pusher reads carries a token in one; tokens come from files).

// From `//` to the first `@` without a `/` between: user-info, also in a string that is not a valid URL.
const USER_INFO = /\/\/[^/@]*@/g;

/** The URL with its user name and password (when there is one) replaced by REDACTED, for logs. */
export function redactUrl(url: string | URL): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return redactUserInfo(String(url));
  }
  if (u.username === "" && u.password === "") return typeof url === "string" ? url : u.toString();
  u.username = "REDACTED";
  if (u.password !== "") u.password = "REDACTED";
  return u.toString();
}

/** Hides every URL user-info in free text, e.g. an error message that quotes a proxy URL. */
export function redactUserInfo(text: string): string {
  return text.replace(USER_INFO, "//REDACTED@");
}
