import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A handler for the stub EHR; `hold` keeps a response open (never answered) until the EHR stops. */
export type EhrHandler = (req: http.IncomingMessage, res: http.ServerResponse, hold: (res: http.ServerResponse) => void) => void;

/**
 * A real HTTP EHR on a free loopback port, for tests of how a hook copes with what comes over the wire (design.md §4
 * "Prefetch"): the handler decides each answer. `stop()` ends the responses it holds and closes every connection, so a
 * test file never leaves a socket open.
 */
export async function startHttpEhr(handler: EhrHandler): Promise<{ base: string; stop: () => Promise<void> }> {
  const held = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => handler(req, res, (r) => void held.add(r)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: async () => {
      for (const r of held) r.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
