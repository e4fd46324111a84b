import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { outcome } from '../errors.js';

/** The status for a request Node's HTTP parser refused before the app saw it. */
function statusOf(code: string | undefined): number {
  if (code === 'HPE_HEADER_OVERFLOW') return 431;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  return 400;
}

/**
 * The server's `clientError` listener (Node http "Event: 'clientError'"): a request the HTTP parser refuses (a request
 * line or headers over Node's 16 KiB, a malformed header, Content-Length with chunked encoding) gets its status with an
 * OperationOutcome, as every other non-2xx answer does (design.md §4 "Errors"), instead of Node's empty body. The
 * connection is closed after it. A socket already reset, or one already answering, is only destroyed.
 */
export function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  const answering = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
  if (err.code === 'ECONNRESET' || !socket.writable || answering) {
    socket.destroy();
    return;
  }
  const status = statusOf(err.code);
  const reason = status === 431 ? 'Request line or headers too large' : status === 408 ? 'Request not received in time' : 'Malformed HTTP request';
  const body = JSON.stringify(outcome('error', status === 408 ? 'timeout' : 'invalid', reason));
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/fhir+json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
