import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { Architecture, REPO_ROOT } from '../config';
import { DOWNSTREAM_KEEPALIVE_SECS } from '../keepalive';
import {
  AGENT_FILES,
  agentConfig,
  HostFile,
  JOURNAL_DROP_IN,
  logShippingFiles,
  PROXY_SCRAPE_JOB,
  PROXY_SYSLOG_IDENTIFIER,
  PROXY_UNIT,
} from '../proxy-host';
import { MetricDetail, scrapeConfig } from '../prometheus';

/** Where the proxy's files live on the instances: the contract with `systemd/planb-proxy.service`. */
export const PROXY_INSTALL = {
  binary: '/usr/local/bin/planb-proxy',
  config: '/etc/planb-proxy/proxy.yaml',
  unit: `/etc/systemd/system/${PROXY_UNIT}`,
} as const;

/** The sources user data is built from, read at synth time (never copied into infra/). */
export const PROXY_SOURCES = {
  unit: path.join(REPO_ROOT, 'systemd', 'planb-proxy.service'),
  config: path.join(REPO_ROOT, 'systemd', 'proxy.yaml'),
} as const;

const HEREDOC_END = 'PLANB_PROXY_EOF';

/** The proxies' root volume: above the AMI's 8 GiB snapshot, for logs (see the launch template). */
export const ROOT_VOLUME_GIB = 16;

/** EC2's limit on an instance's user data, in bytes before base64: a larger one fails the launch. */
export const EC2_USER_DATA_LIMIT_BYTES = 16384;

/**
 * The bytes a CloudFormation token in user data is counted at when its size is estimated at synth:
 * more than any value here resolves to (the target group's ARN, the asset bucket's and the log
 * groups' names are all under 200).
 */
export const TOKEN_BYTES_ESTIMATE = 256;

/**
 * The size of user data as EC2 receives it, estimated from its resolved template value: literal
 * text by its UTF-8 bytes, each token (Ref, Fn::Sub, ...) at {@link TOKEN_BYTES_ESTIMATE}.
 */
export function estimatedUserDataBytes(resolved: unknown): number {
  if (typeof resolved === 'string') return Buffer.byteLength(resolved, 'utf8');
  const join = (resolved as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (join && join[0] === '') return join[1].reduce((sum: number, part) => sum + estimatedUserDataBytes(part), 0);
  return TOKEN_BYTES_ESTIMATE;
}

/** Whole-line comment markers: YAML's `#`; systemd's `#` and `;`. */
const COMMENT_MARKERS = { yaml: ['#'], systemd: ['#', ';'] } as const;

/**
 * `text` with its whole-line comments removed and blank-line runs squeezed to one, behind a
 * one-line note naming `source`. User data carries the files this way because EC2 limits it to
 * 16 KB; the comments stay in the repository. Only whole lines go, so no value is ever cut; YAML
 * with a block scalar (`|`, `>`), whose `#` lines would be content, is refused.
 */
export function withoutComments(text: string, syntax: keyof typeof COMMENT_MARKERS, source: string): string {
  if (syntax === 'yaml' && /:[ \t]*[|>][-+0-9]*[ \t]*(#.*)?$/m.test(text)) {
    throw new Error(`${source}: a block scalar (| or >) would lose its # lines; write the value on one line`);
  }
  const markers: readonly string[] = COMMENT_MARKERS[syntax];
  const kept: string[] = [];
  for (const line of text.split('\n')) {
    const blank = line.trim() === '';
    if (markers.some((m) => line.trimStart().startsWith(m))) continue;
    if (blank && (kept.length === 0 || kept[kept.length - 1].trim() === '')) continue;
    kept.push(line);
  }
  return [`# ${source} of planb, without its comments`, ...kept].join('\n');
}

/** The values infra writes into proxy.yaml; everything else comes from `systemd/proxy.yaml` as is. */
export interface ProxyConfigValues {
  /** `proxy.upstream.ssm_parameter`: this stack's parameter. */
  readonly ssmParameter: string;
  /** `proxy.downstream_keepalive_secs`: above ALB1's idle timeout (keepalive.ts). */
  readonly downstreamKeepaliveSecs: number;
}

/**
 * Returns proxy.yaml with infra's values in place: the `ssm_parameter:` value replaced (indentation
 * and any trailing comment kept; the file must have exactly one such line), and
 * `downstream_keepalive_secs:` replaced where the file has it, else inserted as the first key of
 * the `proxy:` section with that section's indentation.
 */
export function renderProxyConfig(yaml: string, values: ProxyConfigValues): string {
  const line = /^([ \t]*ssm_parameter:[ \t]*)([^\s#]+)(.*)$/gm;
  const matches = yaml.match(line) ?? [];
  if (matches.length !== 1) {
    throw new Error(`${PROXY_SOURCES.config} must have exactly one "ssm_parameter:" line, found ${matches.length}`);
  }
  const withParameter = yaml.replace(line, (_all, head: string, _old: string, tail: string) => `${head}${values.ssmParameter}${tail}`);
  return setProxyKey(withParameter, 'downstream_keepalive_secs', String(values.downstreamKeepaliveSecs));
}

/** Sets `key: value` directly under the top-level `proxy:` section: replaced if there, else inserted. */
function setProxyKey(yaml: string, key: string, value: string): string {
  const lines = yaml.split('\n');
  const start = lines.findIndex((l) => /^proxy:[ \t]*(#.*)?$/.test(l));
  if (start < 0) throw new Error(`${PROXY_SOURCES.config} has no top-level "proxy:" section`);
  const firstKey = lines.slice(start + 1).find((l) => /^[ \t]+[^\s#]/.test(l));
  const indent = /^([ \t]+)/.exec(firstKey ?? '  ')?.[1] ?? '  ';
  let end = lines.findIndex((l, i) => i > start && /^[^\s#]/.test(l));
  if (end < 0) end = lines.length;
  const keyLine = new RegExp(`^${indent}${key}:[ \\t]*([^\\s#]*)(.*)$`);
  const at = lines.findIndex((l, i) => i > start && i < end && keyLine.test(l));
  if (at >= 0) {
    lines[at] = lines[at].replace(keyLine, (_all, _old: string, tail: string) => `${indent}${key}: ${value}${tail}`);
  } else {
    lines.splice(start + 1, 0, `${indent}${key}: ${value}`);
  }
  return lines.join('\n');
}

/** The port of proxy.yaml's `proxy.listen` ("host:port"): ALB1's target and health-check port. */
export function proxyListenPort(yaml: string): number {
  const match = /^[ \t]+listen:[ \t]*["']?[^"'\s]*:(\d+)["']?/m.exec(yaml);
  if (!match) throw new Error(`${PROXY_SOURCES.config} has no "listen: host:port" line`);
  return Number(match[1]);
}

/** The `host:port` of proxy.yaml's `proxy.admin_listen` (/healthz and /metrics on the host). */
export function proxyAdminAddress(yaml: string): string {
  const match = /^[ \t]+admin_listen:[ \t]*["']?([^"'\s#]+:\d+)["']?/m.exec(yaml);
  if (!match) throw new Error(`${PROXY_SOURCES.config} has no "admin_listen: host:port" line`);
  return match[1];
}

/**
 * Checks the unit starts the binary and config where user data installs them, and that its output
 * carries the identifier the log exporter selects.
 */
function checkUnit(unit: string): void {
  const execStart = /^ExecStart=(.*)$/m.exec(unit)?.[1] ?? '';
  for (const needed of [PROXY_INSTALL.binary, PROXY_INSTALL.config]) {
    if (!execStart.includes(needed)) {
      throw new Error(`${PROXY_SOURCES.unit}: ExecStart must use ${needed}, which is where user data installs it`);
    }
  }
  const identifier = /^SyslogIdentifier=(.*)$/m.exec(unit)?.[1] ?? path.basename(PROXY_INSTALL.binary);
  if (identifier !== PROXY_SYSLOG_IDENTIFIER) {
    throw new Error(`${PROXY_SOURCES.unit}: its journal identifier is ${identifier}, but the log exporter selects ${PROXY_SYSLOG_IDENTIFIER}`);
  }
}

/** The SHA-256 of `file`'s bytes, in hex: what user data checks the downloaded binary against. */
export function sha256OfFile(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/**
 * Shell lines that stop the script (exit 1, with a line saying why on stderr, which cloud-init
 * logs) unless `file`'s SHA-256 is `sha256`. User data runs them before installing the binary as
 * root: the exit trap then signals the failure to CloudFormation, so a tampered or truncated
 * download never runs and the launch or rolling update fails.
 */
export function sha256CheckCommands(file: string, sha256: string): string[] {
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`not a SHA-256 in hex: ${sha256}`);
  return [
    `if ! echo '${sha256}  ${file}' | sha256sum --check --status -; then`,
    `  echo "planb-proxy: SHA-256 mismatch: ${file} is not the binary synthesized into this stack (want ${sha256}, got $(sha256sum ${file} | cut -d' ' -f1)); not installing it" >&2`,
    '  exit 1',
    'fi',
  ];
}

/** `cat > dest <<'END'` with a quoted delimiter, so the shell expands nothing ($MAINPID stays). */
function heredoc(dest: string, content: string): string {
  if (content.split('\n').includes(HEREDOC_END)) {
    throw new Error(`content for ${dest} contains the heredoc delimiter ${HEREDOC_END}`);
  }
  const body = content.endsWith('\n') ? content : `${content}\n`;
  return `cat > ${dest} <<'${HEREDOC_END}'\n${body}${HEREDOC_END}`;
}

/** Shell lines writing `files`: each directory created once, then each file and its mode. */
function writeFiles(files: readonly HostFile[]): string[] {
  const dirs = [...new Set(files.map((f) => path.dirname(f.path)))];
  return [`install -d -m 0755 ${dirs.join(' ')}`, ...files.flatMap((f) => [heredoc(f.path, f.content), `chmod ${f.mode} ${f.path}`])];
}

/**
 * A shell function for user data: `wait_until SECONDS WHAT COMMAND...` runs COMMAND every 2 s
 * until it succeeds, and fails (status 1, a line naming WHAT on stderr) once SECONDS have passed.
 * A function, not `timeout ... bash -c '...'`: the commands keep their own quoting.
 */
export const WAIT_UNTIL_FUNCTION = [
  'wait_until() {',
  '  local secs=$1 what=$2 end=$((SECONDS + $1))',
  '  shift 2',
  '  until "$@"; do',
  '    [ "$SECONDS" -lt "$end" ] || { echo "planb-proxy: gave up after $secs s waiting for $what" >&2; return 1; }',
  '    sleep 2',
  '  done',
  '}',
].join('\n');

/** Properties of {@link ProxyFleet}. */
export interface ProxyFleetProps {
  readonly vpc: ec2.IVpc;
  /** Absolute path of the static planb-proxy binary. */
  readonly binaryPath: string;
  readonly architecture: Architecture;
  readonly instanceType: string;
  /** The parameter holding ALB2's DNS name: the only one the role may read. */
  readonly upstreamParameter: ssm.IStringParameter;
  /**
   * Its name as plain text, written into proxy.yaml (`upstreamParameter.parameterName` is a Ref,
   * which would put a token in the file and hide the value from tests).
   */
  readonly upstreamParameterName: string;
  readonly minCapacity: number;
  readonly maxCapacity: number;
  /** Burstable instances' CPU credits: `unlimited` bursts as long as needed (billed past the baseline). */
  readonly cpuCredits: 'standard' | 'unlimited';
  /** The metric dimensions the agent publishes (see `PROXY_METRICS`). */
  readonly metricDetail: MetricDetail;
}

/**
 * The proxy tier: planb-proxy on Amazon Linux 2023 in an Auto Scaling group.
 *
 * The binary travels as an S3 asset; user data installs it, writes proxy.yaml (from
 * `systemd/proxy.yaml`, `ssm_parameter` set to this stack's parameter) and the unit (from
 * `systemd/planb-proxy.service`), enables the service and signals CloudFormation once the proxy
 * answers /healthz, so rolling updates replace instances one healthy batch at a time. Access is
 * through SSM Session Manager only: no key pair, no SSH port.
 */
export class ProxyFleet extends Construct {
  /** The Auto Scaling group; register it as ALB1's target. */
  public readonly autoScalingGroup: autoscaling.AutoScalingGroup;
  /** The instances' role. */
  public readonly role: iam.Role;
  /** The port the proxy listens on (from proxy.yaml): ALB1's target and health-check port. */
  public readonly port: number;
  /** The proxy's JSON log lines, one stream per instance. */
  public readonly logGroup: logs.LogGroup;
  /** The EMF records of the proxy's scraped metrics (namespace PlanB/Proxy). */
  public readonly metricsLogGroup: logs.LogGroup;
  /** The SHA-256 (hex) of the proxy binary, computed at synth and checked by user data. */
  public readonly binarySha256: string;
  private readonly userData: ec2.UserData;
  private healthTargetGroup?: elbv2.IApplicationTargetGroup;
  private readonly region: string;

  constructor(scope: Construct, id: string, props: ProxyFleetProps) {
    super(scope, id);

    const unit = fs.readFileSync(PROXY_SOURCES.unit, 'utf8');
    checkUnit(unit);
    const config = renderProxyConfig(fs.readFileSync(PROXY_SOURCES.config, 'utf8'), {
      ssmParameter: props.upstreamParameterName,
      downstreamKeepaliveSecs: DOWNSTREAM_KEEPALIVE_SECS,
    });
    this.port = proxyListenPort(config);
    const adminAddress = proxyAdminAddress(config);

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.metricsLogGroup = new logs.LogGroup(this, 'MetricsLogs', {
      // The EMF records only feed the metrics; CloudWatch keeps those 15 months on its own.
      retention: logs.RetentionDays.ONE_WEEK,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    const binary = new s3assets.Asset(this, 'Binary', { path: props.binaryPath });
    // Of the file synth read (and staged as the asset), so the instance installs exactly it.
    this.binarySha256 = sha256OfFile(props.binaryPath);

    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: 'planb-proxy instances: read the ALB2 parameter and the binary, Session Manager',
      // Inline (part of the role resource), so the permissions exist before any instance boots.
      inlinePolicies: {
        proxy: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: 'ReadUpstreamParameter',
              actions: ['ssm:GetParameter'],
              resources: [props.upstreamParameter.parameterArn],
            }),
            new iam.PolicyStatement({
              sid: 'ShipLogsAndMetrics',
              actions: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
              resources: [this.logGroup.logGroupArn, this.metricsLogGroup.logGroupArn],
            }),
            // User data waits for ALB1 to call this instance healthy before it signals success.
            // DescribeTargetHealth has no resource-level permissions (it only reads health).
            new iam.PolicyStatement({
              sid: 'ReadTargetHealth',
              actions: ['elasticloadbalancing:DescribeTargetHealth'],
              resources: ['*'],
            }),
            new iam.PolicyStatement({
              sid: 'DownloadProxyBinary',
              actions: ['s3:GetObject'],
              resources: [binary.bucket.arnForObjects(binary.s3ObjectKey)],
            }),
            // The Session Manager subset of AmazonSSMManagedInstanceCore (the same five actions as
            // AWS's AWSCloud9SSMInstanceProfile). The managed policy itself would also grant
            // ssm:GetParameter(s) on every parameter in the account.
            new iam.PolicyStatement({
              sid: 'SessionManager',
              actions: [
                'ssm:UpdateInstanceInformation',
                'ssmmessages:CreateControlChannel',
                'ssmmessages:CreateDataChannel',
                'ssmmessages:OpenControlChannel',
                'ssmmessages:OpenDataChannel',
              ],
              resources: ['*'],
            }),
          ],
        }),
      },
    });
    Validations.of(this.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Two statements use "*": Session Manager (the ssmmessages channel actions have no resource type to scope to and ssm:UpdateInstanceInformation is called for an instance id unknown until launch; the same five actions AWS ships as the minimal Session Manager policy) and elasticloadbalancing:DescribeTargetHealth, which supports no resource-level permission and only reads health. The parameter, the binary and the two log groups are granted by exact ARN.',
    });

    const securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'planb-proxy instances: proxy port from ALB1 only; out to ALB2 and the AWS endpoints',
      // Out only where the stack opens it: ALB2 (BackendService.allowFrom) and HTTPS to the AWS
      // API endpoints and S3 (AwsEndpoints.allowFrom); no route to anywhere else.
      allowAllOutbound: false,
    });

    const userData = ec2.UserData.forLinux();
    const launchTemplate = new ec2.LaunchTemplate(this, 'LaunchTemplate', {
      machineImage: ec2.MachineImage.latestAmazonLinux2023({
        cpuType: props.architecture === 'arm64' ? ec2.AmazonLinuxCpuType.ARM_64 : ec2.AmazonLinuxCpuType.X86_64,
      }),
      instanceType: new ec2.InstanceType(props.instanceType),
      role: this.role,
      securityGroup,
      userData,
      // IMDSv2 only: a request forwarded by mistake can't fetch the role's credentials with a GET.
      requireImdsv2: true,
      httpPutResponseHopLimit: 1,
      detailedMonitoring: true,
      // Set for t-family (burstable) types only: EC2 refuses a credit specification on others.
      cpuCredits: /^t\d/.test(props.instanceType)
        ? props.cpuCredits === 'unlimited'
          ? ec2.CpuCredits.UNLIMITED
          : ec2.CpuCredits.STANDARD
        : undefined,
      blockDevices: [
        {
          deviceName: '/dev/xvda',
          // Above the AMI's 8 GiB snapshot: room for the journal and the exported log file
          // (rotated at 200 MB) on top of the OS. gp3 prices by size, and 16 GiB costs cents.
          volume: ec2.BlockDeviceVolume.ebs(ROOT_VOLUME_GIB, { encrypted: true, volumeType: ec2.EbsDeviceVolumeType.GP3 }),
        },
      ],
      // No keyPair: shell access is Session Manager only.
    });

    const minInstancesInService = Math.min(props.minCapacity, props.maxCapacity - 1);
    this.autoScalingGroup = new autoscaling.AutoScalingGroup(this, 'Asg', {
      vpc: props.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      launchTemplate,
      minCapacity: props.minCapacity,
      maxCapacity: props.maxCapacity,
      // EC2 status plus ALB1's target health: an instance whose proxy stopped answering is replaced.
      healthChecks: autoscaling.HealthChecks.withAdditionalChecks({
        additionalTypes: [autoscaling.AdditionalHealthCheckType.ELB],
        gracePeriod: Duration.minutes(3),
      }),
      cooldown: Duration.minutes(3),
      defaultInstanceWarmup: Duration.minutes(2),
      // Launch and update wait for each instance's cfn-signal (sent once /healthz answers); a
      // launch template change replaces one instance at a time, keeping the rest in service.
      // The wait covers boot, the proxy's start (SSM, DNS) and ALB1's healthy threshold.
      signals: autoscaling.Signals.waitForMinCapacity({ timeout: Duration.minutes(15) }),
      updatePolicy: autoscaling.UpdatePolicy.rollingUpdate({
        maxBatchSize: 1,
        minInstancesInService,
      }),
    });
    Validations.of(this.autoScalingGroup).acknowledge({
      id: 'AwsSolutions-AS3',
      reason:
        'Scaling events are already in the group\'s activity history and on EventBridge (source aws.autoscaling) for anyone who wants to route them; what matters to users (instances ALB1 calls unhealthy, 5xx) raises the alarms on the alarm topic (monitoring.ts), so per-event notifications would only add noise.',
    });
    // The proxy reads the parameter before it serves: launch no instance before it exists.
    this.autoScalingGroup.node.addDependency(props.upstreamParameter);

    this.autoScalingGroup.scaleOnCpuUtilization('Cpu', {
      targetUtilizationPercent: 60,
    });

    this.region = Stack.of(this).region;
    // CDK's exit trap signals `$?`, which under a SIGTERM (the instance shut down while user data
    // still waits) is the last finished command's 0: a TERM exits non-zero so it signals failure.
    userData.addCommands('set -euo pipefail', "trap 'exit 143' TERM");
    const downloaded = userData.addS3DownloadCommand({
      bucket: binary.bucket,
      bucketKey: binary.s3ObjectKey,
      localFile: '/tmp/planb-proxy',
      region: this.region,
    });
    // The proxy first, with nothing installed from a package repository: ALB1's health checks
    // find it serving within seconds of boot, however slow the repository is for what follows.
    userData.addCommands(
      ...sha256CheckCommands(downloaded, this.binarySha256),
      `install -m 0755 -o root -g root ${downloaded} ${PROXY_INSTALL.binary}`,
      `rm -f ${downloaded}`,
      ...writeFiles([
        { path: PROXY_INSTALL.config, mode: '0644', content: withoutComments(config, 'yaml', 'systemd/proxy.yaml') },
        { path: PROXY_INSTALL.unit, mode: '0644', content: withoutComments(unit, 'systemd', 'systemd/planb-proxy.service') },
        // Before the proxy starts: the journal drop-in applies from its first line on.
        JOURNAL_DROP_IN,
      ]),
      'systemctl daemon-reload',
      // A failed first start (say, the new role's permissions still propagating) is not fatal:
      // systemd restarts the unit (Restart=on-failure); the health wait below decides.
      `systemctl enable --now ${PROXY_UNIT} || echo 'planb-proxy: first start failed, systemd retries' >&2`,
      // cfn-signal (called by the exit trap) ships with Amazon Linux 2023; install it should a
      // slimmer image lack it.
      '[ -x /opt/aws/bin/cfn-signal ] || dnf install -y -q aws-cfn-bootstrap',
    );
    this.shipLogsAndMetrics(userData, adminAddress, props.metricDetail);
    userData.addCommands(
      WAIT_UNTIL_FUNCTION,
      // The proxy serves ALB1's health check (it reads SSM first) ...
      `proxy_healthy() { curl -fsS -o /dev/null http://127.0.0.1:${this.port}/healthz; }`,
      'wait_until 300 "/healthz to answer" proxy_healthy',
    );
    this.userData = userData;
    // ... and success is signalled once ALB1 itself calls the instance healthy (signalWhenHealthyIn).
    userData.addSignalOnExitCommand(this.autoScalingGroup);
    this.node.addValidation({
      validate: () => {
        const bytes = estimatedUserDataBytes(Stack.of(this).resolve(userData.render()));
        return bytes < EC2_USER_DATA_LIMIT_BYTES
          ? []
          : [`ProxyFleet: user data is about ${bytes} bytes, over EC2's ${EC2_USER_DATA_LIMIT_BYTES}: the launch would fail`];
      },
    });
    this.node.addValidation({
      validate: () => (this.healthTargetGroup ? [] : ['ProxyFleet: call signalWhenHealthyIn(ALB1 target group)']),
    });
  }

  /**
   * Opens HTTPS to anywhere, for a stack without the AWS API endpoints (the small profile): the
   * proxies then reach SSM, Logs, ELB, CloudFormation and the dnf repositories through the NAT
   * gateway. The upstream stays pinned: port 80 goes only to ALB2, and the proxy refuses an SSM
   * value that is not an internal ALB's name on that port.
   */
  public allowHttpsAnywhere(): void {
    for (const sg of this.autoScalingGroup.connections.securityGroups) {
      sg.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'HTTPS to the AWS APIs through NAT');
    }
  }

  /**
   * Makes each instance signal CloudFormation only once ALB1 reports it healthy in `targetGroup`,
   * so a rolling update moves on when ALB1 really sends traffic to the new instance; and creates
   * the group only after `listener`, whose rules forward to the target group: before that ALB1
   * calls every target `unused`, never `healthy`, and the first launch would time out. (With a
   * DNS-validated certificate the listener waits for ACM, which no longer counts against the
   * group's signal timeout.)
   */
  public signalWhenHealthyIn(forward: { targetGroup: elbv2.IApplicationTargetGroup; listener: elbv2.IApplicationListener }): void {
    this.healthTargetGroup = forward.targetGroup;
    this.autoScalingGroup.node.addDependency(forward.listener);
    const state = `aws elbv2 describe-target-health --region ${this.region} --target-group-arn '${forward.targetGroup.targetGroupArn}' --targets "Id=$instance_id,Port=${this.port}" --query 'TargetHealthDescriptions[0].TargetHealth.State' --output text`;
    this.userData.addCommands(
      `imds_token=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' http://169.254.169.254/latest/api/token)`,
      `instance_id=$(curl -fsS -H "X-aws-ec2-metadata-token: $imds_token" http://169.254.169.254/latest/meta-data/instance-id)`,
      `alb1_healthy() { [ "$(${state} 2>/dev/null)" = healthy ]; }`,
      'wait_until 600 "ALB1 to call this instance healthy" alb1_healthy',
    );
  }

  /** User data: the CloudWatch agent (logs and /metrics) and the journal exporter. */
  private shipLogsAndMetrics(userData: ec2.UserData, adminAddress: string, metricDetail: MetricDetail): void {
    const shipping = logShippingFiles();
    const files: HostFile[] = [
      ...shipping.files,
      { path: AGENT_FILES.prometheus, mode: '0644', content: scrapeConfig(PROXY_SCRAPE_JOB, adminAddress) },
      {
        path: AGENT_FILES.config,
        mode: '0644',
        content: agentConfig({
          logGroupName: this.logGroup.logGroupName,
          metricsLogGroupName: this.metricsLogGroup.logGroupName,
          metricDetail,
        }),
      },
    ];
    userData.addCommands(
      // In Amazon Linux 2023's own repository.
      'dnf install -y -q amazon-cloudwatch-agent logrotate',
      ...writeFiles(files),
      'systemctl daemon-reload',
      `systemctl enable --now ${shipping.units.join(' ')}`,
      `/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:${AGENT_FILES.config}`,
    );
  }
}
