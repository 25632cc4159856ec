export * from "./v1alpha1.ts";
export * from "./keys.ts";
export * from "./conditions.ts";
export * from "./quantity.ts";
