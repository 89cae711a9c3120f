/**
 * OpenTelemetry traces: a span per decision (SERVER kind, named after its
 * door), child of the caller's W3C `traceparent` when it sends one, and a
 * child span per store call made while deciding. Exported in batches over
 * OTLP/HTTP to TOLLGATE_OTLP_TRACES_URL; off by default, and then nothing of
 * this runs (the engine and the store guard hold `undefined` and skip it).
 *
 * Span attributes never carry a secret: the door, the decision id, reason,
 * HTTP status, endpoint and key id.
 */
import {
  type Attributes,
  context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { parseTraceParent } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from "@opentelemetry/sdk-trace";

/** Options of createTracing. */
export interface TracingOptions {
  /** OTLP/HTTP traces endpoint, e.g. http://otel-collector:4318/v1/traces. */
  url: string;
  /** Share of new traces sampled (a caller's sampled flag is honoured), 0..1. */
  sampleRatio: number;
  /** `service.name` of the spans. Default "tollgate". */
  serviceName?: string;
  /** `service.version`. */
  serviceVersion?: string;
  /** Longest wait between exports, ms. Default 1000. */
  exportDelayMs?: number;
}

/** Tracing as the engine and the store guard use it. */
export interface Tracing {
  /**
   * Runs `fn` as the span of one decision. `traceparent`, when a valid W3C
   * header, makes it a child of the caller's span. `fn` sets the outcome's
   * attributes on the span it is given.
   */
  decision<T>(
    door: string,
    traceparent: string | undefined,
    fn: (span: Span) => Promise<T>,
  ): Promise<T>;
  /** Runs `fn` as a child span of the current decision; without one, just runs it. */
  child<T>(name: string, attributes: Attributes, fn: () => Promise<T>): Promise<T>;
  /** Exports what is buffered and stops. */
  shutdown(): Promise<void>;
}

/** Starts the tracer provider and its OTLP exporter. */
export function createTracing(o: TracingOptions): Tracing {
  // Parent spans travel through awaits by AsyncLocalStorage, so a store call
  // deep in the key lookup finds the decision's span as its parent.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const provider = new TracerProvider({
    resource: resourceFromAttributes({
      "service.name": o.serviceName ?? "tollgate",
      ...(o.serviceVersion && { "service.version": o.serviceVersion }),
    }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(o.sampleRatio) }),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: new OTLPTraceExporter({ url: o.url }),
        scheduledDelayMillis: o.exportDelayMs ?? 1000,
        // Bounded: a collector that is away costs at most this many spans of memory.
        maxQueueSize: 2048,
      }),
    ],
  });
  const tracer: Tracer = provider.getTracer("tollgate", o.serviceVersion);
  return {
    decision(door, traceparent, fn) {
      const remote = traceparent ? parseTraceParent(traceparent) : null;
      const parent = remote ? trace.setSpanContext(ROOT_CONTEXT, remote) : ROOT_CONTEXT;
      return tracer.startActiveSpan(
        `tollgate.${door}`,
        { kind: SpanKind.SERVER, attributes: { "tollgate.door": door } },
        parent,
        async (span) => {
          try {
            return await fn(span);
          } catch (err) {
            span.recordException({ name: (err as Error).name, message: (err as Error).message });
            span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).name });
            throw err;
          } finally {
            span.end();
          }
        },
      );
    },
    child(name, attributes, fn) {
      if (!trace.getActiveSpan()) return fn();
      return tracer.startActiveSpan(name, { kind: SpanKind.CLIENT, attributes }, async (span) => {
        try {
          return await fn();
        } catch (err) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).name });
          throw err;
        } finally {
          span.end();
        }
      });
    },
    async shutdown() {
      await provider.shutdown();
      context.disable();
    },
  };
}
