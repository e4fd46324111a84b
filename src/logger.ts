import { pino } from 'pino';
import type { Logger } from 'pino';

export type { Logger };

/**
 * JSON logger (design.md §2 "Platform conventions"). Never pass patient data: ids and counts only. `destination`
 * lets tests capture lines.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'priorpath' },
      redact: { paths: ['req.headers.authorization', 'headers.authorization', 'token', 'fhirAuthorization'], remove: true },
    },
    destination,
  );
}
