/**
 * Severities of events and alerts, least to most serious. Part of the policy
 * model (detection rules name a rule's severity and a webhook's minimum), so
 * the events domain takes them from here and policy imports nothing of events.
 */
export const SEVERITIES = ["info", "low", "medium", "high", "critical"] as const;

/** One of SEVERITIES. */
export type Severity = (typeof SEVERITIES)[number];
