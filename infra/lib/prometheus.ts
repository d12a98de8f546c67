/**
 * The CloudWatch agent's Prometheus pieces, shared by the proxy hosts (agent on EC2) and the
 * backend tasks (agent sidecar): scrape one `/metrics`, publish chosen counters as EMF.
 */

/** Which scraped metrics become CloudWatch metrics, and with which label sets as dimensions. */
export interface MetricDeclaration {
  /** Metric names as the service writes them (exact). */
  readonly metrics: readonly string[];
  /** Label sets published as dimensions, each next to `job` (an empty list: `job` alone). */
  readonly dimensions: readonly (readonly string[])[];
  /**
   * The label sets kept at `reduced` detail (the small profile), when fewer than `dimensions`:
   * every dimension value is a metric CloudWatch bills monthly. Alarms use only these.
   */
  readonly reduced?: readonly (readonly string[])[];
}

/** `full`: every declared dimension; `reduced`: each declaration's `reduced` sets where it has them. */
export type MetricDetail = 'full' | 'reduced';

/** The declarations as published at `detail`. */
export function atDetail(declarations: readonly MetricDeclaration[], detail: MetricDetail): MetricDeclaration[] {
  return declarations.map((d) => ({ metrics: d.metrics, dimensions: detail === 'reduced' ? (d.reduced ?? d.dimensions) : d.dimensions }));
}

/** The Prometheus scrape configuration: one job, one target, once a minute. */
export function scrapeConfig(job: string, address: string): string {
  return `global:
  scrape_interval: 60s
  scrape_timeout: 10s
scrape_configs:
  - job_name: ${job}
    metrics_path: /metrics
    static_configs:
      - targets: ["${address}"]
`;
}

/**
 * The agent's `logs.metrics_collected.prometheus` section: scrape per `configPath`, write EMF
 * records to `logGroupName`, publishing `declarations` under `namespace` (counters become deltas).
 */
export function prometheusSection(
  configPath: string,
  logGroupName: string,
  namespace: string,
  job: string,
  declarations: readonly MetricDeclaration[],
): Record<string, unknown> {
  return {
    prometheus_config_path: configPath,
    log_group_name: logGroupName,
    emf_processor: {
      metric_namespace: namespace,
      metric_declaration: declarations.map((d) => ({
        source_labels: ['job'],
        label_matcher: `^${job}$`,
        dimensions: d.dimensions.length === 0 ? [['job']] : d.dimensions.map((set) => ['job', ...set]),
        metric_selectors: d.metrics.map((m) => `^${m}$`),
      })),
    },
  };
}
