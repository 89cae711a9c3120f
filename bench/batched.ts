/**
 * The three-process admission row of batched limits: three Tollgates (shipped
 * defaults) on the bench's Redis with bench/policy-batched.yaml, each flooded
 * at once with CheckRateLimit calls for one subject (2.5 × the quota in all,
 * 32 in flight each). Admitted must lie between the quota minus the bound
 * `tollgate check-config --replicas 3` prints and the quota; after
 * flush_interval the count in Redis must equal the admitted calls.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { TollgateService } from "../src/gen/tollgate/v1/tollgate_service_pb.js";
import { type BenchRedis, CLI, startTollgate } from "./processes.js";

/** The row's name, as run.ts's targets refer to it. */
export const ADMISSION_ROW = "batched quota, 3 processes: admitted vs bound";
const QUOTA = 6000;
const PER_PROCESS = 5000;
const IN_FLIGHT = 32;

/** What the three-process run measured. */
export interface Admission {
  admitted: number;
  limit: number;
  /** check-config's bound for 3 replicas (R × take). */
  bound: number;
  /** The quota's count in Redis after flush_interval. */
  counted: number;
  seconds: number;
}

/** Runs the three processes against `redis` (see the file comment). */
export async function admissionBench(
  root: string,
  redis: BenchRedis,
  env: Record<string, string>,
  scratch: string,
): Promise<Admission> {
  const policy = join(root, "bench/policy-batched.yaml");
  const printed = execFileSync(process.execPath, [CLI, "check-config", policy, "--replicas", "3"], {
    encoding: "utf8",
  });
  const bound = Number(/R = 3: − (\d+)\)/.exec(printed)?.[1] ?? Number.NaN);
  const procs = await Promise.all(
    [0, 1, 2].map((i) =>
      startTollgate(
        { ...env, TOLLGATE_POLICY_FILE: policy },
        [],
        undefined,
        join(scratch, `batched-${i}.log`),
      ),
    ),
  );
  const subject = `bench-batched-${Date.now()}`;
  try {
    const started = Date.now();
    let admitted = 0;
    await Promise.all(
      procs.map(async (p) => {
        const c = createClient(
          TollgateService,
          createGrpcTransport({ baseUrl: `http://127.0.0.1:${p.port}` }),
        );
        let next = 0;
        await Promise.all(
          Array.from({ length: IN_FLIGHT }, async () => {
            while (next < PER_PROCESS) {
              next++;
              if ((await c.checkRateLimit({ subject })).allowed) admitted++;
            }
          }),
        );
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    await new Promise((r) => setTimeout(r, 1500)); // flush_interval (1 s) and the sweep
    const keys = await redis.client.keys(`*rl:{*${subject}*}:batched-daily.*`);
    const value = keys[0] ? await redis.client.get(keys[0]) : undefined;
    const counted = Number(value?.split(":")[1] ?? Number.NaN);
    return { admitted, limit: QUOTA, bound, counted, seconds };
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
}
