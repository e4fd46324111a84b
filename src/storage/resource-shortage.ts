/**
 * SQLSTATEs meaning "the database cannot take this write right now", not "this statement is wrong": class 53
 * (insufficient resources: 53100 disk_full, 53200 out_of_memory, 53300 too_many_connections, 53400
 * configuration_limit_exceeded) and 58030 io_error (the disk refused a read or write: a file system remounted
 * read-only after an error, a volume detached). Nothing of the failed statement's transaction was stored, and once the
 * operator frees space or fixes the volume the same request succeeds: a 503 to resend, and the write-behind queue keeps
 * its records and retries, as for an unreachable server. Answered as an unclassified error they were a 500 "Internal
 * error" for every PAS request, and the hooks' queued assertions were dropped as records "the database refuses".
 */
export function isResourceShortage(code: unknown): boolean {
  return typeof code === 'string' && (code.startsWith('53') || code === '58030');
}
