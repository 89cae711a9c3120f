/**
 * TLS for the RPC ports: TLS 1.3 only, ALPN h2 and http/1.1, optional mTLS,
 * and certificates reloaded from disk when they change (cert-manager rotates
 * mounted Secrets in place). A reload that fails keeps the previous context.
 */
import { type FSWatcher, readFileSync, watch } from "node:fs";
import { basename, dirname } from "node:path";
import { createSecureContext, type SecureContext, type TlsOptions } from "node:tls";

/** Files of the TLS identity. */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** CA bundle for client certificates (mTLS), or empty. */
  clientCaFile: string;
}

/** Server options common to every TLS listener. */
export function tlsServerOptions(files: TlsFiles): TlsOptions {
  return {
    minVersion: "TLSv1.3",
    ALPNProtocols: ["h2", "http/1.1"],
    requestCert: files.clientCaFile !== "",
    rejectUnauthorized: files.clientCaFile !== "",
    ...contextOptions(files),
  };
}

function contextOptions(files: TlsFiles): TlsOptions {
  return {
    cert: readFileSync(files.certFile),
    key: readFileSync(files.keyFile),
    ...(files.clientCaFile && { ca: readFileSync(files.clientCaFile) }),
  };
}

/** Builds a fresh secure context from the files (throws if they are unreadable or invalid). */
export function loadSecureContext(files: TlsFiles): SecureContext {
  return createSecureContext({ minVersion: "TLSv1.3", ...contextOptions(files) });
}

/**
 * Watches the certificate files' directories and, after a change (debounced),
 * calls `apply` once the new files load as a valid context, or `onError` when
 * they do not (the caller keeps its current context).
 */
export function watchTlsFiles(
  files: TlsFiles,
  apply: () => void,
  onError: (err: Error) => void,
): () => void {
  const paths = [files.certFile, files.keyFile, files.clientCaFile].filter(Boolean);
  const dirs = new Set(paths.map((f) => dirname(f)));
  const names = new Set(paths.map((f) => basename(f)));
  let timer: NodeJS.Timeout | undefined;
  const watchers: FSWatcher[] = [...dirs].map((d) =>
    watch(d, (_event, changed) => {
      // Only our files, or Kubernetes' `..data` symlink swap of a mounted Secret.
      if (changed && !names.has(String(changed)) && !String(changed).startsWith("..")) return;
      clearTimeout(timer);
      timer = setTimeout(() => {
        try {
          loadSecureContext(files);
          apply();
        } catch (err) {
          onError(err as Error);
        }
      }, 200);
    }),
  );
  return () => {
    clearTimeout(timer);
    for (const w of watchers) w.close();
  };
}
