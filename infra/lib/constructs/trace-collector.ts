import * as path from 'path';
import { Stack, Validations } from 'aws-cdk-lib';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { INFRA_DIR } from '../config';

/**
 * The collector's image: AWS's Distro for OpenTelemetry collector (a release tag, multi-arch)
 * with `config.yaml` of the same directory baked in, built as a CDK asset like the CloudWatch
 * agent's (see `CLOUDWATCH_AGENT_IMAGE_DIR` for why an asset and not a registry reference).
 */
export const OTEL_COLLECTOR_IMAGE_DIR = path.join(INFRA_DIR, 'images', 'otel-collector');

/** Where the collector's OTLP/HTTP receiver listens: the task's localhost (its config.yaml). */
export const OTLP_HTTP_ENDPOINT = 'http://127.0.0.1:4318';

/** The service name the backend's spans carry, and X-Ray's name for its segments. */
export const TRACED_SERVICE_NAME = 'planb-backend';

/**
 * What the collector calls in X-Ray: sending segments and telemetry, and reading the sampling
 * rules and targets. X-Ray has no resource-level permissions for any of them.
 */
export const XRAY_WRITE_ACTIONS = [
  'xray:PutTraceSegments',
  'xray:PutTelemetryRecords',
  'xray:GetSamplingRules',
  'xray:GetSamplingTargets',
  'xray:GetSamplingStatisticSummaries',
] as const;

/** The collector's memory: a small reservation, and a hard limit it is killed at, alone. */
const RESERVED_MIB = 64;
const LIMIT_MIB = 128;

/** Properties of {@link TraceCollector}. */
export interface TraceCollectorProps {
  /** The backend's task definition: the collector joins it as a sidecar. */
  readonly taskDefinition: ecs.TaskDefinition;
  /** The planb-backend container: it is told where to send its spans, and which to sample. */
  readonly backend: ecs.ContainerDefinition;
  /** The backend's log group: the collector's own lines go there too (stream prefix `otel-collector`). */
  readonly logGroup: logs.ILogGroup;
  /** The task's CPU architecture, for the image build. */
  readonly platform: Platform;
  /** The share of traces the backend starts that it records, in (0, 1]; a parent's decision wins. */
  readonly sampleRatio: number;
}

/**
 * Traces from planb-backend to AWS X-Ray: the ADOT collector as a sidecar of the backend's task
 * (OTLP/HTTP in on the task's localhost, X-Ray out), the backend's `OTEL_*` settings, and the task
 * role's X-Ray statement. Not essential: a collector failure costs traces, never requests.
 */
export class TraceCollector extends Construct {
  /** The collector container. */
  public readonly container: ecs.ContainerDefinition;

  constructor(scope: Construct, id: string, props: TraceCollectorProps) {
    super(scope, id);
    const { taskDefinition } = props;

    this.container = taskDefinition.addContainer('otel-collector', {
      image: ecs.ContainerImage.fromAsset(OTEL_COLLECTOR_IMAGE_DIR, { platform: props.platform }),
      essential: false,
      memoryReservationMiB: RESERVED_MIB,
      // A hard limit of its own: a collector that grows is killed at it, not the backend at the task's.
      memoryLimitMiB: LIMIT_MIB,
      // config.yaml reads the exporter's region from here.
      environment: { AWS_REGION: Stack.of(this).region },
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'otel-collector', logGroup: props.logGroup }),
    });

    // The OpenTelemetry SDK's standard variables: the backend exports only when they are set.
    props.backend.addEnvironment('OTEL_EXPORTER_OTLP_ENDPOINT', OTLP_HTTP_ENDPOINT);
    // Parent-based: a trace ALB1 or a caller decided to sample stays sampled, and the reverse;
    // the ratio decides only for traces that start at the backend.
    props.backend.addEnvironment('OTEL_TRACES_SAMPLER', 'parentbased_traceidratio');
    props.backend.addEnvironment('OTEL_TRACES_SAMPLER_ARG', String(props.sampleRatio));
    props.backend.addEnvironment('OTEL_SERVICE_NAME', TRACED_SERVICE_NAME);

    taskDefinition.addToTaskRolePolicy(
      new iam.PolicyStatement({ sid: 'XRayWrite', actions: [...XRAY_WRITE_ACTIONS], resources: ['*'] }),
    );
    Validations.of(taskDefinition.taskRole).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'The task role\'s only "*" is the X-Ray statement of the trace collector (PutTraceSegments, PutTelemetryRecords, GetSamplingRules, GetSamplingTargets, GetSamplingStatisticSummaries): X-Ray has no resource-level permissions for these actions, and none of them reads a trace. The notes table and the metrics log group are granted by exact ARN.',
    });
  }
}
