import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { MetricDetail } from '../prometheus';
import { PROXY_METRIC_NAMESPACE, PROXY_SCRAPE_JOB } from '../proxy-host';
import { BACKEND_METRIC_NAMESPACE, BACKEND_SCRAPE_JOB, BackendService } from './backend-service';

/** One load balancer tier as the alarms see it. */
export interface AlbTier {
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly targetGroup: elbv2.ApplicationTargetGroup;
  /** p99 TargetResponseTime above this is an alarm. */
  readonly p99Threshold: Duration;
}

/** Properties of {@link Monitoring}. */
export interface MonitoringProps {
  /** Prefix of every alarm name (ECS deployment alarms are referenced by name). */
  readonly stackName: string;
  /** ALB1 → proxies. */
  readonly alb1: AlbTier;
  /** ALB2 → backend tasks. */
  readonly alb2: AlbTier;
  readonly backend: BackendService;
  /** Subscribed to the alarm topic when given. */
  readonly alarmEmail?: string;
  /** The dimensions the agents publish: the dashboard graphs only those. */
  readonly metricDetail: MetricDetail;
}

/**
 * Verification failure reasons alarmed on one by one, with the count per 5 minutes that trips
 * each. Behind ALB1 every request carries a token ALB1 just got from Cognito, so these should be 0:
 * a few mean a client calls ALB2's side directly or a misconfiguration, many an attack.
 */
export const VERIFICATION_REASON_THRESHOLDS: Record<string, number> = {
  invalid_signature: 5,
  wrong_issuer: 5,
  wrong_client: 5,
  alb_invalid_signature: 5,
  alb_wrong_signer: 5,
  identity_mismatch: 5,
  jwks_unavailable: 1,
  alb_key_unavailable: 1,
};

/** All verification failures together, per 5 minutes. */
export const VERIFICATION_TOTAL_THRESHOLD = 50;

/** Load balancer 5xx (ELB's own or the targets') per 5 minutes. */
export const HTTP_5XX_THRESHOLD = 10;

/**
 * Alarms, their SNS topic and one dashboard: both ALB tiers (ELB 5xx, target 5xx, p99 latency,
 * unhealthy hosts), the backend's running tasks and verification failures, the proxies' SSM
 * refresh failures. Alarm names start with the stack name; README lists what to do for each.
 */
export class Monitoring extends Construct {
  /** Every alarm notifies this topic (and the e-mail address, when given). */
  public readonly topic: sns.Topic;
  /** Every alarm, by short name (`alb1-elb-5xx`, ...). */
  public readonly alarms = new Map<string, cloudwatch.Alarm>();
  /** The one dashboard. */
  public readonly dashboard: cloudwatch.Dashboard;
  private readonly stackName: string;
  private readonly metricDetail: MetricDetail;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    this.stackName = props.stackName;
    this.metricDetail = props.metricDetail;

    // SNS encrypts with a key CloudWatch may use: the AWS-managed SNS key does not let CloudWatch
    // publish, so the topic gets its own (rotated yearly).
    const key = new kms.Key(this, 'TopicKey', {
      description: `${props.stackName}: encrypts the alarm topic`,
      enableKeyRotation: true,
    });
    key.grant(new iam.ServicePrincipal('cloudwatch.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');
    this.topic = new sns.Topic(this, 'Alarms', { masterKey: key, enforceSSL: true, displayName: `${props.stackName} alarms` });
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));

    const widgets: cloudwatch.IWidget[][] = [];
    for (const [tier, alb] of [['alb1', props.alb1], ['alb2', props.alb2]] as const) {
      widgets.push(this.albAlarms(tier, alb));
    }
    widgets.push(this.backendAlarms(props.backend));
    widgets.push(this.proxyAlarms());

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: props.stackName,
      defaultInterval: Duration.hours(3),
    });
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: [...this.alarms.values()], width: 24 }),
    );
    for (const row of widgets) this.dashboard.addWidgets(...row);
  }

  /** The alarms ECS rolls a backend deployment back on: ALB2's 5xx (never one that watches the service). */
  public backendDeploymentAlarms(): cloudwatch.Alarm[] {
    return ['alb2-elb-5xx', 'alb2-target-5xx'].map((n) => this.alarms.get(n)!);
  }

  private alarm(name: string, metric: cloudwatch.IMetric, props: Omit<cloudwatch.CreateAlarmOptions, 'metric'>): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, name, {
      metric,
      alarmName: `${this.stackName}-${name}`,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      ...props,
    });
    alarm.addAlarmAction(new cwActions.SnsAction(this.topic));
    alarm.addOkAction(new cwActions.SnsAction(this.topic));
    this.alarms.set(name, alarm);
    return alarm;
  }

  private albAlarms(tier: 'alb1' | 'alb2', alb: AlbTier): cloudwatch.IWidget[] {
    const fiveMin = { period: Duration.minutes(5), statistic: 'Sum' };
    const elb5xx = alb.loadBalancer.metrics.httpCodeElb(elbv2.HttpCodeElb.ELB_5XX_COUNT, fiveMin);
    const target5xx = alb.loadBalancer.metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, fiveMin);
    const p99 = alb.loadBalancer.metrics.targetResponseTime({ period: Duration.minutes(5), statistic: 'p99' });
    const unhealthy = alb.targetGroup.metrics.unhealthyHostCount({ period: Duration.minutes(1), statistic: 'Maximum' });
    const above = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD;
    this.alarm(`${tier}-elb-5xx`, elb5xx, { threshold: HTTP_5XX_THRESHOLD, evaluationPeriods: 1, comparisonOperator: above });
    this.alarm(`${tier}-target-5xx`, target5xx, { threshold: HTTP_5XX_THRESHOLD, evaluationPeriods: 1, comparisonOperator: above });
    this.alarm(`${tier}-p99-latency`, p99, {
      threshold: alb.p99Threshold.toMilliseconds() / 1000,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      comparisonOperator: above,
    });
    this.alarm(`${tier}-unhealthy-hosts`, unhealthy, {
      threshold: 0,
      evaluationPeriods: 3,
      comparisonOperator: above,
    });
    const title = tier === 'alb1' ? 'ALB1 (internet → proxies)' : 'ALB2 (proxies → backend)';
    return [
      new cloudwatch.GraphWidget({ title: `${title}: 5xx per 5 min`, left: [elb5xx, target5xx], width: 8 }),
      new cloudwatch.GraphWidget({ title: `${title}: p99 response time (s)`, left: [p99], width: 8 }),
      new cloudwatch.GraphWidget({ title: `${title}: unhealthy targets`, left: [unhealthy], width: 8 }),
    ];
  }

  private backendAlarms(backend: BackendService): cloudwatch.IWidget[] {
    const running = new cloudwatch.Metric({
      namespace: 'ECS/ContainerInsights',
      metricName: 'RunningTaskCount',
      dimensionsMap: { ClusterName: backend.cluster.clusterName, ServiceName: backend.service.serviceName },
      period: Duration.minutes(1),
      statistic: 'Minimum',
    });
    this.alarm('backend-running-tasks', running, {
      threshold: backend.minCapacity,
      evaluationPeriods: 5,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      // No data means no task reports at all: as bad as it gets.
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });

    const failures = (dims: Record<string, string>) =>
      new cloudwatch.Metric({
        namespace: BACKEND_METRIC_NAMESPACE,
        metricName: 'planb_verification_failures_total',
        dimensionsMap: { job: BACKEND_SCRAPE_JOB, ...dims },
        period: Duration.minutes(5),
        statistic: 'Sum',
      });
    const above = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD;
    this.alarm('backend-verification-failures', failures({}), {
      threshold: VERIFICATION_TOTAL_THRESHOLD,
      evaluationPeriods: 1,
      comparisonOperator: above,
    });
    for (const [reason, threshold] of Object.entries(VERIFICATION_REASON_THRESHOLDS)) {
      this.alarm(`backend-verification-${reason.replace(/_/g, '-')}`, failures({ reason }), {
        threshold,
        evaluationPeriods: 1,
        comparisonOperator: above,
      });
    }
    const byReason = new cloudwatch.MathExpression({
      expression: `SEARCH('{${BACKEND_METRIC_NAMESPACE},job,reason} MetricName="planb_verification_failures_total"', 'Sum', 300)`,
      label: '',
      period: Duration.minutes(5),
    });
    // Per route only where the agent publishes the route (full detail).
    const requestDimensions = this.metricDetail === 'full' ? 'job,route,status' : 'job,status';
    const byRoute = new cloudwatch.MathExpression({
      expression: `SEARCH('{${BACKEND_METRIC_NAMESPACE},${requestDimensions}} MetricName="planb_requests_total"', 'Sum', 300)`,
      label: '',
      period: Duration.minutes(5),
    });
    return [
      new cloudwatch.GraphWidget({ title: 'Backend: running tasks', left: [running], width: 8 }),
      new cloudwatch.GraphWidget({ title: 'Backend: verification failures by reason per 5 min', left: [byReason], width: 16 }),
      new cloudwatch.GraphWidget({
        title: `Backend: requests by ${this.metricDetail === 'full' ? 'route and ' : ''}status per 5 min`,
        left: [byRoute],
        width: 24,
      }),
    ];
  }

  private proxyAlarms(): cloudwatch.IWidget[] {
    const metric = (name: string) =>
      new cloudwatch.Metric({
        namespace: PROXY_METRIC_NAMESPACE,
        metricName: name,
        dimensionsMap: { job: PROXY_SCRAPE_JOB },
        period: Duration.minutes(5),
        statistic: 'Sum',
      });
    const ssm = metric('planb_proxy_ssm_refresh_failures_total');
    // One failed refresh is retried at the next interval (ssm_refresh_secs); two in 15 minutes
    // across the fleet means the proxies cannot read the parameter (role, endpoint, deletion).
    this.alarm('proxy-ssm-refresh-failures', ssm, {
      threshold: 2,
      evaluationPeriods: 3,
      datapointsToAlarm: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    });
    return [
      new cloudwatch.GraphWidget({
        title: 'Proxies: SSM and DNS refresh failures per 5 min',
        left: [ssm, metric('planb_proxy_dns_refresh_failures_total')],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Proxies: upstream errors per 5 min',
        left: [metric('planb_proxy_upstream_errors_total'), metric('planb_proxy_upstream_connect_failures_total')],
        width: 12,
      }),
      // Reuse is what keeps ALB2's new-connection cost off the request path.
      new cloudwatch.GraphWidget({
        title: `Proxies: connections to ALB2 ${this.metricDetail === 'full' ? 'opened and reused ' : ''}per 5 min`,
        left:
          this.metricDetail === 'full'
            ? ['false', 'true'].map((reused) =>
                metric('planb_proxy_upstream_connections_total').with({
                  dimensionsMap: { job: PROXY_SCRAPE_JOB, reused },
                  label: reused === 'true' ? 'reused' : 'opened',
                }),
              )
            : [metric('planb_proxy_upstream_connections_total')],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Proxies: request head timeouts per 5 min',
        left: [metric('planb_proxy_request_head_timeouts_total')],
        width: 12,
      }),
    ];
  }
}

