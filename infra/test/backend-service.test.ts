import * as fs from 'fs';
import * as path from 'path';
import { Match } from 'aws-cdk-lib/assertions';
import { logicalId, synth, Synthesized } from './helpers';

describe('backend service', () => {
  let s: Synthesized;

  beforeAll(() => {
    s = synth();
  });

  test("the SSM parameter's value is ALB2's DNS name", () => {
    s.template.hasResourceProperties('AWS::SSM::Parameter', {
      Name: '/planb/PlanB/alb2/dns-name',
      Type: 'String',
      Value: { 'Fn::GetAtt': [logicalId(s.stack, 'Backend/InternalAlb'), 'DNSName'] },
    });
  });

  test('the task environment comes from the pool, the clients, the region, the hosted UI and ALB1', () => {
    const env = s.template.toJSON().Resources[logicalId(s.stack, 'Backend/Task')].Properties.ContainerDefinitions[0]
      .Environment;
    const byName = Object.fromEntries(env.map((e: { Name: string; Value: unknown }) => [e.Name, e.Value]));
    expect(byName).toEqual({
      COGNITO_USER_POOL_ID: { Ref: logicalId(s.stack, 'Auth/UserPool') },
      COGNITO_REGION: 'eu-west-1',
      // ALB1's client first (the one /logout signs the browser out of), then the machine client.
      COGNITO_APP_CLIENT_ID: {
        'Fn::Join': [',', [{ Ref: logicalId(s.stack, 'Auth/UserPool/AlbClient') }, { Ref: logicalId(s.stack, 'Auth/UserPool/MachineClient') }]],
      },
      LISTEN_ADDR: '0.0.0.0:8080',
      PROFILE_SCOPE: 'profile',
      // Ref of an ALB is its ARN: the backend checks the x-amzn-oidc-data signer against it.
      ALB_ARN: { Ref: logicalId(s.stack, 'PublicAlb/Alb') },
      RUST_LOG: 'info',
      LOG_FORMAT: 'json',
      NOTES_TABLE: { Ref: logicalId(s.stack, 'Backend/Notes') },
      // GET /logout: Cognito's hosted UI, and the app's URL to come back to (a registered sign-out URL).
      COGNITO_DOMAIN: {
        'Fn::Join': ['', ['https://', { Ref: logicalId(s.stack, 'Auth/UserPool/Domain') }, '.auth.eu-west-1.amazoncognito.com']],
      },
      LOGOUT_REDIRECT_URL: { 'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [logicalId(s.stack, 'PublicAlb/Alb'), 'DNSName'] }, '/']] },
    });
  });

  test('the container: port 8080, logs to CloudWatch, read-only root, ARM64 (Graviton) Fargate', () => {
    s.template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      RequiresCompatibilities: ['FARGATE'],
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
      // The backend first, then the metrics sidecar (test/operations.test.ts).
      ContainerDefinitions: [
        Match.objectLike({
          Name: 'backend',
          Essential: true,
          PortMappings: [Match.objectLike({ ContainerPort: 8080 })],
          ReadonlyRootFilesystem: true,
          LogConfiguration: Match.objectLike({ LogDriver: 'awslogs' }),
        }),
        Match.objectLike({ Name: 'cloudwatch-agent', Essential: false }),
      ],
    });
  });

  test('the service: private subnets, no public IP, rollback on failed deployments', () => {
    s.template.hasResourceProperties('AWS::ECS::Service', {
      NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'DISABLED' }) },
      DeploymentConfiguration: Match.objectLike({
        DeploymentCircuitBreaker: { Enable: true, Rollback: true },
        MinimumHealthyPercent: 100,
      }),
    });
    s.template.hasResourceProperties('AWS::ECS::Cluster', {
      ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }],
    });
  });

  test('ALB2 listens on 80 and checks the backend on /ready (JWKS loaded), not /health', () => {
    s.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      LoadBalancerArn: { Ref: logicalId(s.stack, 'Backend/InternalAlb') },
      Port: 80,
      Protocol: 'HTTP',
      DefaultActions: [Match.objectLike({ Type: 'forward' })],
    });
    s.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      Port: 8080,
      TargetType: 'ip',
      HealthCheckPath: '/ready',
    });
  });

  test('target-tracking autoscaling on CPU and requests per target', () => {
    s.template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      MinCapacity: 2,
      MaxCapacity: 8,
      ScalableDimension: 'ecs:service:DesiredCount',
      ServiceNamespace: 'ecs',
    });
    s.template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'TargetTrackingScaling',
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({
        PredefinedMetricSpecification: { PredefinedMetricType: 'ECSServiceAverageCPUUtilization' },
        TargetValue: 60,
      }),
    });
    s.template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'TargetTrackingScaling',
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({
        PredefinedMetricSpecification: Match.objectLike({ PredefinedMetricType: 'ALBRequestCountPerTarget' }),
      }),
    });
  });

  test('the image is built from Dockerfile.backend with a context of sources only', () => {
    const assembly = s.app.synth();
    const assets = JSON.parse(fs.readFileSync(path.join(assembly.directory, `${s.stack.artifactId}.assets.json`), 'utf8'));
    const images = Object.values(assets.dockerImages) as { source: { directory: string; dockerFile?: string; platform: string } }[];
    // The backend's and the metrics sidecar's (infra/images/cloudwatch-agent), both for the task's CPU.
    expect(images).toHaveLength(2);
    expect(images.map((i) => i.source.platform)).toEqual(['linux/arm64', 'linux/arm64']);
    const { source } = images.find((i) => i.source.dockerFile === 'Dockerfile.backend')!;
    // The staged context (what Docker receives at deploy time): the workspace, nothing else.
    const staged = path.join(assembly.directory, source.directory);
    const top = fs.readdirSync(staged).sort();
    expect(top).toEqual(['.dockerignore', 'Cargo.lock', 'Cargo.toml', 'Dockerfile.backend', 'backend', 'cognito-verifier', 'examples', 'proxy', 'testkit']);
    expect(fs.existsSync(path.join(staged, 'backend', 'Cargo.toml'))).toBe(true);
    expect(fs.existsSync(path.join(staged, 'backend', 'src'))).toBe(true);
    // No documentation (a README edit would change the image's hash and roll the service), but
    // the backend's README, whose configuration table `--help` prints; none of testkit's Python.
    const all = (dir: string, prefix = ''): string[] =>
      fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? all(path.join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`]));
    const files = all(staged);
    expect(files.filter((f) => f.endsWith('.md'))).toEqual(['backend/README.md']);
    expect(files.filter((f) => f.startsWith('testkit/')).every((f) => f === 'testkit/Cargo.toml' || f.startsWith('testkit/src/'))).toBe(true);
    expect(files).toContain('testkit/src/lib.rs');
  });
});

describe('backend service variants', () => {
  test('planb:verifyAlbSignature=false leaves ALB_ARN unset', () => {
    const s = synth({ 'planb:verifyAlbSignature': false });
    const env = s.template.toJSON().Resources[logicalId(s.stack, 'Backend/Task')].Properties.ContainerDefinitions[0]
      .Environment as { Name: string }[];
    expect(env.map((e) => e.Name)).not.toContain('ALB_ARN');
  });

  test('x86_64 runs the tasks on x86_64', () => {
    const s = synth({ 'planb:architecture': 'x86_64' });
    s.template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      RuntimePlatform: { CpuArchitecture: 'X86_64', OperatingSystemFamily: 'LINUX' },
    });
  });
});
