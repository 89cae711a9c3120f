import { type DestinationStream, type Logger, pino } from "pino";

/**
 * Paths pino censors in every log line. Any object logged under these names
 * (at the top level or one level down) has the value replaced.
 */
export const REDACT_PATHS = [
  "secret",
  "*.secret",
  "apiKey",
  "*.apiKey",
  "api_key",
  "*.api_key",
  "currentSecret",
  "*.currentSecret",
  "authorization",
  "*.authorization",
  'headers["x-api-key"]',
  '*.headers["x-api-key"]',
  'headers["authorization"]',
  "pepper",
  "*.pepper",
  "token",
  "*.token",
  "managementToken",
  "*.managementToken",
  "redisUrl",
  "*.redisUrl",
  "password",
  "*.password",
];

/** Creates the process logger. `destination` lets tests read the log through a sink. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "tollgate" },
      redact: { paths: REDACT_PATHS, censor: "[REDACTED]" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

export type { Logger };
