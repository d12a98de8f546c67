import { spawnSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { buildApp } from '../lib/app';
import {
  EC2_USER_DATA_LIMIT_BYTES,
  estimatedUserDataBytes,
  PROXY_INSTALL,
  PROXY_SOURCES,
  proxyListenPort,
  renderProxyConfig,
  sha256CheckCommands,
  TOKEN_BYTES_ESTIMATE,
  withoutComments,
} from '../lib/constructs/proxy-fleet';
import { DOWNSTREAM_KEEPALIVE_SECS } from '../lib/keepalive';
import { context, CUSTOM_DOMAIN, logicalId, proxyUserData, STAND_IN_BINARY, synth, Synthesized } from './helpers';

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

  /** The text user data writes to `dest` (the body of its heredoc). */
  const written = (dest: string) => new RegExp(`cat > ${dest} <<'PLANB_PROXY_EOF'\\n([\\s\\S]*?)\\nPLANB_PROXY_EOF`).exec(userData)![1];
  /** The lines that are not comments and not blank: what a file means to systemd or YAML. */
  const meaningful = (text: string, markers: RegExp) => text.split('\n').filter((l) => l.trim() !== '' && !markers.test(l.trimStart()));

  test('user data writes the unit from systemd/planb-proxy.service: every setting, in order, without the comments', () => {
    const unit = fs.readFileSync(PROXY_SOURCES.unit, 'utf8');
    const installed = written(PROXY_INSTALL.unit);
    expect(meaningful(installed, /^[#;]/)).toEqual(meaningful(unit, /^[#;]/));
    expect(installed.split('\n')[0]).toBe('# systemd/planb-proxy.service of planb, without its comments');
    expect(installed.split('\n').filter((l) => l.startsWith('#'))).toHaveLength(1);
  });

  test('user data writes proxy.yaml from systemd/proxy.yaml with the stack parameter, without the comments', () => {
    const expected = renderProxyConfig(fs.readFileSync(PROXY_SOURCES.config, 'utf8'), VALUES);
    const installed = written(PROXY_INSTALL.config);
    expect(meaningful(installed, /^#/)).toEqual(meaningful(expected, /^#/));
    expect(`${installed}\n`).toBe(withoutComments(expected, 'yaml', 'systemd/proxy.yaml'));
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
    expect(userData).toContain(withoutComments(unit, 'systemd', 'systemd/planb-proxy.service'));
  });

  test('the proxy starts before any package is installed: a slow repository cannot outlast the health-check grace', () => {
    const start = userData.indexOf('systemctl enable --now planb-proxy.service');
    const installs = [...userData.matchAll(/dnf install/g)].map((m) => m.index!);
    expect(installs.length).toBeGreaterThan(0);
    expect(start).toBeGreaterThan(0);
    expect(installs.every((i) => i > start)).toBe(true);
    // What the proxy needs is in place before it starts: binary, config, unit, journal drop-in.
    for (const needed of [PROXY_INSTALL.binary, `cat > ${PROXY_INSTALL.config}`, `cat > ${PROXY_INSTALL.unit}`, 'LogRateLimitIntervalSec=0']) {
      expect({ needed, before: userData.indexOf(needed) > 0 && userData.indexOf(needed) < start }).toEqual({ needed, before: true });
    }
  });

  test("the wait for ALB1's verdict keeps its JMESPath quoted: a file named like it changes nothing", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'planb-wait-'));
    try {
      // Stand-ins named so: curl plays IMDSv2 and /healthz, aws records its arguments, one per line.
      const bin = path.join(dir, 'bin');
      fs.mkdirSync(bin);
      const argsFile = path.join(dir, 'aws-args');
      fs.writeFileSync(
        path.join(bin, 'curl'),
        '#!/bin/bash\ncase "$*" in *api/token*) echo token ;; *instance-id*) echo i-0123456789abcdef0 ;; esac\n',
        { mode: 0o755 },
      );
      fs.writeFileSync(path.join(bin, 'aws'), `#!/bin/bash\nprintf '%s\\n' "$@" > '${argsFile}'\necho healthy\n`, { mode: 0o755 });
      // What an unquoted TargetHealthDescriptions[0].TargetHealth.State would glob to.
      const cwd = path.join(dir, 'cwd');
      fs.mkdirSync(cwd);
      fs.writeFileSync(path.join(cwd, 'TargetHealthDescriptions0.TargetHealth.State'), '');
      // From the helper function (when there is one) to the end: the health waits as rendered.
      const from = userData.includes('wait_until() {') ? userData.indexOf('wait_until() {') : userData.indexOf('imds_token=');
      const script = `set -euo pipefail\n${userData.slice(from)}\necho waited`;
      const run = spawnSync('bash', ['-c', script], {
        cwd,
        encoding: 'utf8',
        timeout: 30_000,
        env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
      });
      expect(run.stderr).toBe('');
      expect(run.stdout.trim()).toBe('waited');
      const args = fs.readFileSync(argsFile, 'utf8').split('\n');
      expect(args[args.indexOf('--query') + 1]).toBe('TargetHealthDescriptions[0].TargetHealth.State');
      expect(args[args.indexOf('--targets') + 1]).toBe('Id=i-0123456789abcdef0,Port=8080');
      expect(args[args.indexOf('--target-group-arn') + 1]).toBe(`{"Ref":"${logicalId(s.stack, 'PublicAlb/ProxyTargets')}"}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a wait that runs out fails the script with a line naming what it waited for', () => {
    const fn = /^wait_until\(\) \{[\s\S]*?^\}$/m.exec(userData)![0];
    const run = spawnSync('bash', ['-c', `set -euo pipefail\n${fn}\nwait_until 1 "the thing" false\necho after`], { encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stdout).not.toContain('after');
    expect(run.stderr).toBe('planb-proxy: gave up after 1 s waiting for the thing\n');
  });

  test("the group is created after ALB1's HTTPS listener and its rules, which make its targets more than `unused`", () => {
    const asg = s.template.toJSON().Resources[logicalId(s.stack, 'ProxyFleet/Asg')];
    expect(asg.DependsOn).toContain(logicalId(s.stack, 'PublicAlb/Alb/Https'));
    for (const rule of ['InternalPathsRule', 'ApiPreflightRule', 'LogoutRule', 'BearerRule', 'ApiRule']) {
      expect(asg.DependsOn).toContain(logicalId(s.stack, `PublicAlb/Alb/Https/${rule}`));
    }
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

describe('user data size', () => {
  /** The budget: three quarters of EC2's limit, a quarter left for what user data gains next. */
  const BUDGET_BYTES = 12288;

  test('the estimate counts text by its bytes and every token generously', () => {
    expect(estimatedUserDataBytes('ab\u00e9')).toBe(4);
    expect(estimatedUserDataBytes({ 'Fn::Join': ['', ['abc', { Ref: 'X' }, { 'Fn::Sub': 'y' }]] })).toBe(3 + 2 * TOKEN_BYTES_ESTIMATE);
    expect(TOKEN_BYTES_ESTIMATE).toBeGreaterThanOrEqual(200);
    expect(BUDGET_BYTES).toBeLessThanOrEqual(EC2_USER_DATA_LIMIT_BYTES * 0.75);
  });

  test.each([
    ['defaults', {}],
    ['small profile', { 'planb:profile': 'small' }],
    ['custom domain, x86_64, every option', { ...CUSTOM_DOMAIN, 'planb:architecture': 'x86_64', 'planb:alarmEmail': 'ops@example.com', 'planb:githubRepo': 'example/planb' }],
  ])('%s: user data stays under %p bytes with its tokens resolved', (_name, overrides) => {
    const s = synth(overrides);
    const lt = s.template.toJSON().Resources[logicalId(s.stack, 'ProxyFleet/LaunchTemplate')];
    const bytes = estimatedUserDataBytes(lt.Properties.LaunchTemplateData.UserData['Fn::Base64']);
    expect(bytes).toBeLessThan(BUDGET_BYTES);
  });

  test('synth fails when user data would pass EC2 limit', () => {
    const app = new App({ outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'planb-big-')), context: context() });
    const stack = buildApp(app);
    const launchTemplate = stack.node.findChild('ProxyFleet').node.findChild('LaunchTemplate') as ec2.LaunchTemplate;
    launchTemplate.userData!.addCommands(`: ${'x'.repeat(EC2_USER_DATA_LIMIT_BYTES)}`);
    expect(() => app.synth()).toThrow(/ProxyFleet: user data is about \d+ bytes, over EC2's 16384: the launch would fail/);
    fs.rmSync(app.outdir, { recursive: true, force: true });
  });
});

describe('comment removal', () => {
  test('drops whole-line comments and squeezes blank runs, keeps values with # in them', () => {
    const yaml = '# head\n\nversion: 1\n  # indented\nproxy:\n\n\n  listen: "0.0.0.0:8080"  # trailing stays\n  path: "/a#b"\n';
    expect(withoutComments(yaml, 'yaml', 'x.yaml')).toBe(
      '# x.yaml of planb, without its comments\nversion: 1\nproxy:\n\n  listen: "0.0.0.0:8080"  # trailing stays\n  path: "/a#b"\n',
    );
    expect(withoutComments('; old\n[Unit]\n# c\nA=1\n', 'systemd', 'u')).toBe('# u of planb, without its comments\n[Unit]\nA=1\n');
    // ";" is a comment to systemd only.
    expect(withoutComments('; x: 1\n', 'yaml', 'y')).toContain('; x: 1');
  });

  test('refuses YAML with a block scalar, whose # lines are content', () => {
    expect(() => withoutComments('a: |\n  # not a comment\n', 'yaml', 'f.yaml')).toThrow(/f\.yaml: a block scalar/);
    expect(() => withoutComments('a: >-\n  text\n', 'yaml', 'f.yaml')).toThrow(/block scalar/);
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
