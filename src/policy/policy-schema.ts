import { z } from "zod";

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const SCOPE = /^[A-Za-z0-9:._/*-]{1,128}$/;
const METHOD = /^([A-Z]{1,16}|\*)$/;

/** A tier: a class of keys (plan) with its own limits. */
const tierSchema = z.strictObject({
  /** Human description shown by check-config. */
  description: z.string().max(256).optional(),
});

/** An endpoint rule: which requests it matches and what they need. */
const endpointSchema = z.strictObject({
  name: z.string().regex(NAME, "must be 1..64 of [A-Za-z0-9._-], starting alphanumeric"),
  method: z
    .union([z.string().regex(METHOD), z.array(z.string().regex(METHOD)).min(1).max(16)])
    .default("*"),
  path: z.string().min(1).max(512).startsWith("/", "must start with '/'"),
  scopes: z.array(z.string().regex(SCOPE, "invalid scope")).max(32).default([]),
});

/** The policy file, version 1. Unknown fields are refused so typos cannot silently disable rules. */
export const policySchema = z
  .strictObject({
    version: z.literal(1),
    default_tier: z.string().regex(NAME),
    tiers: z
      .record(
        z.string().regex(NAME, "tier names are 1..64 of [A-Za-z0-9._-]"),
        tierSchema.nullable(),
      )
      .refine((t) => Object.keys(t).length > 0, "at least one tier is required")
      .refine((t) => Object.keys(t).length <= 64, "at most 64 tiers"),
    endpoints: z.array(endpointSchema).max(1024).default([]),
  })
  .superRefine((p, ctx) => {
    if (!(p.default_tier in p.tiers)) {
      ctx.addIssue({
        code: "custom",
        path: ["default_tier"],
        message: `"${p.default_tier}" is not a tier`,
      });
    }
    const seen = new Set<string>();
    p.endpoints.forEach((e, i) => {
      if (seen.has(e.name)) {
        ctx.addIssue({
          code: "custom",
          path: ["endpoints", i, "name"],
          message: `duplicate endpoint "${e.name}"`,
        });
      }
      seen.add(e.name);
    });
  });

/** The policy file as parsed. */
export type PolicyFile = z.infer<typeof policySchema>;
