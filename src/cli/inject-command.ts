import { parseArgs } from "node:util";
import { startInjectServer } from "../inject/inject-server.js";
import {
  defaultSidecarTemplate,
  loadSidecarTemplate,
  SidecarTemplateError,
} from "../inject/sidecar-template.js";
import { createLogger } from "../observability/logger.js";

const USAGE = `Usage: tollgate inject --tls-cert FILE --tls-key FILE [options]

Serves the Kubernetes mutating admission webhook that adds Tollgate as a native
sidecar to pods that opt in (see docs/kubernetes.md). The Helm chart runs it.

Options:
  --addr HOST:PORT     listen address (default 127.0.0.1:8443; the chart uses 0.0.0.0:8443)
  --tls-cert FILE      PEM certificate the API server verifies (re-read when it changes)
  --tls-key FILE       PEM private key of --tls-cert
  --sidecar FILE       JSON { container, volumes } to inject (the chart renders it);
                       default: the built-in sidecar, equal to the chart's defaults
  --image IMAGE        image of the built-in sidecar (ignored with --sidecar)
  --log-level LEVEL    pino log level (default info)
`;

/**
 * `tollgate inject`: runs the injector until SIGTERM/SIGINT, then stops
 * accepting and exits 0. Bad flags or an unusable sidecar file exit 2.
 */
export async function injectCommand(args: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        addr: { type: "string", default: "127.0.0.1:8443" },
        "tls-cert": { type: "string" },
        "tls-key": { type: "string" },
        sidecar: { type: "string" },
        image: { type: "string" },
        "log-level": { type: "string", default: "info" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`tollgate inject: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const cert = values["tls-cert"];
  const key = values["tls-key"];
  if (typeof cert !== "string" || typeof key !== "string") {
    // The API server only calls webhooks over HTTPS: there is no plaintext mode.
    process.stderr.write(`tollgate inject: --tls-cert and --tls-key are required\n${USAGE}`);
    return 2;
  }
  const log = createLogger(String(values["log-level"]));
  let template: ReturnType<typeof defaultSidecarTemplate>;
  try {
    template =
      typeof values.sidecar === "string"
        ? loadSidecarTemplate(values.sidecar)
        : defaultSidecarTemplate(typeof values.image === "string" ? values.image : undefined);
  } catch (err) {
    if (err instanceof SidecarTemplateError) {
      process.stderr.write(`tollgate inject: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  let server: Awaited<ReturnType<typeof startInjectServer>>;
  try {
    server = await startInjectServer({
      addr: String(values.addr),
      certFile: cert,
      keyFile: key,
      template,
      log,
    });
  } catch (err) {
    process.stderr.write(`tollgate inject: cannot start: ${(err as Error).message}\n`);
    return 2;
  }
  log.info({ port: server.port, image: template.container.image }, "injector serving");
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, "injector stopping");
      void server.close().then(() => resolve(0));
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}
