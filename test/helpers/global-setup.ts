/**
 * Runs once before the suite: checks the suite's real dependencies exist and
 * that the server was built (`npm test` builds first), failing with a clear
 * message instead of skipping anything.
 */
import { existsSync } from "node:fs";
import { hasRedisServer } from "./redis-server.js";

export default function setup(): void {
  if (!existsSync(new URL("../../src/gen/tollgate/v1/tollgate_service_pb.ts", import.meta.url))) {
    throw new Error("generated code is missing: run `npm run build` (npm test does it)");
  }
  if (!hasRedisServer() && !process.env.REDIS_URL) {
    process.stderr.write(
      "warning: redis-server is not installed; Redis tests will try testcontainers and fail without a container runtime. Install it with: apt-get install -y redis-server\n",
    );
  }
}
