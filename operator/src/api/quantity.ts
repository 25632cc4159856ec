// Kubernetes quantities. Fields marked x-kubernetes-int-or-string (spec.resources, spec.buffer.disk.sizeLimit) hold
// either a JSON number (268435456) or a string ("256Mi"): every reader goes through parseQuantity, so neither form
// can throw where the other one works.

/** What the apiserver stores in an int-or-string quantity field. */
export type Quantity = number | string;

/** The apiserver's quantity grammar (resource.Quantity: whole exponents only), for the CRD's OpenAPI pattern; RE2
 * and JavaScript read it alike. */
export const QUANTITY_PATTERN =
  "^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?[0-9]+))?$";

const BINARY: Readonly<Record<string, number>> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};
const DECIMAL: Readonly<Record<string, number>> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

/**
 * The value of a quantity in its base unit (bytes, cores): 268435456 and "256Mi" both give 268435456, "500m" gives
 * 0.5. undefined for anything that is not a finite quantity (the caller decides what that means); never throws.
 */
export function parseQuantity(q: unknown): number | undefined {
  if (typeof q === "number") return Number.isFinite(q) ? q : undefined;
  if (typeof q !== "string") return undefined;
  const m = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:(Ki|Mi|Gi|Ti|Pi|Ei)|([numkMGTPE])|[eE]([+-]?\d+))?$/.exec(q.trim());
  if (!m) return undefined;
  const [, sign, digits, binary, decimal, exponent] = m;
  const scale = binary ? BINARY[binary]! : decimal ? DECIMAL[decimal]! : exponent ? 10 ** Number(exponent) : 1;
  const value = (sign === "-" ? -1 : 1) * Number(digits) * scale;
  return Number.isFinite(value) ? value : undefined;
}

/** The string form of a quantity, for objects written back to the apiserver (V1 types say string). */
export function formatQuantity(q: Quantity): string {
  return typeof q === "number" ? String(q) : q;
}
