/**
 * The service's entry (`node dist/main.js`, npm start, the Docker image). Under `npm start` on Linux it first makes
 * sure the service runs with the image's malloc settings (malloc-relaunch.ts: about 15-25 MiB less resident memory,
 * README "Memory"); the service itself is serve.ts, imported only here, so a process that relaunches loads none of it.
 */
import { mallocRelaunchWanted, onGlibc, relaunchWithMallocEnv } from './malloc-relaunch.js';

if (mallocRelaunchWanted(process.env, process.platform, onGlibc, process.execArgv)) relaunchWithMallocEnv();
else await import('./serve.js');
