import * as path from 'path';
import { CfnResource, Duration, Fn, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { Architecture, INFRA_DIR, REPO_ROOT } from '../config';
import { atDetail, MetricDeclaration, MetricDetail, prometheusSection, scrapeConfig } from '../prometheus';

/** The port planb-backend listens on (its LISTEN_ADDR default) and ALB2's target port. */
export const BACKEND_PORT = 8080;

/** The port ALB2 listens on; the proxy's config says `port: 80`. */
export const ALB2_PORT = 80;

/**
 * Paths kept out of the image's build context on top of `.dockerignore` (which already lists only
 * what the build needs): a second guard so a loosened `.dockerignore` cannot ship gigabytes of
 * `target/` or a virtualenv to Docker and to cdk.out.
 */
export const BACKEND_IMAGE_EXCLUDES = ['.git', 'target', '**/target', '.venv', '**/node_modules', 'infra', '.run'];

/** CloudWatch namespace of the backend's metrics (from its /metrics, via the agent sidecar). */
export const BACKEND_METRIC_NAMESPACE = 'PlanB/Backend';

/** The Prometheus job name of the backend's scrape: the `job` dimension of its metrics. */
export const BACKEND_SCRAPE_JOB = 'planb-backend';

/** The backend counters shipped to CloudWatch and their dimensions (next to `job`). */
export const BACKEND_METRICS: readonly MetricDeclaration[] = [
  // By reason: the alarms watch chosen reasons, the dashboard shows them all.
  { metrics: ['planb_verification_failures_total'], dimensions: [[], ['reason']] },
  { metrics: ['planb_jwks_fetches_total'], dimensions: [['result']] },
  // Every route's answers: by status across routes (the 5xx view) and per route.
  { metrics: ['planb_requests_total'], dimensions: [['status'], ['route', 'status']], reduced: [['status']] },
  { metrics: ['planb_dynamodb_calls_total'], dimensions: [['op', 'result']], reduced: [['result']] },
  // A gauge: the agent publishes its value as scraped.
  { metrics: ['planb_connections_open'], dimensions: [] },
];

/**
 * The CloudWatch agent sidecar's image: a Dockerfile whose one line is AWS's release on ECR Public
 * (a version tag, multi-arch, so it runs on ARM64 and x86_64 tasks), built as a CDK asset into this
 * account's asset repository. An image-pull failure stops a task whether or not the container is
 * essential, and ECS has no setting that changes that; pulling at `cdk deploy`, before
 * CloudFormation starts, makes a failure there stop the deploy with nothing to roll back, and the
 * tasks then pull from the same private repository as the backend's image.
 */
export const CLOUDWATCH_AGENT_IMAGE_DIR = path.join(INFRA_DIR, 'images', 'cloudwatch-agent');

/** The DynamoDB actions the backend's notes API uses: nothing else (no Scan, no batch, no update). */
export const NOTES_TABLE_ACTIONS = ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:DeleteItem', 'dynamodb:Query'] as const;

/** Properties of {@link BackendService}. */
export interface BackendServiceProps {
  readonly vpc: ec2.IVpc;
  readonly userPool: cognito.IUserPool;
  /**
   * The app clients whose access tokens the backend accepts (`COGNITO_APP_CLIENT_ID`, comma
   * separated): ALB1's first (the one the backend's `/logout` signs the browser out of), then the
   * machine client.
   */
  readonly allowedClients: readonly cognito.IUserPoolClient[];
  /** The hosted UI's base URL (`COGNITO_DOMAIN`): `GET /logout` sends the browser to its `/logout`. */
  readonly cognitoDomainUrl: string;
  /** The app's public URL (`LOGOUT_REDIRECT_URL`): where Cognito sends the browser after signing out. */
  readonly logoutRedirectUrl: string;
  /** Name of the SSM parameter that receives ALB2's DNS name. */
  readonly ssmParameterName: string;
  readonly architecture: Architecture;
  readonly minCapacity: number;
  readonly maxCapacity: number;
  /** Where ALB2 writes its access logs. */
  readonly accessLogBucket: s3.IBucket;
  /**
   * ALB1's ARN: when given, the backend requires and verifies the ALB-signed `x-amzn-oidc-data`
   * header and checks its signer against this ARN.
   */
  readonly trustedAlbArn?: string;
  /** The metric dimensions the agent sidecar publishes (see {@link BACKEND_METRICS}). */
  readonly metricDetail: MetricDetail;
}

/**
 * The backend tier: an ECS cluster, planb-backend on Fargate built from `Dockerfile.backend`,
 * the internal ALB2 in front of it with target-tracking autoscaling, and the SSM parameter that
 * publishes ALB2's DNS name to the proxy fleet.
 */
export class BackendService extends Construct {
  /** ALB2 (internal). The proxy fleet is allowed in through {@link allowFrom}. */
  public readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  /** The Fargate service running planb-backend. */
  public readonly service: ecs.FargateService;
  /** The planb-backend container (its environment is the backend's whole configuration). */
  public readonly container: ecs.ContainerDefinition;
  /** The SSM parameter holding ALB2's DNS name; the proxy reads it at start and on refresh. */
  public readonly dnsNameParameter: ssm.StringParameter;
  /** ALB2's target group (the tasks): its health and 5xx feed the alarms. */
  public readonly targetGroup: elbv2.ApplicationTargetGroup;
  /** The ECS cluster (Container Insights: running task count). */
  public readonly cluster: ecs.Cluster;
  /** The notes table: partition key `owner` (the verified `sub`), sort key `note_id`. */
  public readonly notesTable: dynamodb.Table;
  /** The key the backend signs its notes list cursors with (ECS secret NOTES_CURSOR_KEY). */
  public readonly cursorKey: secretsmanager.Secret;
  /** The task count autoscaling never goes below (the running-tasks alarm's floor). */
  public readonly minCapacity: number;
  /** The backend's task definition (the sidecars join it). */
  public readonly taskDefinition: ecs.FargateTaskDefinition;
  /** The backend's log group: its lines (the access line among them) and its sidecars'. */
  public readonly logGroup: logs.LogGroup;
  /** The platform every image of the task is built for: the task's CPU architecture. */
  public readonly imagePlatform: Platform;

  constructor(scope: Construct, id: string, props: BackendServiceProps) {
    super(scope, id);
    const privateSubnets = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };

    this.minCapacity = props.minCapacity;
    const cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: props.vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
      enableFargateCapacityProviders: true,
    });
    this.cluster = cluster;

    this.notesTable = new dynamodb.Table(this, 'Notes', {
      partitionKey: { name: 'owner', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'note_id', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      // Users' notes are data: `cdk destroy` leaves the table (delete it by hand if you mean to).
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.cursorKey = new secretsmanager.Secret(this, 'NotesCursorKey', {
      description: 'planb-backend: the key its notes list cursors are signed with (NOTES_CURSOR_KEY)',
      generateSecretString: { passwordLength: 64, excludePunctuation: true, includeSpace: false },
    });
    Validations.of(this.cursorKey).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'The key only signs the opaque pagination cursors of GET /api/notes, which live for one listing; rotating it would only make outstanding cursors fail with 400 and clients restart their listing. It grants no access: every note read is still bound to the verified sub. Rotate by hand (put-secret-value, then force a new deployment) if it leaks.',
    });

    // Both images for the task's architecture, whatever machine runs `cdk deploy`.
    const platform = props.architecture === 'arm64' ? Platform.LINUX_ARM64 : Platform.LINUX_AMD64;
    this.imagePlatform = platform;
    const taskDefinition = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: 256,
      memoryLimitMiB: 512,
      runtimePlatform: {
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
        cpuArchitecture: props.architecture === 'arm64' ? ecs.CpuArchitecture.ARM64 : ecs.CpuArchitecture.X86_64,
      },
    });

    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.taskDefinition = taskDefinition;
    this.logGroup = logGroup;

    const environment: Record<string, string> = {
      COGNITO_USER_POOL_ID: props.userPool.userPoolId,
      COGNITO_REGION: Stack.of(this).region,
      COGNITO_APP_CLIENT_ID: Fn.join(',', props.allowedClients.map((c) => c.userPoolClientId)),
      LISTEN_ADDR: `0.0.0.0:${BACKEND_PORT}`,
      // ALB1 asks Cognito for `openid email profile` (public-alb.ts): the scope-guarded
      // route checks one of those, so a signed-in user reaches it and a token minted for
      // other scopes (another app client, client credentials) gets 403.
      PROFILE_SCOPE: 'profile',
      RUST_LOG: 'info',
      LOG_FORMAT: 'json',
      NOTES_TABLE: this.notesTable.tableName,
      COGNITO_DOMAIN: props.cognitoDomainUrl,
      LOGOUT_REDIRECT_URL: props.logoutRedirectUrl,
    };
    if (props.trustedAlbArn !== undefined) environment.ALB_ARN = props.trustedAlbArn;

    this.container = taskDefinition.addContainer('backend', {
      // Built at deploy time from the repository root (the Cargo workspace) with Dockerfile.backend;
      // .dockerignore plus BACKEND_IMAGE_EXCLUDES keep the context to the sources.
      image: ecs.ContainerImage.fromAsset(REPO_ROOT, {
        file: 'Dockerfile.backend',
        exclude: BACKEND_IMAGE_EXCLUDES,
        // Pin the image to the task's architecture whatever machine runs `cdk deploy`.
        platform,
      }),
      portMappings: [{ containerPort: BACKEND_PORT, name: 'http' }],
      environment,
      secrets: { NOTES_CURSOR_KEY: ecs.Secret.fromSecretsManager(this.cursorKey) },
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'backend', logGroup }),
      // The backend writes nothing to disk.
      readonlyRootFilesystem: true,
    });
    // Exactly the notes API's four actions, on exactly this table (no index, no Scan).
    taskDefinition.addToTaskRolePolicy(
      new iam.PolicyStatement({
        sid: 'NotesTable',
        actions: [...NOTES_TABLE_ACTIONS],
        resources: [this.notesTable.tableArn],
      }),
    );
    this.addMetricsSidecar(taskDefinition, logGroup, props.metricDetail, platform);
    Validations.of(taskDefinition.obtainExecutionRole()).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'The execution role\'s only "*" is ecr:GetAuthorizationToken, which has no resource to scope to (the token is account-wide); the image pull itself is granted on the one asset repository and log writes on the one log group.',
    });
    Validations.of(taskDefinition).acknowledge({
      id: 'AwsSolutions-ECS2',
      reason:
        'The environment holds only public identifiers (user pool id, region, app client id, ALB ARN, table name), log settings, the metrics sidecar\'s agent and scrape configuration and, with traces on, the OpenTelemetry exporter\'s localhost endpoint, sampler and service name; the one secret (NOTES_CURSOR_KEY) is passed from Secrets Manager, not the environment.',
    });

    const taskSecurityGroup = new ec2.SecurityGroup(this, 'TaskSecurityGroup', {
      vpc: props.vpc,
      description: 'planb-backend tasks: 8080 from ALB2 only; HTTPS out',
      allowAllOutbound: false,
    });
    // The JWKS (Cognito), ALB1's signing keys (ELB key endpoint), ECR and CloudWatch Logs are all
    // HTTPS endpoints reached through the NAT gateway; their addresses are AWS's public ranges.
    taskSecurityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'HTTPS to AWS endpoints via NAT');

    this.service = new ecs.FargateService(this, 'Service', {
      cluster,
      taskDefinition,
      // No desiredCount: autoscaling owns it, and a fixed value would reset it on every deploy.
      securityGroups: [taskSecurityGroup],
      vpcSubnets: privateSubnets,
      assignPublicIp: false,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { rollback: true },
      // On-demand for the floor autoscaling keeps (minCapacity, 2 by default); every task above
      // it on Fargate Spot, about 70% cheaper. A Spot reclaim only ever takes the extra tasks.
      capacityProviderStrategies: [
        { capacityProvider: 'FARGATE', base: props.minCapacity, weight: 0 },
        { capacityProvider: 'FARGATE_SPOT', weight: 1 },
      ],
      healthCheckGracePeriod: Duration.seconds(30),
    });

    const albSecurityGroup = new ec2.SecurityGroup(this, 'LoadBalancerSecurityGroup', {
      vpc: props.vpc,
      description: 'ALB2 (internal): HTTP from the proxy fleet only; out to the backend tasks only',
      allowAllOutbound: false,
    });
    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this, 'InternalAlb', {
      vpc: props.vpc,
      internetFacing: false,
      vpcSubnets: privateSubnets,
      securityGroup: albSecurityGroup,
      dropInvalidHeaderFields: true,
      // The 60 s default idle timeout stays: the proxy's upstream idle_timeout_secs (50) is below it,
      // so the proxy closes idle connections before ALB2 does and never reuses a dead one.
    });
    this.loadBalancer.logAccessLogs(props.accessLogBucket, 'alb2');

    const listener = this.loadBalancer.addListener('Http', {
      port: ALB2_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      // Not open to 0.0.0.0/0: the proxy fleet is let in explicitly (allowFrom).
      open: false,
    });
    const targetGroup = listener.addTargets('Backend', {
      port: BACKEND_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targets: [this.service],
      healthCheck: {
        // /ready, not /health: a task takes traffic only once its JWKS is loaded.
        path: '/ready',
        healthyHttpCodes: '200',
        interval: Duration.seconds(15),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 3,
      },
      deregistrationDelay: Duration.seconds(30),
    });
    this.targetGroup = targetGroup;
    // CDK makes the service DependsOn the target group it also Refs (it needs the listener to exist
    // first, and lists the group with it). Harmless, but cfn-lint warns (W3005) about the redundant
    // half; silence exactly that check on exactly this resource.
    (this.service.node.defaultChild as CfnResource).addMetadata('cfn-lint', {
      config: { ignore_checks: ['W3005'] },
    });

    const scaling = this.service.autoScaleTaskCount({
      minCapacity: props.minCapacity,
      maxCapacity: props.maxCapacity,
    });
    scaling.scaleOnCpuUtilization('Cpu', {
      targetUtilizationPercent: 60,
      scaleOutCooldown: Duration.seconds(60),
      scaleInCooldown: Duration.seconds(180),
    });
    scaling.scaleOnRequestCount('Requests', {
      // Per target per minute; JWT verification is cached, so CPU usually trips first.
      requestsPerTarget: 6000,
      targetGroup,
      scaleOutCooldown: Duration.seconds(60),
      scaleInCooldown: Duration.seconds(180),
    });

    this.dnsNameParameter = new ssm.StringParameter(this, 'Alb2DnsName', {
      parameterName: props.ssmParameterName,
      stringValue: this.loadBalancer.loadBalancerDnsName,
      description: "ALB2's DNS name: planb-proxy reads it at start and re-reads it every ssm_refresh_secs",
      tier: ssm.ParameterTier.STANDARD,
    });
  }

  /**
   * ECS deployment alarms, next to the circuit breaker: while a deployment bakes, any of `alarms`
   * going off rolls it back. (Referenced by name: the Ref also orders the alarms first.)
   */
  public rollBackOnAlarms(alarms: cloudwatch.IAlarm[]): void {
    this.service.enableDeploymentAlarms(
      alarms.map((a) => a.alarmName),
      { behavior: ecs.AlarmBehavior.ROLLBACK_ON_ALARM },
    );
  }

  /**
   * A CloudWatch agent sidecar: scrapes the backend's /metrics over the task's localhost and writes
   * {@link BACKEND_METRICS} as EMF (namespace PlanB/Backend). Not essential: an agent failure
   * costs metrics, never requests.
   */
  private addMetricsSidecar(
    taskDefinition: ecs.FargateTaskDefinition,
    logGroup: logs.LogGroup,
    detail: MetricDetail,
    platform: Platform,
  ): void {
    const metricsLogGroup = new logs.LogGroup(this, 'MetricsLogs', {
      // The EMF records only feed the metrics; CloudWatch keeps those 15 months on its own.
      retention: logs.RetentionDays.ONE_WEEK,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const agentConfig = {
      logs: {
        metrics_collected: {
          // "env:": the agent reads the scrape configuration from that variable (set below).
          prometheus: prometheusSection(
            'env:PROMETHEUS_CONFIG_CONTENT',
            metricsLogGroup.logGroupName,
            BACKEND_METRIC_NAMESPACE,
            BACKEND_SCRAPE_JOB,
            atDetail(BACKEND_METRICS, detail),
          ),
        },
      },
    };
    taskDefinition.addContainer('cloudwatch-agent', {
      image: ecs.ContainerImage.fromAsset(CLOUDWATCH_AGENT_IMAGE_DIR, {
        platform,
      }),
      essential: false,
      memoryReservationMiB: 64,
      environment: {
        CW_CONFIG_CONTENT: Stack.of(this).toJsonString(agentConfig),
        PROMETHEUS_CONFIG_CONTENT: scrapeConfig(BACKEND_SCRAPE_JOB, `localhost:${BACKEND_PORT}`),
      },
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'cloudwatch-agent', logGroup }),
    });
    taskDefinition.addToTaskRolePolicy(
      new iam.PolicyStatement({
        sid: 'MetricsAsEmf',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
        resources: [metricsLogGroup.logGroupArn],
      }),
    );
  }

  /** Lets `peer` (the proxy fleet) reach ALB2's listener, and nothing else in. */
  public allowFrom(peer: ec2.IConnectable): void {
    this.loadBalancer.connections.allowFrom(peer, ec2.Port.tcp(ALB2_PORT), 'planb-proxy to ALB2');
  }
}
