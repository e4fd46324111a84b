import { Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics (design.md §2 "Ops"): a registry per app, so tests and replicas never share state. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const hookLatency = new Histogram({
    name: 'priorpath_hook_duration_seconds',
    help: 'CDS hook latency by service and outcome',
    labelNames: ['service', 'outcome'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  return { registry, hookLatency };
}
export type Metrics = ReturnType<typeof createMetrics>;
