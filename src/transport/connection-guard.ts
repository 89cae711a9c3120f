/**
 * Every connection accepted on the RPC ports, from accept to close. The RPC
 * engines never listen themselves — the sniffer (or the TLS front) hands them
 * sockets — so nothing in Node or grpc-js knows all of them: this does. It
 * refuses connections beyond the cap (one descriptor each, so the cap keeps
 * descriptors for the admin port and Redis), and destroys whatever is left at
 * shutdown.
 */
import type { Socket } from "node:net";
import type { PortName, TransportObserver } from "./transport-observer.js";

/** Options of a ConnectionGuard. */
export interface ConnectionGuardOptions {
  /** Most open connections across every port it guards. */
  maxConnections: number;
  observer: TransportObserver;
}

/** Admits, counts and finally destroys the RPC ports' connections. */
export class ConnectionGuard {
  private readonly open = new Set<Socket>();
  private readonly max: number;
  private readonly observer: TransportObserver;

  constructor(o: ConnectionGuardOptions) {
    this.max = o.maxConnections;
    this.observer = o.observer;
  }

  /** Open connections. */
  get size(): number {
    return this.open.size;
  }

  /**
   * Takes `socket`, just accepted on `port`, into account; when the cap is
   * reached it is destroyed at once (the client sees the connection close)
   * and false is returned.
   */
  admit(socket: Socket, port: PortName): boolean {
    if (this.open.size >= this.max) {
      socket.destroy();
      this.observer.connectionRefused(port, this.max);
      return false;
    }
    this.open.add(socket);
    this.observer.connectionOpened(port);
    socket.once("close", () => {
      this.open.delete(socket);
      this.observer.connectionClosed(port);
    });
    return true;
  }

  /** Destroys every open connection (shutdown, once the drain is over). */
  destroyAll(): void {
    for (const socket of this.open) socket.destroy();
  }
}
