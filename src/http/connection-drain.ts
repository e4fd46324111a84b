import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Server as NetServer } from 'node:net';
import type { Socket } from 'node:net';

/** What the drain knows of one open connection. */
interface Connection {
  /** Requests on it whose response has not closed yet (pipelined requests count each). */
  active: number;
  /** `socket.bytesRead` when last looked at: a change is a request arriving, maybe not whole yet. */
  bytesRead: number;
  /** When it last answered something or received a byte (performance.now()). */
  quietSince: number;
}

/**
 * Closes an HTTP server's connections for a SIGTERM drain without losing an answer (docs/design.md §2 "Ops"; RFC 9112
 * §9.6, "Tear-down"). Node's own `server.close()` destroys every connection it deems idle at once, and
 * `closeAllConnections()` every connection at all. Both lose answers under keep-alive load: a request the client sent
 * just before the signal may still sit unread in the kernel (the connection looks idle, and destroying it resets the
 * client); a response whose handler has ended may still be queued for the socket (the client gets half a body); and
 * a client whose answer left before the signal sends its next request on the same connection, into a reset.
 *
 * Here, once the listening socket has closed (below): every response not yet begun says `Connection: close`, so its connection closes after
 * it (RFC 9112 §9.6: the client opens a new one, to another replica); a request arriving on a kept-alive connection
 * is answered the same way; and a connection is closed by the server only once it has answered everything, written
 * everything and received nothing for `quietMs` since then (a client that half-sent its headers and
 * stopped, or an idle pooled connection), so whatever was sent before the signal has been read and answered first.
 *
 * The listening socket stays open for `acceptMs` after the signal, and then until a turn of the event loop accepts no
 * connection: closing it resets every connection the kernel has completed and the process has not accepted yet (the
 * kernel drops its accept queue), and a busy process accepts them only a few a turn of its loop, each turn as long as
 * the requests it runs. A SIGTERM that came while the loop was held by earlier requests reset most of 60 connections
 * that had each sent a whole request (lifecycle review, finding 3). Meanwhile the caller reports not ready (`/readyz`
 * 503), so a load balancer stops sending new connections, and what arrives is answered as before the signal: told
 * `Connection: close` then, a keep-alive client would open a new connection at once, into the accept queue that is
 * about to close.
 */
export class ConnectionDrain {
  private readonly connections = new Map<Socket, Connection>();
  private readonly responses = new Set<ServerResponse>();
  private draining = false;
  /** The listening socket's closing, once the drain has begun. */
  private closing: Promise<void> | undefined;
  /** Connections accepted so far: a turn of the event loop that adds none found the accept queue empty. */
  private accepted = 0;

  /**
   * @param server - the HTTP server, before it accepts its first connection.
   * @param quietMs - how long a connection answering nothing must stay silent before the drain closes it: longer
   *   than a request sent before the signal takes to arrive and be read, short enough for a quick exit.
   * @param pollMs - how often the drain looks at its connections.
   * @param acceptMs - how long the listening socket keeps accepting after the drain begins (DRAIN_ACCEPT_MS), before it
   *   closes at the first turn of the event loop that accepts nothing.
   */
  constructor(
    private readonly server: Server,
    private readonly quietMs = 1_000,
    private readonly pollMs = 50,
    private readonly acceptMs = 1_000,
  ) {
    server.on('connection', (socket: Socket) => {
      this.accepted++;
      this.connections.set(socket, { active: 0, bytesRead: 0, quietSince: performance.now() });
      socket.once('close', () => this.connections.delete(socket));
    });
    // First among the request listeners: the header must be set before any handler can answer.
    server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
      const connection = this.connections.get(req.socket);
      if (connection) connection.active++;
      this.responses.add(res);
      if (this.draining) res.setHeader('Connection', 'close');
      // 'close' follows 'finish' (the last byte handed to the kernel), or ends a response whose client left.
      res.once('close', () => {
        this.responses.delete(res);
        if (!connection) return;
        connection.active--;
        connection.quietSince = performance.now();
      });
    });
  }

  /**
   * Stops accepting connections (after `acceptMs`, once a turn of the event loop accepts none) and resolves once every
   * connection has closed: each after its last answer was written, or (answering nothing) after `quietMs` of silence.
   * A request that never finishes arriving holds it; the caller bounds the drain and then calls {@link cut}.
   */
  async close(): Promise<void> {
    if (!this.closing) {
      // Not `server.close()`: it would destroy the connections that look idle now (above). The listener closes once the
      // connections the kernel completed before the signal have been accepted (acceptBacklog), rather than reset with
      // it. Only then do answers say `Connection: close`: a client told earlier would reconnect into that backlog, and
      // be reset there when it closes; until then a kept-alive connection is used as before.
      this.closing = this.acceptBacklog().then(() => {
        NetServer.prototype.close.call(this.server);
        this.draining = true;
        for (const res of this.responses) if (!res.headersSent) res.setHeader('Connection', 'close');
        const start = performance.now();
        for (const c of this.connections.values()) c.quietSince = Math.max(c.quietSince, start);
      });
    }
    await this.closing;
    return this.closed();
  }

  /**
   * Keeps the listening socket open for `acceptMs`, then until a whole turn of the event loop (a poll for I/O between
   * two checks) accepts no connection, that is, until the kernel's accept queue was seen empty. Bounded: at most
   * `acceptMs` more, so that clients that keep connecting cannot hold the drain.
   */
  private async acceptBacklog(): Promise<void> {
    if (!this.server.listening) return;
    await new Promise((resolve) => setTimeout(resolve, this.acceptMs));
    const until = performance.now() + Math.max(this.acceptMs, 100);
    for (;;) {
      const before = this.accepted;
      await new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
      if (this.accepted === before || performance.now() >= until) return;
    }
  }

  /** Destroys every connection left (the drain's grace period is over). */
  cut(): void {
    for (const socket of this.connections.keys()) socket.destroy();
  }

  private closed(): Promise<void> {
    return new Promise((resolve) => {
      const look = () => {
        const now = performance.now();
        for (const [socket, c] of this.connections) {
          if (c.active > 0 || socket.writableLength > 0) continue;
          if (socket.bytesRead !== c.bytesRead) {
            c.bytesRead = socket.bytesRead;
            c.quietSince = now;
          } else if (now - c.quietSince >= this.quietMs) socket.destroy();
        }
        if (this.connections.size === 0) resolve();
        else setTimeout(look, this.pollMs);
      };
      look();
    });
  }
}
