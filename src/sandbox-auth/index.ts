export { createSandboxAuth } from './sandbox-auth.js';
export type {
  LaunchContext,
  SandboxAuth,
  SandboxAuthOptions,
  SandboxCdsClient,
  SandboxClient,
} from './sandbox-auth.js';
