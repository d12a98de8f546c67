import { atDetail, MetricDeclaration, MetricDetail, prometheusSection } from './prometheus';

/**
 * The files user data writes on a proxy host next to planb-proxy itself: how its logs leave the
 * journal for CloudWatch Logs and how its Prometheus metrics reach CloudWatch. Pure text builders,
 * so the tests read exactly what an instance gets.
 *
 * Why a journal exporter: planb-proxy logs JSON lines to stderr, which systemd puts in the journal,
 * and the CloudWatch agent reads files, not the journal. `journalctl -o cat -f --cursor-file` copies
 * the proxy's own messages (the JSON lines as written) into a file the agent tails: matched by the
 * unit's cgroup and the binary's identifier, not with `-u`, which also takes systemd's lines about
 * the unit ("Started ...", "Main process exited ...") and would put them in a JSON log. The journal keeps
 * its copy (`journalctl -u planb-proxy` keeps working on the host), the unit in `systemd/` stays
 * as it is (redirecting its output with `StandardOutput=append:` would take the lines out of the
 * journal), and the cursor file makes an exporter restart resume after the last line it copied,
 * with no gap and no duplicate.
 */

/** The proxy's systemd unit (`systemd/planb-proxy.service`, installed under this name). */
export const PROXY_UNIT = 'planb-proxy.service';

/**
 * The journal's SYSLOG_IDENTIFIER of the proxy's own output: systemd names a service's stdout and
 * stderr after the executable's file name when the unit sets no SyslogIdentifier=.
 */
export const PROXY_SYSLOG_IDENTIFIER = 'planb-proxy';

/**
 * The journal matches that select the proxy's own lines: written from inside its unit's cgroup
 * (systemd's own messages about the unit come from PID 1, in init.scope) by the proxy binary (not
 * by ExecReload's kill). Both fields are set by journald, not by the writer.
 */
export const PROXY_JOURNAL_MATCHES = [`_SYSTEMD_UNIT=${PROXY_UNIT}`, `SYSLOG_IDENTIFIER=${PROXY_SYSLOG_IDENTIFIER}`] as const;

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
  { metrics: ['planb_proxy_upstream_connections_total'], dimensions: [['reused']], reduced: [[]] },
  { metrics: ['planb_proxy_keepalive_closes_total'], dimensions: [['reason']], reduced: [[]] },
];

/** A file for user data to write: path, mode and text. */
export interface HostFile {
  readonly path: string;
  readonly mode: string;
  readonly content: string;
}

const EXPORT_STATE_DIR = '/var/lib/planb-proxy-log';

/**
 * The proxy unit's drop-in exempting it from journald's rate limit (10000 messages per 30 s by
 * default, which one access line per request passes at a few hundred requests per second).
 * Written with the unit, before the proxy first starts, so it applies from its first line on.
 */
export const JOURNAL_DROP_IN: HostFile = {
  path: `/etc/systemd/system/${PROXY_UNIT}.d/journal-rate-limit.conf`,
  mode: '0644',
  content: '[Service]\nLogRateLimitIntervalSec=0\n',
};

/**
 * The exporter and logrotate units and the logrotate file; `units` are enabled with --now. Written
 * after the proxy has started (they need the packages user data installs once it serves).
 */
export function logShippingFiles(): { files: HostFile[]; units: string[] } {
  const exporter = `[Unit]
Description=Copy planb-proxy's journal lines to ${PROXY_LOG_FILE} for the CloudWatch agent
After=systemd-journald.service

[Service]
# The proxy's own lines (not systemd's about it); -o cat: the message only, i.e. the JSON line as
# written. The cursor file is written on exit and read on start: a restart resumes after the last
# line copied, and a first start (after the proxy's) copies from the journal's beginning.
ExecStart=/bin/sh -c 'exec journalctl ${PROXY_JOURNAL_MATCHES.join(' ')} -o cat --follow --no-tail --cursor-file=${EXPORT_STATE_DIR}/cursor >>${PROXY_LOG_FILE}'
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
  return {
    files: [
      { path: '/etc/systemd/system/planb-proxy-log-export.service', mode: '0644', content: exporter },
      { path: '/etc/planb-proxy/logrotate.conf', mode: '0644', content: logrotate },
      { path: '/etc/systemd/system/planb-proxy-logrotate.service', mode: '0644', content: rotateService },
      { path: '/etc/systemd/system/planb-proxy-logrotate.timer', mode: '0644', content: rotateTimer },
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
  /** The metric dimensions published (see {@link PROXY_METRICS}). */
  readonly metricDetail: MetricDetail;
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
          atDetail(PROXY_METRICS, targets.metricDetail),
        ),
      },
    },
  };
  // Compact: it travels in user data, which EC2 limits to 16 KB.
  return `${JSON.stringify(config)}\n`;
}
