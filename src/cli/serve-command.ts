import { loadSettings, SettingsError } from "../config/settings.js";
import { StartupError, startTollgate } from "../main.js";
import { PolicyError } from "../policy/policy.js";

/**
 * `tollgate serve`: validates settings, starts, and on SIGTERM/SIGINT goes not
 * ready, drains and exits 0. Bad configuration exits 2 with a message naming
 * the setting.
 */
export async function serveCommand(): Promise<number> {
  let app: Awaited<ReturnType<typeof startTollgate>>;
  try {
    app = await startTollgate(loadSettings(process.env));
  } catch (err) {
    if (err instanceof SettingsError || err instanceof StartupError || err instanceof PolicyError) {
      process.stderr.write(`tollgate: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      app.log.info({ signal }, "signal received");
      app.stop().then(
        () => resolve(0),
        (err: Error) => {
          app.log.error({ err: { message: err.message } }, "shutdown failed");
          resolve(1);
        },
      );
    };
    process.on("SIGHUP", () => {
      app.log.info({ signal: "SIGHUP" }, "signal received: reloading policy");
      void app.reloadPolicy();
    });
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}
