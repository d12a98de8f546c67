import * as fs from 'fs';
import * as path from 'path';
import { parse } from 'yaml';
import {
  OTEL_COLLECTOR_IMAGE_DIR,
  OTLP_HTTP_ENDPOINT,
  TRACED_SERVICE_NAME,
} from '../lib/constructs/trace-collector';
import { logicalId, synth, Synthesized } from './helpers';

type Container = { Name: string; Essential?: boolean; Environment?: { Name: string; Value: unknown }[]; [k: string]: any };

function containers(s: Synthesized): Container[] {
  return s.template.toJSON().Resources[logicalId(s.stack, 'Backend/Task')].Properties.ContainerDefinitions;
}

function environmentOf(c: Container): Record<string, unknown> {
  return Object.fromEntries((c.Environment ?? []).map((e) => [e.Name, e.Value]));
}

/** Every IAM statement that names an X-Ray action, with the resources holding it. */
function xrayStatements(s: Synthesized): { holder: string; statement: any }[] {
  const resources = s.template.toJSON().Resources as Record<string, { Type: string; Properties: any }>;
  return Object.entries(resources).flatMap(([id, r]) => {
    const documents =
      r.Type === 'AWS::IAM::Policy'
        ? [r.Properties.PolicyDocument]
        : r.Type === 'AWS::IAM::Role'
          ? (r.Properties.Policies ?? []).map((p: any) => p.PolicyDocument)
          : [];
    return documents
      .flatMap((d: any) => d.Statement)
      .filter((st: any) => ([] as string[]).concat(st.Action).some((a) => a.startsWith('xray:')))
      .map((statement: any) => ({ holder: r.Type === 'AWS::IAM::Policy' ? JSON.stringify(r.Properties.Roles) : id, statement }));
  });
}

describe('traces: off unless planb:traceSampleRatio is set', () => {
  test.each([
    ['absent', {}],
    ['0', { 'planb:traceSampleRatio': '0' }],
  ])('%s: no collector, no OTEL_* variables, no X-Ray permission', (_name, overrides) => {
    const s = synth(overrides);
    expect(containers(s).map((c) => c.Name)).toEqual(['backend', 'cloudwatch-agent']);
    for (const c of containers(s)) expect(Object.keys(environmentOf(c)).filter((k) => k.startsWith('OTEL_'))).toEqual([]);
    expect(xrayStatements(s)).toEqual([]);
  });
});

describe('traces on (planb:traceSampleRatio=0.25)', () => {
  let s: Synthesized;

  beforeAll(() => {
    s = synth({ 'planb:traceSampleRatio': '0.25' });
  });

  test('the collector is a non-essential sidecar with a small memory reservation and a hard limit of its own', () => {
    const collector = containers(s).find((c) => c.Name === 'otel-collector')!;
    expect(collector).toMatchObject({ Essential: false, MemoryReservation: 64, Memory: 128 });
    expect(collector.MemoryReservation).toBeLessThan(collector.Memory);
    // The backend stays the task's one essential container and waits for nothing.
    expect(containers(s).filter((c) => c.Essential !== false).map((c) => c.Name)).toEqual(['backend']);
    expect(containers(s).find((c) => c.Name === 'backend')!.DependsOn).toBeUndefined();
    // The exporter's region is the stack's; its lines go to the backend's log group.
    expect(environmentOf(collector)).toEqual({ AWS_REGION: 'eu-west-1' });
    expect(collector.LogConfiguration.Options).toMatchObject({
      'awslogs-group': { Ref: logicalId(s.stack, 'Backend/Logs') },
      'awslogs-stream-prefix': 'otel-collector',
    });
  });

  test('the backend is told where to send spans and which to keep', () => {
    const env = environmentOf(containers(s).find((c) => c.Name === 'backend')!);
    expect(Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('OTEL_')))).toEqual({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
      OTEL_SERVICE_NAME: TRACED_SERVICE_NAME,
    });
  });

  test("a ratio typed as a number in cdk.json reaches the backend the same way", () => {
    const every = synth({ 'planb:traceSampleRatio': 1 });
    expect(environmentOf(containers(every).find((c) => c.Name === 'backend')!).OTEL_TRACES_SAMPLER_ARG).toBe('1');
  });

  test("X-Ray's five write and sampling actions, on the task role only: nothing that reads a trace", () => {
    const found = xrayStatements(s);
    expect(found).toHaveLength(1);
    expect(found[0].holder).toBe(JSON.stringify([{ Ref: logicalId(s.stack, 'Backend/Task/TaskRole') }]));
    const { Action, ...rest } = found[0].statement;
    expect(rest).toEqual({ Sid: 'XRayWrite', Effect: 'Allow', Resource: '*' });
    expect([...Action].sort()).toEqual([
      'xray:GetSamplingRules',
      'xray:GetSamplingStatisticSummaries',
      'xray:GetSamplingTargets',
      'xray:PutTelemetryRecords',
      'xray:PutTraceSegments',
    ]);
  });

  test("the image is an asset built from images/otel-collector, with the repository's config.yaml baked in", () => {
    const collector = containers(s).find((c) => c.Name === 'otel-collector')!;
    const image = JSON.stringify(collector.Image);
    expect(image).not.toContain('public.ecr.aws');
    const hash = /cdk-hnb659fds-container-assets-.*:([0-9a-f]{64})"/.exec(image)![1];
    const staged = path.join(s.app.synth().directory, `asset.${hash}`);
    for (const file of ['Dockerfile', 'config.yaml']) {
      expect(fs.readFileSync(path.join(staged, file), 'utf8')).toBe(fs.readFileSync(path.join(OTEL_COLLECTOR_IMAGE_DIR, file), 'utf8'));
    }
  });

  test('the Dockerfile: the ADOT release tag, the config copied where the command reads it', () => {
    const lines = fs
      .readFileSync(path.join(OTEL_COLLECTOR_IMAGE_DIR, 'Dockerfile'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'));
    expect(lines[0]).toBe('FROM public.ecr.aws/aws-observability/aws-otel-collector:v0.49.0');
    const copied = /^COPY config\.yaml (\S+)$/.exec(lines[1])![1];
    expect(lines.slice(2)).toEqual([`CMD ["--config=${copied}"]`]);
  });

  test("config.yaml: OTLP/HTTP in on the backend's endpoint, batched, X-Ray out, traces only", () => {
    const config = parse(fs.readFileSync(path.join(OTEL_COLLECTOR_IMAGE_DIR, 'config.yaml'), 'utf8'));
    expect(Object.keys(config.receivers.otlp.protocols)).toEqual(['http']);
    expect(`http://${config.receivers.otlp.protocols.http.endpoint}`).toBe(OTLP_HTTP_ENDPOINT);
    expect(new URL(OTLP_HTTP_ENDPOINT).hostname).toBe('127.0.0.1');
    expect(config.exporters).toEqual({ awsxray: { region: '${env:AWS_REGION}' } });
    expect(config.service.pipelines).toEqual({
      traces: { receivers: ['otlp'], processors: ['memory_limiter', 'batch'], exporters: ['awsxray'] },
    });
    // The limiter's ceiling sits below the container's hard limit, so it refuses spans before the kernel kills it.
    const collector = containers(s).find((c) => c.Name === 'otel-collector')!;
    expect(config.processors.memory_limiter.limit_mib).toBeLessThan(collector.Memory);
  });
});
