import type { ServerOptions } from 'node:http';

/**
 * How long a client may take to send one request (Node http `requestTimeout`: request line, headers and body), and
 * its headers alone (`headersTimeout`). Node's defaults, 300 s and 60 s, let a client that sends its body a byte at
 * a time (slowloris) hold a connection, a socket and a handler waiting on the body for five and a half minutes before
 * its 408; a few hundred such clients hold as many sockets. A body here is at most 1 MiB (json-body.ts): in 30 s that
 * is 35 KB/s, far below any EHR's or payer client's link. Past the bound the client is answered 408 with an
 * OperationOutcome (client-error.ts). Expiry is checked every `connectionsCheckingInterval`, so a slow request is
 * answered 30 to 35 s after it began.
 */
export const REQUEST_RECEIVE_MS = 30_000;

/** The options main.ts creates its HTTP server with: the bounds above. */
export const SERVER_TIMEOUTS: Pick<ServerOptions, 'requestTimeout' | 'headersTimeout' | 'connectionsCheckingInterval'> = {
  requestTimeout: REQUEST_RECEIVE_MS,
  // Headers arrive in one or two packets from any real client; the rest of the 30 s is the body's.
  headersTimeout: 10_000,
  connectionsCheckingInterval: 5_000,
};
