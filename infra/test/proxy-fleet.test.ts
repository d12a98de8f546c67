import { spawnSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Match } from 'aws-cdk-lib/assertions';
import { PROXY_INSTALL, PROXY_SOURCES, proxyListenPort, renderProxyConfig, sha256CheckCommands } from '../lib/constructs/proxy-fleet';
import { DOWNSTREAM_KEEPALIVE_SECS } from '../lib/keepalive';
import { logicalId, proxyUserData, STAND_IN_BINARY, synth, Synthesized } from './helpers';

/** The SHA-256 of a file, computed here independently of the code under test. */
const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

const VALUES = { ssmParameter: '/planb/PlanB/alb2/dns-name', downstreamKeepaliveSecs: DOWNSTREAM_KEEPALIVE_SECS };

describe('proxy fleet', () => {
  let s: Synthesized;
  let userData: string;

  beforeAll(() => {
    s = synth();
    userData = proxyUserData(s);
  });

  test('the launch template requires IMDSv2, has no key pair and encrypts the root volume', () => {
    s.template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({
        MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 1 },
        KeyName: Match.absent(),
        BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: Match.objectLike({ Encrypted: true }) }],
        InstanceType: 't4g.small',
      }),
    });
  });

  test('the role reads exactly the one SSM parameter, with ssm:GetParameter', () => {
    const roleId = logicalId(s.stack, 'ProxyFleet/Role');
    const resources = s.template.toJSON().Resources;
    const role = resources[roleId];
    // No managed policy: AmazonSSMManagedInstanceCore would grant ssm:GetParameter(s) on "*".
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    // The only separate policy is the one CDK adds for the creation signal, scoped to this stack.
    const attached = Object.values(s.template.findResources('AWS::IAM::Policy')).filter((p) =>
      JSON.stringify(p.Properties.Roles ?? []).includes(roleId),
    );
    expect(attached.flatMap((p) => p.Properties.PolicyDocument.Statement)).toEqual([
      { Action: 'cloudformation:SignalResource', Effect: 'Allow', Resource: { Ref: 'AWS::StackId' } },
    ]);

    const statements = role.Properties.Policies.flatMap(
      (p: { PolicyDocument: { Statement: unknown[] } }) => p.PolicyDocument.Statement,
    ) as { Action: string | string[]; Resource: unknown; Effect: string }[];
    const actions = (st: { Action: string | string[] }) => ([] as string[]).concat(st.Action);
    const reads = statements.filter((st) => actions(st).some((a) => /^ssm:(Get|Describe)/.test(a)));
    expect(reads).toHaveLength(1);
    expect(reads[0]).toMatchObject({ Sid: 'ReadUpstreamParameter', Effect: 'Allow', Action: 'ssm:GetParameter' });
    // The resource is that parameter's ARN (the Ref resolves to "/planb/PlanB/alb2/dns-name").
    const arn = JSON.stringify(reads[0].Resource);
    expect(arn).toContain(':ssm:eu-west-1:');
    expect(arn).toContain(':parameter');
    expect(arn).toContain(`{"Ref":"${logicalId(s.stack, 'Backend/Alb2DnsName')}"}`);
    // Nothing else in the role names an ssm:*Parameter* action or wildcard.
    const otherSsm = statements
      .filter((st) => !reads.includes(st))
      .flatMap(actions)
      .filter((a) => /^ssm:(\*|.*Parameter)/.test(a));
    expect(otherSsm).toEqual([]);
  });

  test('the role can download exactly the binary object, and use Session Manager', () => {
    const role = s.template.toJSON().Resources[logicalId(s.stack, 'ProxyFleet/Role')];
    const statements = role.Properties.Policies[0].PolicyDocument.Statement;
    const download = statements.find((st: { Sid: string }) => st.Sid === 'DownloadProxyBinary');
    expect(download.Action).toBe('s3:GetObject');
    expect(JSON.stringify(download.Resource)).not.toContain('*');
    const session = statements.find((st: { Sid: string }) => st.Sid === 'SessionManager');
    expect(session.Action).toEqual(
      expect.arrayContaining(['ssm:UpdateInstanceInformation', 'ssmmessages:OpenDataChannel']),
    );
  });

  test('user data downloads the asset and installs the binary', () => {
    expect(userData).toMatch(/aws s3 cp 's3:\/\/.*cdk-hnb659fds-assets-.*' '\/tmp\/planb-proxy' --region eu-west-1/);
    expect(userData).toContain(`install -m 0755 -o root -g root /tmp/planb-proxy ${PROXY_INSTALL.binary}`);
  });

  test("user data checks the download against the SHA-256 of the context's binary before installing it", () => {
    const want = sha256(STAND_IN_BINARY.arm64);
    const check = userData.indexOf(`echo '${want}  /tmp/planb-proxy' | sha256sum --check --status -`);
    expect(check).toBeGreaterThan(userData.indexOf("aws s3 cp 's3://"));
    expect(check).toBeLessThan(userData.indexOf(`install -m 0755 -o root -g root /tmp/planb-proxy ${PROXY_INSTALL.binary}`));
    // One hash in user data, the file's: no stale or second value.
    expect(userData.match(/\b[0-9a-f]{64}\b(?=  \/tmp\/planb-proxy)/g)).toEqual([want]);
    // Another binary, another hash (x86_64's stand-in).
    const other = proxyUserData(synth({ 'planb:architecture': 'x86_64' }));
    expect(sha256(STAND_IN_BINARY.x86_64)).not.toBe(want);
    expect(other).toContain(`echo '${sha256(STAND_IN_BINARY.x86_64)}  /tmp/planb-proxy' | sha256sum`);
  });

  test('a mismatch stops user data with a line saying so, and the exit trap signals failure', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'planb-sha-'));
    try {
      const file = path.join(dir, 'planb-proxy');
      fs.copyFileSync(STAND_IN_BINARY.arm64, file);
      // User data's own exit trap, with cfn-signal replaced by a stand-in that prints its arguments.
      const trap = userData.slice(0, userData.indexOf('trap exitTrap EXIT') + 'trap exitTrap EXIT'.length);
      const script = [
        'cfn_signal_stand_in() { echo "cfn-signal $*"; }',
        trap.replace('/opt/aws/bin/cfn-signal', 'cfn_signal_stand_in'),
        'set -euo pipefail',
        ...sha256CheckCommands(file, sha256(STAND_IN_BINARY.arm64)),
        'echo installed',
      ].join('\n');
      const run = () => spawnSync('bash', ['-c', script], { encoding: 'utf8' });

      const good = run();
      expect(good.status).toBe(0);
      expect(good.stdout).toContain('installed');
      expect(good.stdout).toMatch(/cfn-signal .* -e 0\b/);

      fs.appendFileSync(file, 'tampered');
      const bad = run();
      expect(bad.status).toBe(1);
      expect(bad.stdout).not.toContain('installed');
      expect(bad.stdout).toMatch(/cfn-signal .* -e 1\b/);
      expect(bad.stderr).toContain(`planb-proxy: SHA-256 mismatch: ${file} is not the binary synthesized into this stack`);
      expect(bad.stderr).toContain(`got ${sha256(file)}`);

      fs.rmSync(file);
      expect(run().status).toBe(1);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the check refuses to be built from something that is not a SHA-256', () => {
    expect(() => sha256CheckCommands('/tmp/x', 'abc')).toThrow(/not a SHA-256/);
    expect(() => sha256CheckCommands('/tmp/x', `${'A'.repeat(64)}`)).toThrow(/not a SHA-256/);
  });

  test('user data writes the unit from systemd/planb-proxy.service, verbatim', () => {
    const unit = fs.readFileSync(PROXY_SOURCES.unit, 'utf8');
    expect(userData).toContain(`cat > ${PROXY_INSTALL.unit} <<'PLANB_PROXY_EOF'\n${unit}`);
  });

  test('user data writes proxy.yaml from systemd/proxy.yaml with the stack parameter', () => {
    const expected = renderProxyConfig(fs.readFileSync(PROXY_SOURCES.config, 'utf8'), VALUES);
    expect(userData).toContain(`cat > ${PROXY_INSTALL.config} <<'PLANB_PROXY_EOF'\n${expected}`);
    expect(userData).toMatch(/^\s+ssm_parameter: \/planb\/PlanB\/alb2\/dns-name$/m);
  });

  test('user data enables and starts the unit, then signals CloudFormation once /healthz answers', () => {
    const order = [
      'systemctl daemon-reload',
      'systemctl enable --now planb-proxy.service',
      'http://127.0.0.1:8080/healthz',
    ].map((needle) => userData.indexOf(needle));
    expect(order.every((i) => i > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(userData).toContain('set -euo pipefail');
    expect(userData).toMatch(/trap exitTrap EXIT/);
    expect(userData).toContain(`--resource ${logicalId(s.stack, 'ProxyFleet/Asg')}`);
    // The unit goes in as the file says, $MAINPID included: the heredocs are quoted.
    const unit = fs.readFileSync(PROXY_SOURCES.unit, 'utf8');
    expect(unit).toContain('$MAINPID');
    expect(userData).toContain(unit);
  });

  test('the Auto Scaling group: private subnets, ELB health checks, rolling updates on signals', () => {
    const asgId = logicalId(s.stack, 'ProxyFleet/Asg');
    const asg = s.template.toJSON().Resources[asgId];
    expect(asg.Properties).toMatchObject({ MinSize: '2', MaxSize: '4', HealthCheckType: 'ELB' });
    expect(JSON.stringify(asg.Properties.VPCZoneIdentifier)).toMatch(/privateSubnet/);
    expect(asg.UpdatePolicy.AutoScalingRollingUpdate).toMatchObject({
      MaxBatchSize: 1,
      MinInstancesInService: 2,
      WaitOnResourceSignals: true,
    });
    expect(asg.CreationPolicy.ResourceSignal).toMatchObject({ Count: 2 });
    // Instances start only once the parameter they read exists.
    expect(asg.DependsOn).toContain(logicalId(s.stack, 'Backend/Alb2DnsName'));
    s.template.hasResourceProperties('AWS::AutoScaling::ScalingPolicy', {
      AutoScalingGroupName: { Ref: asgId },
      PolicyType: 'TargetTrackingScaling',
      TargetTrackingConfiguration: Match.objectLike({
        PredefinedMetricSpecification: { PredefinedMetricType: 'ASGAverageCPUUtilization' },
      }),
    });
  });

  test('Amazon Linux 2023 for arm64 from the public SSM parameter (resolved at deploy, not a lookup)', () => {
    const params = s.template.toJSON().Parameters;
    const ami = Object.values(params).find((p: any) => String(p.Default).includes('al2023-ami')) as { Default: string };
    expect(ami.Default).toMatch(/^\/aws\/service\/ami-amazon-linux-latest\/al2023-ami-kernel-.*-arm64$/);
  });
});

describe('proxy fleet variants', () => {
  test('a custom parameter name is both written into proxy.yaml and the one the role reads', () => {
    const s = synth({ 'planb:ssmParameterName': '/custom/upstream' });
    expect(proxyUserData(s)).toMatch(/^\s+ssm_parameter: \/custom\/upstream$/m);
    s.template.hasResourceProperties('AWS::SSM::Parameter', { Name: '/custom/upstream' });
  });

  test('x86_64: a t3 instance type and the x86_64 AMI', () => {
    const s = synth({ 'planb:architecture': 'x86_64' });
    s.template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({ InstanceType: 't3.small' }),
    });
    const params = Object.values(s.template.toJSON().Parameters) as { Default?: string }[];
    expect(params.some((p) => /al2023-ami-kernel-.*-x86_64$/.test(String(p.Default)))).toBe(true);
  });
});

describe('proxy.yaml rendering', () => {
  const yaml = ['version: 1', 'proxy:', '  listen: ":8080"', '  upstream:', '    ssm_parameter: /old/name   # comment', '    port: 80', ''].join('\n');
  const values = (ssmParameter: string) => ({ ssmParameter, downstreamKeepaliveSecs: 75 });

  test('replaces the parameter, keeping indentation and comment; inserts the keep-alive when absent', () => {
    expect(renderProxyConfig(yaml, values('/new/name'))).toBe(
      ['version: 1', 'proxy:', '  downstream_keepalive_secs: 75', '  listen: ":8080"', '  upstream:', '    ssm_parameter: /new/name   # comment', '    port: 80', ''].join('\n'),
    );
  });

  test('replaces a keep-alive the file already has (value only, comment kept), nowhere else', () => {
    const withKey = yaml.replace('  listen:', '  downstream_keepalive_secs: 30  # old\n  listen:');
    const out = renderProxyConfig(withKey, values('/x'));
    expect(out).toContain('  downstream_keepalive_secs: 75  # old\n  listen:');
    expect(out.match(/downstream_keepalive_secs/g)).toHaveLength(1);
    // A same-named key deeper down (another section) is not the proxy's.
    const nested = yaml.replace('    port: 80', '    port: 80\n    downstream_keepalive_secs: 5');
    expect(renderProxyConfig(nested, values('/x'))).toMatch(/^  downstream_keepalive_secs: 75$/m);
    expect(renderProxyConfig(nested, values('/x'))).toMatch(/^    downstream_keepalive_secs: 5$/m);
  });

  test('refuses a file without exactly one ssm_parameter line, or without a proxy section', () => {
    expect(() => renderProxyConfig('proxy:\n  listen: ":8080"\n', values('/x'))).toThrow(/exactly one "ssm_parameter:" line, found 0/);
    expect(() => renderProxyConfig(`${yaml}${yaml}`, values('/x'))).toThrow(/found 2/);
    expect(() => renderProxyConfig('  ssm_parameter: /a\n', values('/x'))).toThrow(/no top-level "proxy:" section/);
  });

  test("reads the listen port, not admin_listen's", () => {
    expect(proxyListenPort('proxy:\n  admin_listen: "127.0.0.1:9100"\n  listen: "0.0.0.0:8080"\n')).toBe(8080);
  });

  test('the real systemd/proxy.yaml renders and listens on 8080', () => {
    const real = fs.readFileSync(PROXY_SOURCES.config, 'utf8');
    expect(proxyListenPort(renderProxyConfig(real, VALUES))).toBe(8080);
  });
});
