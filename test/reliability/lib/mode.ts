// Short mode for `make test`, long mode for `npm run soak` (SOAK=1): the same suites, longer outages and more cases.
export const SOAK = process.env.SOAK === "1" || process.env.SOAK === "true";

/** Picks the short or the soak value. */
export function soak<T>(short: T, long: T): T {
  return SOAK ? long : short;
}
