import * as fs from 'fs';
import * as path from 'path';
import { Match } from 'aws-cdk-lib/assertions';
import { BACKEND_METRICS, CLOUDWATCH_AGENT_IMAGE_DIR, NOTES_TABLE_ACTIONS } from '../lib/constructs/backend-service';
import { REPO_ROOT } from '../lib/config';
import { CDK_BOOTSTRAP_ROLES } from '../lib/constructs/github-deploy';
import { VERIFICATION_REASON_THRESHOLDS } from '../lib/constructs/monitoring';
import { ROOT_VOLUME_GIB } from '../lib/constructs/proxy-fleet';
import { BODY_ROUTES, BODY_RULES_OUTSIDE_ROUTES, MANAGED_RULE_GROUPS, RATE_LIMIT_PER_5_MIN } from '../lib/constructs/web-acl';
import { ALB1_IDLE_TIMEOUT_SECS, DOWNSTREAM_KEEPALIVE_SECS } from '../lib/keepalive';
import { PROXY_LOG_FILE, PROXY_METRICS } from '../lib/proxy-host';
import { logicalId, proxyUserData, synth, Synthesized } from './helpers';

type Statement = { Sid?: string; Action: string | string[]; Resource: unknown; Effect: string };

/** Every IAM statement in the template: inline role policies and standalone policies. */
function allStatements(s: Synthesized): Statement[] {
  const resources = Object.values(s.template.toJSON().Resources) as { Type: string; Properties: any }[];
  return resources.flatMap((r) => {
    if (r.Type === 'AWS::IAM::Policy') return r.Properties.PolicyDocument.Statement;
    if (r.Type === 'AWS::IAM::Role') return (r.Properties.Policies ?? []).flatMap((p: any) => p.PolicyDocument.Statement);
    return [];
  });
}

const actionsOf = (st: Statement) => ([] as string[]).concat(st.Action);

describe('edge, observability, rollouts, cost, notes (defaults)', () => {
  let s: Synthesized;
  let userData: string;
  let resources: Record<string, any>;

  beforeAll(() => {
    s = synth();
    userData = proxyUserData(s);
    resources = s.template.toJSON().Resources;
  });

  describe('edge', () => {
    test('a WAFv2 web ACL on ALB1: the managed groups, the body rules outside notes, the notes size limit, then a per-IP rate limit that blocks', () => {
      const acl = Object.values(s.template.findResources('AWS::WAFv2::WebACL'))[0].Properties;
      expect(acl.Scope).toBe('REGIONAL');
      expect(acl.DefaultAction).toEqual({ Allow: {} });
      const rules = [...acl.Rules].sort((a: any, b: any) => a.Priority - b.Priority);
      expect(rules.map((r: any) => r.Statement.ManagedRuleGroupStatement?.Name).filter(Boolean)).toEqual([...MANAGED_RULE_GROUPS]);
      expect(MANAGED_RULE_GROUPS).toEqual(
        expect.arrayContaining(['AWSManagedRulesCommonRuleSet', 'AWSManagedRulesKnownBadInputsRuleSet', 'AWSManagedRulesAmazonIpReputationList']),
      );
      for (const r of rules.slice(0, 3)) expect(r.OverrideAction).toEqual({ None: {} });
      // test/web-acl.test.ts: what these two block and let through.
      expect(rules.slice(3, 5).map((r: any) => [r.Name, r.Action])).toEqual([
        [BODY_RULES_OUTSIDE_ROUTES, { Block: {} }],
        [BODY_ROUTES[0].overLimitRule, { Block: {} }],
      ]);
      expect(rules).toHaveLength(6);
      expect(rules[5]).toMatchObject({
        Action: { Block: {} },
        Statement: { RateBasedStatement: { Limit: RATE_LIMIT_PER_5_MIN, AggregateKeyType: 'IP' } },
      });
      s.template.hasResourceProperties('AWS::WAFv2::WebACLAssociation', {
        ResourceArn: { Ref: logicalId(s.stack, 'PublicAlb/Alb') },
        WebACLArn: { 'Fn::GetAtt': [logicalId(s.stack, 'WebAcl/Acl'), 'Arn'] },
      });
    });

    test('WAF logs to a log group named aws-waf-logs-<stack>, with retention and secrets redacted', () => {
      s.template.hasResourceProperties('AWS::Logs::LogGroup', { LogGroupName: 'aws-waf-logs-PlanB', RetentionInDays: 90 });
      const logging = Object.values(s.template.findResources('AWS::WAFv2::LoggingConfiguration'))[0].Properties;
      expect(logging.ResourceArn).toEqual({ 'Fn::GetAtt': [logicalId(s.stack, 'WebAcl/Acl'), 'Arn'] });
      const dest = JSON.stringify(logging.LogDestinationConfigs);
      expect(dest).toContain(':log-group:');
      expect(dest).toContain(logicalId(s.stack, 'WebAcl/Logs'));
      expect(dest).not.toContain(':*');
      expect(logging.RedactedFields).toEqual(
        expect.arrayContaining([{ SingleHeader: { Name: 'cookie' } }, { SingleHeader: { Name: 'authorization' } }]),
      );
    });

    test('ALB1 answers /metrics and /ready itself with a 404, by a rule that runs before the login', () => {
      const https = Object.entries(s.template.findResources('AWS::ElasticLoadBalancingV2::Listener')).find(
        ([, l]) => l.Properties.Port === 443,
      )!;
      // The login is the default action: every listener rule is evaluated before it.
      expect(https[1].Properties.DefaultActions[0].Type).toBe('authenticate-cognito');
      const rules = Object.values(s.template.findResources('AWS::ElasticLoadBalancingV2::ListenerRule'))
        .map((r) => r.Properties)
        .filter((r) => r.ListenerArn.Ref === https[0]);
      // The first rule of all, so no other rule (bearer, preflight, logout) forwards these paths.
      const internal = rules.filter((r) => r.Priority === 1);
      expect(internal).toHaveLength(1);
      expect(Math.min(...rules.map((r) => r.Priority))).toBe(1);
      expect(internal[0].Conditions).toEqual([
        { Field: 'path-pattern', PathPatternConfig: { Values: expect.arrayContaining(['/metrics', '/ready']) } },
      ]);
      expect(internal[0].Actions).toEqual([
        expect.objectContaining({ Type: 'fixed-response', FixedResponseConfig: expect.objectContaining({ StatusCode: '404' }) }),
      ]);
      expect(JSON.stringify(internal[0].Actions)).not.toContain('authenticate');
    });
  });

  describe('rollouts', () => {
    test("ALB1's idle timeout is below the proxy's downstream keep-alive, both from one constant", () => {
      const alb1 = resources[logicalId(s.stack, 'PublicAlb/Alb')].Properties.LoadBalancerAttributes;
      const idle = Number(alb1.find((a: any) => a.Key === 'idle_timeout.timeout_seconds').Value);
      const keepalive = Number(/^  downstream_keepalive_secs: (\d+)$/m.exec(userData)![1]);
      expect(idle).toBe(ALB1_IDLE_TIMEOUT_SECS);
      expect(keepalive).toBe(DOWNSTREAM_KEEPALIVE_SECS);
      expect(keepalive).toBeGreaterThan(idle);
    });

    test('an instance signals success only once ALB1 reports it healthy in the proxy target group', () => {
      const healthz = userData.indexOf('/healthz');
      const targetHealth = userData.indexOf('aws elbv2 describe-target-health');
      expect(healthz).toBeGreaterThan(0);
      expect(targetHealth).toBeGreaterThan(healthz);
      const waitLine = userData.slice(targetHealth - 200, userData.indexOf('\n', targetHealth));
      expect(waitLine).toContain(`{"Ref":"${logicalId(s.stack, 'PublicAlb/ProxyTargets')}"}`);
      expect(waitLine).toMatch(/= healthy \]/);
      expect(userData).toContain('wait_until 600 "ALB1 to call this instance healthy" alb1_healthy');
      expect(waitLine).toContain('Port=8080');
      // The signal is sent from the exit trap, with the script's status: a timeout is a failure.
      expect(userData).toMatch(/trap exitTrap EXIT/);
      const role = resources[logicalId(s.stack, 'ProxyFleet/Role')].Properties.Policies[0].PolicyDocument.Statement;
      expect(role.find((st: Statement) => st.Sid === 'ReadTargetHealth').Action).toBe('elasticloadbalancing:DescribeTargetHealth');
    });

    test("ECS deployment alarms (ALB2's 5xx) roll a deployment back, next to the circuit breaker", () => {
      const service = resources[logicalId(s.stack, 'Backend/Service')].Properties.DeploymentConfiguration;
      expect(service.DeploymentCircuitBreaker).toEqual({ Enable: true, Rollback: true });
      expect(service.Alarms).toEqual({
        Enable: true,
        Rollback: true,
        AlarmNames: [{ Ref: logicalId(s.stack, 'Monitoring/alb2-elb-5xx') }, { Ref: logicalId(s.stack, 'Monitoring/alb2-target-5xx') }],
      });
    });
  });

  describe('observability', () => {
    test('the proxy hosts run the CloudWatch agent on the exported journal and the /metrics scrape', () => {
      expect(userData).toContain('dnf install -y -q amazon-cloudwatch-agent logrotate');
      expect(userData).toContain(`"file_path":"${PROXY_LOG_FILE}"`);
      expect(userData).toContain(`"log_group_name":"{"Ref":"${logicalId(s.stack, 'ProxyFleet/Logs')}"}"`);
      expect(userData).toContain('"prometheus_config_path":"/opt/aws/amazon-cloudwatch-agent/etc/planb-prometheus.yaml"');
      expect(userData).toContain('"^planb_proxy_ssm_refresh_failures_total$"');
      expect(userData).toMatch(/- targets: \["127\.0\.0\.1:9100"\]/);
      expect(userData).toContain('amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:');
      // The exporter copies the proxy's own messages (the JSON lines) and resumes from its cursor;
      // test/log-export.test.ts runs it on a journal.
      expect(userData).toContain(
        'journalctl _SYSTEMD_UNIT=planb-proxy.service SYSLOG_IDENTIFIER=planb-proxy -o cat --follow --no-tail --cursor-file=',
      );
      expect(userData).toContain('systemctl enable --now planb-proxy-log-export.service planb-proxy-logrotate.timer');
      // The journal rate-limit drop-in is in place before the proxy first starts.
      expect(userData.indexOf('LogRateLimitIntervalSec=0')).toBeGreaterThan(0);
      expect(userData.indexOf('LogRateLimitIntervalSec=0')).toBeLessThan(userData.indexOf('systemctl enable --now planb-proxy.service'));
    });

    test('the proxy role writes exactly its two log groups; both have retention', () => {
      const role = resources[logicalId(s.stack, 'ProxyFleet/Role')].Properties.Policies[0].PolicyDocument.Statement;
      const ship = role.find((st: Statement) => st.Sid === 'ShipLogsAndMetrics');
      expect(ship.Resource).toEqual([
        { 'Fn::GetAtt': [logicalId(s.stack, 'ProxyFleet/Logs'), 'Arn'] },
        { 'Fn::GetAtt': [logicalId(s.stack, 'ProxyFleet/MetricsLogs'), 'Arn'] },
      ]);
      expect(resources[logicalId(s.stack, 'ProxyFleet/Logs')].Properties.RetentionInDays).toBe(30);
      expect(resources[logicalId(s.stack, 'ProxyFleet/MetricsLogs')].Properties.RetentionInDays).toBe(7);
    });

    test("the backend's /metrics reach CloudWatch through an agent sidecar that cannot take the task down", () => {
      const containers = resources[logicalId(s.stack, 'Backend/Task')].Properties.ContainerDefinitions;
      const agent = containers.find((c: any) => c.Name === 'cloudwatch-agent');
      expect(agent.Essential).toBe(false);
      const env = Object.fromEntries(agent.Environment.map((e: any) => [e.Name, e.Value]));
      expect(env.PROMETHEUS_CONFIG_CONTENT).toContain('- targets: ["localhost:8080"]');
      const cw = JSON.stringify(env.CW_CONFIG_CONTENT);
      expect(cw).toContain('env:PROMETHEUS_CONFIG_CONTENT');
      expect(cw).toContain('PlanB/Backend');
      expect(cw).toContain('planb_verification_failures_total');
      expect(cw).toContain('reason');
    });

    test("the agreed metric names reach CloudWatch, each with its labels as dimensions", () => {
      type Declaration = { metric_selectors: string[]; dimensions: string[][] };
      const declarations = (config: any): Declaration[] => config.logs.metrics_collected.prometheus.emf_processor.metric_declaration;
      const dimensionsOf = (decls: Declaration[], metric: string) =>
        decls.filter((d) => d.metric_selectors.includes(`^${metric}$`)).flatMap((d) => d.dimensions);

      const agentFile = /cat > \S*planb-agent\.json <<'PLANB_PROXY_EOF'\n([\s\S]*?)\nPLANB_PROXY_EOF/.exec(userData)![1];
      // proxyUserData writes the log groups' Refs inline as JSON: back to plain strings to parse.
      const proxyConfig = JSON.parse(agentFile.replace(/"\{"Ref":"([^"]+)"\}"/g, '"$1"'));
      const proxy = declarations(proxyConfig);
      expect(dimensionsOf(proxy, 'planb_proxy_upstream_connections_total')).toEqual([['job', 'reused']]);
      expect(dimensionsOf(proxy, 'planb_proxy_request_head_timeouts_total')).toEqual([['job']]);
      expect(dimensionsOf(proxy, 'planb_proxy_keepalive_closes_total')).toEqual([['job', 'reason']]);
      // The alarms' and dashboard's metrics are still shipped as before.
      expect(dimensionsOf(proxy, 'planb_proxy_ssm_refresh_failures_total')).toEqual([['job']]);

      const containers = resources[logicalId(s.stack, 'Backend/Task')].Properties.ContainerDefinitions;
      const agent = containers.find((c: any) => c.Name === 'cloudwatch-agent');
      const cw = agent.Environment.find((e: any) => e.Name === 'CW_CONFIG_CONTENT').Value;
      // toJsonString renders a Fn::Join around the log group's Ref; the rest is literal JSON.
      const text = (cw['Fn::Join'][1] as unknown[]).map((p) => (typeof p === 'string' ? p : 'log-group')).join('');
      const backend = declarations(JSON.parse(text));
      expect(dimensionsOf(backend, 'planb_requests_total')).toEqual([['job', 'status'], ['job', 'route', 'status']]);
      expect(dimensionsOf(backend, 'planb_dynamodb_calls_total')).toEqual([['job', 'op', 'result']]);
      expect(dimensionsOf(backend, 'planb_connections_open')).toEqual([['job']]);
      expect(dimensionsOf(backend, 'planb_verification_failures_total')).toEqual([['job'], ['job', 'reason']]);
    });

    test("every backend metric shipped is one the backend's README documents", () => {
      const readme = fs.readFileSync(path.join(REPO_ROOT, 'backend', 'README.md'), 'utf8');
      const documented = new Set(readme.match(/planb_[a-z_]+/g));
      const shipped = BACKEND_METRICS.flatMap((d) => d.metrics);
      expect(shipped.filter((m) => !documented.has(m))).toEqual([]);
    });

    test("every proxy metric shipped is in the proxy README's metrics table, its dimensions among the labels listed", () => {
      const readme = fs.readFileSync(path.join(REPO_ROOT, 'proxy', 'README.md'), 'utf8');
      // Rows like: | `planb_proxy_x_total` | counter | `reason` (`a`, `b`) | what it counts |
      const labels = new Map(
        [...readme.matchAll(/^\| `(planb_proxy_[a-z_]+)` \| [a-z]+ \| ([^|]*)\|/gm)].map((m) => [m[1], m[2]]),
      );
      for (const declaration of PROXY_METRICS) {
        for (const metric of declaration.metrics) {
          expect({ metric, documented: labels.has(metric) }).toEqual({ metric, documented: true });
          for (const label of declaration.dimensions.flat()) {
            expect({ metric, label, listed: labels.get(metric)!.includes(`\`${label}\``) }).toEqual({ metric, label, listed: true });
          }
        }
      }
    });

    test("the agent sidecar is a pinned release, copied into the account's asset repository at deploy", () => {
      const dockerfile = fs.readFileSync(path.join(CLOUDWATCH_AGENT_IMAGE_DIR, 'Dockerfile'), 'utf8');
      const from = dockerfile.split('\n').filter((l) => /^FROM /i.test(l));
      // One line: AWS's image at a release tag (never latest), nothing added.
      expect(from).toHaveLength(1);
      expect(from[0]).toMatch(/^FROM public\.ecr\.aws\/cloudwatch-agent\/cloudwatch-agent:\d+\.\d+\.\d+b\d+$/);
      expect(dockerfile.split('\n').filter((l) => l.trim() && !l.startsWith('#'))).toEqual(from);
      // Both images are assets, addressed by their hash: no task pulls from a public registry, so
      // a pull that fails does so in `cdk deploy`, before CloudFormation creates anything.
      const containers = resources[logicalId(s.stack, 'Backend/Task')].Properties.ContainerDefinitions;
      for (const name of ['backend', 'cloudwatch-agent']) {
        const image = JSON.stringify(containers.find((c: any) => c.Name === name).Image);
        expect({ name, asset: /cdk-hnb659fds-container-assets-.*:[0-9a-f]{64}"/.test(image) }).toEqual({ name, asset: true });
        expect(image).not.toContain('public.ecr.aws');
      }
    });

    test('every alarm of the runbook exists, notifies the encrypted topic, and is on the dashboard', () => {
      const alarms = s.template.findResources('AWS::CloudWatch::Alarm');
      const byName = new Map(Object.values(alarms).map((a) => [a.Properties.AlarmName, a.Properties]));
      const expected = [
        ...['alb1', 'alb2'].flatMap((t) => ['elb-5xx', 'target-5xx', 'p99-latency', 'unhealthy-hosts'].map((n) => `${t}-${n}`)),
        'backend-running-tasks',
        'backend-verification-failures',
        ...Object.keys(VERIFICATION_REASON_THRESHOLDS).map((r) => `backend-verification-${r.replace(/_/g, '-')}`),
        'proxy-ssm-refresh-failures',
      ].map((n) => `PlanB-${n}`);
      expect([...byName.keys()].sort()).toEqual([...expected].sort());
      const topic = logicalId(s.stack, 'Monitoring/Alarms');
      for (const a of byName.values()) expect(a.AlarmActions).toEqual([{ Ref: topic }]);
      expect(byName.get('PlanB-alb1-elb-5xx')).toMatchObject({ MetricName: 'HTTPCode_ELB_5XX_Count', Namespace: 'AWS/ApplicationELB' });
      expect(byName.get('PlanB-alb2-p99-latency')).toMatchObject({ MetricName: 'TargetResponseTime', ExtendedStatistic: 'p99' });
      expect(byName.get('PlanB-alb1-unhealthy-hosts')).toMatchObject({ MetricName: 'UnHealthyHostCount' });
      expect(byName.get('PlanB-backend-running-tasks')).toMatchObject({
        MetricName: 'RunningTaskCount',
        ComparisonOperator: 'LessThanThreshold',
        Threshold: 2,
      });
      expect(byName.get('PlanB-backend-verification-invalid-signature')).toMatchObject({
        Namespace: 'PlanB/Backend',
        MetricName: 'planb_verification_failures_total',
        Dimensions: expect.arrayContaining([{ Name: 'reason', Value: 'invalid_signature' }]),
      });
      expect(byName.get('PlanB-proxy-ssm-refresh-failures')).toMatchObject({
        Namespace: 'PlanB/Proxy',
        MetricName: 'planb_proxy_ssm_refresh_failures_total',
      });
      s.template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
      s.template.resourceCountIs('AWS::SNS::Subscription', 0);
      const dashboards = Object.values(s.template.findResources('AWS::CloudWatch::Dashboard'));
      expect(dashboards).toHaveLength(1);
      const body = JSON.stringify(dashboards[0].Properties.DashboardBody);
      for (const needle of ['HTTPCode_ELB_5XX_Count', 'TargetResponseTime', 'UnHealthyHostCount', 'RunningTaskCount', 'planb_verification_failures_total', 'planb_proxy_ssm_refresh_failures_total', 'planb_proxy_upstream_connections_total', 'planb_proxy_request_head_timeouts_total', 'job,route,status}']) {
        expect(body).toContain(needle);
      }
    });
  });

  describe('cost', () => {
    test('Fargate Spot above an on-demand base of the minimum task count (2)', () => {
      s.template.hasResourceProperties('AWS::ECS::Service', {
        LaunchType: Match.absent(),
        CapacityProviderStrategy: [
          { CapacityProvider: 'FARGATE', Base: 2, Weight: 0 },
          { CapacityProvider: 'FARGATE_SPOT', Weight: 1 },
        ],
      });
      s.template.hasResourceProperties('AWS::ECS::ClusterCapacityProviderAssociations', {
        CapacityProviders: Match.arrayWith(['FARGATE', 'FARGATE_SPOT']),
      });
    });

    test("the proxies' root volume is sized on purpose, not the AMI snapshot's 8 GiB", () => {
      expect(ROOT_VOLUME_GIB).not.toBe(8);
      s.template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
        LaunchTemplateData: Match.objectLike({
          BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: Match.objectLike({ VolumeSize: ROOT_VOLUME_GIB, Encrypted: true }) }],
        }),
      });
    });
  });

  describe('notes', () => {
    test('the table: owner/note_id, on demand, point-in-time recovery, deletion protection, retained', () => {
      const table = resources[logicalId(s.stack, 'Backend/Notes')];
      expect(table.DeletionPolicy).toBe('Retain');
      expect(table.UpdateReplacePolicy).toBe('Retain');
      expect(table.Properties).toMatchObject({
        KeySchema: [
          { AttributeName: 'owner', KeyType: 'HASH' },
          { AttributeName: 'note_id', KeyType: 'RANGE' },
        ],
        AttributeDefinitions: expect.arrayContaining([
          { AttributeName: 'owner', AttributeType: 'S' },
          { AttributeName: 'note_id', AttributeType: 'S' },
        ]),
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        DeletionProtectionEnabled: true,
      });
    });

    test('a DynamoDB gateway endpoint on the private route tables', () => {
      const endpoints = Object.values(s.template.findResources('AWS::EC2::VPCEndpoint')).map((e) => e.Properties);
      const dynamo = endpoints.find((e) => JSON.stringify(e.ServiceName).includes('.dynamodb'));
      expect(dynamo).toMatchObject({ VpcEndpointType: 'Gateway' });
      expect(JSON.stringify(dynamo!.RouteTableIds)).toMatch(/privateSubnet/);
    });

    test('the task role may do exactly GetItem/PutItem/DeleteItem/Query on exactly the table, and nothing else may', () => {
      const table = { 'Fn::GetAtt': [logicalId(s.stack, 'Backend/Notes'), 'Arn'] };
      const dynamo = allStatements(s).filter((st) => actionsOf(st).some((a) => a.startsWith('dynamodb:')));
      expect(dynamo).toHaveLength(1);
      expect(actionsOf(dynamo[0]).sort()).toEqual([...NOTES_TABLE_ACTIONS].sort());
      expect(dynamo[0].Resource).toEqual(table);
      const taskRole = resources[logicalId(s.stack, 'Backend/Task')].Properties.TaskRoleArn['Fn::GetAtt'][0];
      const attached = Object.values(s.template.findResources('AWS::IAM::Policy')).find((p) =>
        JSON.stringify(p.Properties.PolicyDocument).includes('dynamodb:'),
      )!;
      expect(attached.Properties.Roles).toEqual([{ Ref: taskRole }]);
    });

    test('NOTES_TABLE in the environment; NOTES_CURSOR_KEY from a generated secret only the execution role reads', () => {
      const backend = resources[logicalId(s.stack, 'Backend/Task')].Properties.ContainerDefinitions[0];
      const secret = logicalId(s.stack, 'Backend/NotesCursorKey');
      expect(backend.Secrets).toEqual([{ Name: 'NOTES_CURSOR_KEY', ValueFrom: { Ref: secret } }]);
      expect(backend.Environment.map((e: any) => e.Name)).not.toContain('NOTES_CURSOR_KEY');
      expect(resources[secret].Properties.GenerateSecretString).toMatchObject({ PasswordLength: 64, ExcludePunctuation: true });
      const readers = allStatements(s).filter((st) => actionsOf(st).includes('secretsmanager:GetSecretValue'));
      expect(readers.map((st) => st.Resource)).toEqual([{ Ref: secret }]);
    });
  });

  test('no GitHub deploy role unless planb:githubRepo is set', () => {
    s.template.resourceCountIs('AWS::IAM::OIDCProvider', 0);
  });
});

describe("an account's existing GitHub OIDC provider", () => {
  const arn = 'arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com';

  test('is imported by ARN when given: the role trusts it and the stack creates none', () => {
    const s = synth({ 'planb:githubRepo': 'example/planb', 'planb:githubOidcProviderArn': arn });
    s.template.resourceCountIs('AWS::IAM::OIDCProvider', 0);
    const role = s.template.toJSON().Resources[logicalId(s.stack, 'GitHubDeploy/Role')].Properties;
    expect(role.AssumeRolePolicyDocument.Statement).toEqual([
      expect.objectContaining({ Action: 'sts:AssumeRoleWithWebIdentity', Principal: { Federated: arn } }),
    ]);
  });

  test('is created when no ARN is given', () => {
    const s = synth({ 'planb:githubRepo': 'example/planb' });
    s.template.resourceCountIs('AWS::IAM::OIDCProvider', 1);
  });
});

describe('optional inputs: alarm e-mail, GitHub deploy role', () => {
  let s: Synthesized;

  beforeAll(() => {
    s = synth({ 'planb:alarmEmail': 'ops@example.com', 'planb:githubRepo': 'example/planb' });
  });

  test('the alarm topic mails the given address', () => {
    s.template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
      TopicArn: { Ref: logicalId(s.stack, 'Monitoring/Alarms') },
    });
  });

  test("GitHub's OIDC provider and a role only the repository's main branch can assume, for the CDK roles only", () => {
    s.template.hasResourceProperties('AWS::IAM::OIDCProvider', {
      Url: 'https://token.actions.githubusercontent.com',
      ClientIdList: ['sts.amazonaws.com'],
    });
    const role = s.template.toJSON().Resources[logicalId(s.stack, 'GitHubDeploy/Role')].Properties;
    expect(role.AssumeRolePolicyDocument.Statement).toEqual([
      expect.objectContaining({
        Action: 'sts:AssumeRoleWithWebIdentity',
        Principal: { Federated: { 'Fn::GetAtt': [logicalId(s.stack, 'GitHubDeploy/Provider'), 'Arn'] } },
        Condition: {
          StringEquals: {
            'token.actions.githubusercontent.com:aud': 'sts.amazonaws.com',
            'token.actions.githubusercontent.com:sub': 'repo:example/planb:ref:refs/heads/main',
          },
        },
      }),
    ]);
    const all = role.Policies.flatMap((p: any) => p.PolicyDocument.Statement);
    const statements = all.filter((st: Statement) => st.Sid === 'AssumeCdkBootstrapRoles');
    expect(statements).toHaveLength(1);
    expect(statements[0].Action).toEqual(['sts:AssumeRole', 'sts:TagSession']);
    // Nothing else may assume roles; the smoke test may run commands only on this stack's proxies.
    expect(all.filter((st: Statement) => actionsOf(st).some((a) => a.startsWith('sts:')))).toHaveLength(1);
    const run = all.find((st: any) => st.Sid === 'SmokeRunOnProxies');
    expect(run.Condition.StringEquals['ssm:resourceTag/aws:autoscaling:groupName']).toEqual({
      Ref: logicalId(s.stack, 'ProxyFleet/Asg'),
    });
    expect(JSON.stringify(all.find((st: any) => st.Sid === 'SmokeRunShellScript').Resource)).toContain('document/AWS-RunShellScript');
    const resources = JSON.stringify(statements[0].Resource);
    expect(statements[0].Resource).toHaveLength(CDK_BOOTSTRAP_ROLES.length);
    for (const r of CDK_BOOTSTRAP_ROLES) expect(resources).toContain(`:role/cdk-hnb659fds-${r}-role-`);
    expect(resources).not.toContain('*');
    expect(s.template.toJSON().Outputs.GitHubDeployRoleArn).toBeDefined();
  });
});
