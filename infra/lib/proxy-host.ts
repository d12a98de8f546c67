import { MetricDeclaration, prometheusSection } from './prometheus';

/**
 * The files user data writes on a proxy host next to planb-proxy itself: how its logs leave the
 * journal for CloudWatch Logs and how its Prometheus metrics reach CloudWatch. Pure text builders,
 * so the tests read exactly what an instance gets.
 *
 * Why a journal exporter: planb-proxy logs JSON lines to stderr, which systemd puts in the journal,
 * and the CloudWatch agent reads files, not the journal. `journalctl -o cat -f --cursor-file` copies
 * the unit's messages (the JSON lines as written) into a file the agent tails. The journal keeps
 * its copy (`journalctl -u planb-proxy` keeps working on the host), the unit in `systemd/` stays
 * as it is (redirecting its output with `StandardOutput=append:` would take the lines out of the
 * journal), and the cursor file makes an exporter restart resume after the last line it copied,
 * with no gap and no duplicate.
 */

/** Where the exported lines go; the CloudWatch agent tails this file. */
export const PROXY_LOG_FILE = '/var/log/planb-proxy/proxy.log';

/** The CloudWatch agent's configuration and the Prometheus scrape configuration it reads. */
export const AGENT_FILES = {
  config: '/opt/aws/amazon-cloudwatch-agent/etc/planb-agent.json',
  prometheus: '/opt/aws/amazon-cloudwatch-agent/etc/planb-prometheus.yaml',
} as const;

/** CloudWatch namespace of the proxy's metrics (from its /metrics, as EMF). */
export const PROXY_METRIC_NAMESPACE = 'PlanB/Proxy';

/** The Prometheus job name: the one dimension of the proxy's metrics in CloudWatch. */
export const PROXY_SCRAPE_JOB = 'planb-proxy';

/**
 * The proxy counters shipped to CloudWatch (names as its /metrics writes them) and their
 * dimensions next to `job`. Summed over their labels unless a label is a dimension: a connection
 * reused or opened, and why a kept connection was closed, are what those two counters are for.
 */
export const PROXY_METRICS: readonly MetricDeclaration[] = [
  {
    metrics: [
      'planb_proxy_requests_total',
      'planb_proxy_upstream_errors_total',
      'planb_proxy_upstream_connect_failures_total',
      'planb_proxy_dns_refresh_failures_total',
      'planb_proxy_ssm_refresh_failures_total',
      'planb_proxy_request_head_timeouts_total',
    ],
    dimensions: [],
  },
  { metrics: ['planb_proxy_upstream_connections_total'], dimensions: [['reused']] },
  { metrics: ['planb_proxy_keepalive_closes_total'], dimensions: [['reason']] },
];

/** A file for user data to write: path, mode and text. */
export interface HostFile {
  readonly path: string;
  readonly mode: string;
  readonly content: string;
}

const EXPORT_STATE_DIR = '/var/lib/planb-proxy-log';

/** systemd units, drop-ins and the logrotate file; `units` are enabled with --now. */
export function logShippingFiles(): { files: HostFile[]; units: string[] } {
  const exporter = `[Unit]
Description=Copy planb-proxy's journal lines to ${PROXY_LOG_FILE} for the CloudWatch agent
After=systemd-journald.service

[Service]
# -o cat: the message only, i.e. the proxy's JSON line as written. The cursor file is written on
# exit and read on start, so a restart resumes after the last line copied.
ExecStart=/bin/sh -c 'exec journalctl -u planb-proxy.service -o cat --follow --no-tail --cursor-file=${EXPORT_STATE_DIR}/cursor >>${PROXY_LOG_FILE}'
Restart=always
RestartSec=2
# root: the journal of another unit, and a log directory the agent's user can traverse
# (DynamicUser= would put it under the 0700 /var/log/private). Confined by what follows.
StateDirectory=planb-proxy-log
LogsDirectory=planb-proxy
LogsDirectoryMode=0755
# The file must be readable by the CloudWatch agent's user (cwagent).
UMask=0022
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateNetwork=yes
RestrictAddressFamilies=AF_UNIX

[Install]
WantedBy=multi-user.target
`;
  // The file is rotated often (an access line per request adds up): copytruncate keeps the
  // exporter's descriptor valid (it appends, O_APPEND), and the agent notices the truncation.
  const logrotate = `${PROXY_LOG_FILE} {
    size 200M
    rotate 1
    copytruncate
    missingok
    notifempty
    nocompress
}
`;
  const rotateService = `[Unit]
Description=Rotate ${PROXY_LOG_FILE}

[Service]
Type=oneshot
ExecStart=/usr/sbin/logrotate --state ${EXPORT_STATE_DIR}/logrotate.state /etc/planb-proxy/logrotate.conf
`;
  const rotateTimer = `[Unit]
Description=Rotate ${PROXY_LOG_FILE} every 5 minutes when it is over 200 MB

[Timer]
OnCalendar=*:0/5
AccuracySec=30s

[Install]
WantedBy=timers.target
`;
  // journald drops a unit's messages above 10000 per 30 s by default; one access line per request
  // passes that at a few hundred requests per second, so the proxy unit is exempt.
  const journalDropIn = `[Service]
LogRateLimitIntervalSec=0
`;
  return {
    files: [
      { path: '/etc/systemd/system/planb-proxy-log-export.service', mode: '0644', content: exporter },
      { path: '/etc/planb-proxy/logrotate.conf', mode: '0644', content: logrotate },
      { path: '/etc/systemd/system/planb-proxy-logrotate.service', mode: '0644', content: rotateService },
      { path: '/etc/systemd/system/planb-proxy-logrotate.timer', mode: '0644', content: rotateTimer },
      { path: '/etc/systemd/system/planb-proxy.service.d/journal-rate-limit.conf', mode: '0644', content: journalDropIn },
    ],
    units: ['planb-proxy-log-export.service', 'planb-proxy-logrotate.timer'],
  };
}

/** Where the agent sends what it collects. */
export interface AgentTargets {
  /** Log group of the proxy's JSON lines (a token is fine: user data resolves it). */
  readonly logGroupName: string;
  /** Log group the agent writes the EMF records of the scraped metrics to. */
  readonly metricsLogGroupName: string;
}

/**
 * The CloudWatch agent's configuration: tail the exported log file into `logGroupName` (one stream
 * per instance), scrape the proxy's Prometheus metrics and publish {@link PROXY_METRICS} as EMF
 * under {@link PROXY_METRIC_NAMESPACE} (the agent turns counters into per-interval deltas).
 */
export function agentConfig(targets: AgentTargets): string {
  const config = {
    agent: { run_as_user: 'cwagent' },
    logs: {
      logs_collected: {
        files: {
          collect_list: [
            { file_path: PROXY_LOG_FILE, log_group_name: targets.logGroupName, log_stream_name: '{instance_id}' },
          ],
        },
      },
      metrics_collected: {
        prometheus: prometheusSection(
          AGENT_FILES.prometheus,
          targets.metricsLogGroupName,
          PROXY_METRIC_NAMESPACE,
          PROXY_SCRAPE_JOB,
          PROXY_METRICS,
        ),
      },
    },
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}
