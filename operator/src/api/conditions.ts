// Condition types, reasons (CamelCase), skip reasons and Event reasons.

export const ConditionType = {
  /** The MetricsPusher is valid and its sidecar can be rendered. */
  Ready: "Ready",
  /** Every matching workload runs the current config (or rolloutStrategy None). */
  UpToDate: "UpToDate",
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

export const ConditionReason = {
  // Ready
  Valid: "Valid",
  InvalidSpec: "InvalidSpec",
  ImageNotAllowed: "ImageNotAllowed",
  NoMatchingWorkloads: "NoMatchingWorkloads",
  // UpToDate
  AllUpdated: "AllUpdated",
  RollingOut: "RollingOut",
  RolloutRateLimited: "RolloutRateLimited",
  WaitingForWebhook: "WaitingForWebhook",
  OwnedByAnotherController: "OwnedByAnotherController",
  RolloutDisabled: "RolloutDisabled",
  Deleting: "Deleting",
} as const;
export type ConditionReason = (typeof ConditionReason)[keyof typeof ConditionReason];

/** Why the webhook left a pod alone; the `reason` label of the skip metric and the InjectionSkipped Event. */
export const SkipReason = {
  NotPodCreate: "NotPodCreate",
  NamespaceDisabled: "NamespaceDisabled",
  SystemNamespace: "SystemNamespace",
  NamespaceNotWatched: "NamespaceNotWatched",
  OptedOut: "OptedOut",
  NoMatchingPusher: "NoMatchingPusher",
  ExplicitPusherNotFound: "ExplicitPusherNotFound",
  AlreadyInjected: "AlreadyInjected",
  ContainerNameTaken: "ContainerNameTaken",
  ImageNotAllowed: "ImageNotAllowed",
  PusherBeingDeleted: "PusherBeingDeleted",
  WouldBlockCompletion: "WouldBlockCompletion",
  /** hostNetwork pod: 127.0.0.1 is the node's, so the sidecar would scrape and expose the node's ports. */
  HostNetwork: "HostNetwork",
  /** The rendered sidecar would exit at start: the pusher's own parse refuses its environment. */
  InvalidSpec: "InvalidSpec",
  /** spec.scrape.discovery reads the pod's prometheus.io/* annotations or ports, and they say something unusable (a
   * port outside 1-65535, a path that is not a path, too many targets). */
  InvalidDiscovery: "InvalidDiscovery",
  InternalError: "InternalError",
} as const;
export type SkipReason = (typeof SkipReason)[keyof typeof SkipReason];

export const EventReason = {
  Injected: "Injected",
  InjectionSkipped: "InjectionSkipped",
  MultipleMatches: "MultipleMatches",
  RolloutTriggered: "RolloutTriggered",
  DriftRepaired: "DriftRepaired",
  SidecarRemoved: "SidecarRemoved",
  InvalidSpec: "InvalidSpec",
} as const;
export type EventReason = (typeof EventReason)[keyof typeof EventReason];

export const EventType = { Normal: "Normal", Warning: "Warning" } as const;
export type EventType = (typeof EventType)[keyof typeof EventType];
