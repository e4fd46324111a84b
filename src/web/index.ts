export { createWebRouter } from './web-router.js';
export type { WebRouterDeps } from './web-router.js';
export { buildWebAssets } from './build-web.js';
