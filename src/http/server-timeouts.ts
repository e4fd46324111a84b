import type { ServerOptions } from 'node:http';

/**
 * How long a client may take to send one request (Node http `requestTimeout`: request line, headers and body), and
 * its headers alone (`headersTimeout`). Node's defaults, 300 s and 60 s, let a client that sends its body a byte at
 * a time (slowloris) hold a connection, a socket and a handler waiting on the body for five and a half minutes before
 * its 408; a few hundred such clients hold as many sockets. A body here is at most 1 MiB unless the payer raised
 * ATTACHMENT_BODY_MAX_BYTES (json-body.ts): 30 s for 1 MiB is 35 KB/s, far below any EHR's or payer client's link.
 * A raised limit gets time at {@link SLOWEST_UPLOAD_BYTES_PER_S} (8 MiB: 128 s), so a clinic's slow uplink can still
 * send a scanned document. Past the bound the client is answered 408 with an OperationOutcome (client-error.ts).
 * Expiry is checked every `connectionsCheckingInterval`, so a slow request is answered up to 5 s after its bound.
 */
export const REQUEST_RECEIVE_MS = 30_000;

/** The slowest upload a largest body is given time for: 64 KiB/s (about 0.5 Mbit/s). */
export const SLOWEST_UPLOAD_BYTES_PER_S = 65_536;

/** The options serve.ts creates its HTTP server with, for the largest body the service takes (`largestBodyBytes`). */
export function serverTimeouts(largestBodyBytes: number): Pick<ServerOptions, 'requestTimeout' | 'headersTimeout' | 'connectionsCheckingInterval'> {
  return {
    requestTimeout: Math.max(REQUEST_RECEIVE_MS, Math.ceil(largestBodyBytes / SLOWEST_UPLOAD_BYTES_PER_S) * 1000),
    // Headers arrive in one or two packets from any real client; the rest is the body's.
    headersTimeout: 10_000,
    connectionsCheckingInterval: 5_000,
  };
}
