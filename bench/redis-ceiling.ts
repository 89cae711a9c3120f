/**
 * Baseline 3, for the record: Redis's own ceiling for a small limiter script
 * (INCRBY + PEXPIRE on first hit), by `redis-benchmark` EVALSHA at 50 clients,
 * unpipelined and pipelined 16 deep, on random keys.
 */
import { execFile } from "node:child_process";
import type { BenchRedis } from "./processes.js";

const LIMITER =
  "local c = redis.call('INCRBY', KEYS[1], ARGV[1]) " +
  "if c == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return c";

/** Requests/s of EVALSHA unpipelined and pipelined (-P 16). */
export interface RedisCeiling {
  unpipelined: number;
  pipelined: number;
}

function bench(port: number, sha: string, requests: number, pipeline: number): Promise<number> {
  const args = [
    "-h",
    "127.0.0.1",
    "-p",
    String(port),
    "-c",
    "50",
    "-n",
    String(requests),
    "-P",
    String(pipeline),
    "-r",
    "100000",
    "-q",
    "EVALSHA",
    sha,
    "1",
    "bench:rl:__rand_int__",
    "1",
    "1000",
  ];
  return new Promise((resolve, reject) => {
    execFile("redis-benchmark", args, { timeout: 60_000 }, (err, stdout) => {
      if (err) return reject(err);
      const m = /([\d.]+) requests per second/.exec(stdout);
      if (!m) return reject(new Error(`unexpected redis-benchmark output: ${stdout.slice(-500)}`));
      resolve(Number(m[1]));
    });
  });
}

/** Measures the ceiling on `redis` with `requests` per mode. */
export async function redisCeiling(redis: BenchRedis, requests: number): Promise<RedisCeiling> {
  const sha = String(await redis.client.script("LOAD", LIMITER));
  const unpipelined = await bench(redis.port, sha, requests, 1);
  const pipelined = await bench(redis.port, sha, requests * 4, 16);
  return { unpipelined, pipelined };
}
