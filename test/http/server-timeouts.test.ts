/**
 * The time a client has to send its request (src/http/server-timeouts.ts): 30 s for the contract's 1 MiB bodies (a
 * slowloris body is answered 408 then, test/reliability/slow-client), and, when the payer raises
 * ATTACHMENT_BODY_MAX_BYTES to take scanned documents, time to send the largest body at 64 KiB/s, so a clinic's slow
 * uplink is not cut off half-way through an 8 MiB PAS request.
 */
import { describe, expect, it } from 'vitest';
import { serverTimeouts } from '../../src/http/server-timeouts.js';
import { loadConfig } from '../../src/config.js';

describe('request receive bounds', () => {
  it('default limits: 30 s for the whole request, 10 s for its headers', () => {
    const t = serverTimeouts(loadConfig({}).attachmentBodyMaxBytes);
    expect(t).toMatchObject({ requestTimeout: 30_000, headersTimeout: 10_000 });
  });

  it('a raised attachment limit gets the time its largest body takes at 64 KiB/s', () => {
    expect(serverTimeouts(loadConfig({ ATTACHMENT_BODY_MAX_BYTES: String(8 * 1_048_576) }).attachmentBodyMaxBytes).requestTimeout).toBe(128_000);
    expect(serverTimeouts(16 * 1_048_576).requestTimeout).toBe(256_000);
  });
});
