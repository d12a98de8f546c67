import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { parse } from 'yaml';
import { ConfigError, INFRA_DIR, PlanBConfig, readConfig, REPO_ROOT } from '../lib/config';
import { CDK_JSON_CONTEXT, STAND_IN_BINARY, synth } from './helpers';

const WORKFLOW = path.join(REPO_ROOT, '.github', 'workflows', 'deploy.yml');
const CONTEXT_SCRIPT = path.join(INFRA_DIR, 'scripts', 'deploy-context.sh');

interface Step {
  name?: string;
  run?: string;
  'working-directory'?: string;
}

const workflow = parse(fs.readFileSync(WORKFLOW, 'utf8'));
const deployJob = workflow.jobs.deploy as { env: Record<string, string>; steps: Step[] };
const deployStep = deployJob.steps.find((st) => st.run?.includes('cdk deploy'))!;

/**
 * Runs deploy.yml's own `cdk deploy` step as GitHub would (bash -e -o pipefail, in its working
 * directory) with `env` as the repository variables, npm and npx replaced by stand-ins (named so)
 * that record their arguments. Returns the step's status and the arguments of each npx call.
 */
function runDeployStep(env: Record<string, string>): { status: number | null; stderr: string; calls: string[][] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'planb-deploy-step-'));
  try {
    const calls = path.join(dir, 'npx-calls');
    fs.writeFileSync(path.join(dir, 'npm'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    // One line per call: the arguments, NUL-separated.
    fs.writeFileSync(path.join(dir, 'npx'), `#!/bin/bash\nprintf '%s\\0' "$@" >> '${calls}'\necho >> '${calls}'\n`, { mode: 0o755 });
    const result = spawnSync('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', deployStep.run!], {
      cwd: path.join(REPO_ROOT, deployStep['working-directory'] ?? '.'),
      encoding: 'utf8',
      env: { PATH: `${dir}:${process.env.PATH}`, GITHUB_REPOSITORY: 'example/planb', ...env },
    });
    const recorded = fs.existsSync(calls) ? fs.readFileSync(calls, 'utf8') : '';
    return {
      status: result.status,
      stderr: result.stderr,
      calls: recorded
        .split('\n')
        .filter(Boolean)
        .map((line) => line.split('\0').filter(Boolean)),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The `-c key=value` pairs of a cdk command line, as the CDK CLI reads them. */
function contextOf(args: string[]): Record<string, string> {
  const pairs: Record<string, string> = {};
  args.forEach((arg, i) => {
    if (arg !== '-c') return;
    const pair = args[i + 1];
    const eq = pair.indexOf('=');
    pairs[pair.slice(0, eq)] = pair.slice(eq + 1);
  });
  return pairs;
}

/** What the app reads from cdk.json overlaid with the step's `-c` values (no placeholder allowance). */
function configFromStep(env: Record<string, string>): PlanBConfig {
  const run = runDeployStep(env);
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  const [diff, deploy] = run.calls;
  expect(diff.slice(0, 2)).toEqual(['cdk', 'diff']);
  expect(deploy.slice(0, 2)).toEqual(['cdk', 'deploy']);
  expect(contextOf(deploy)).toEqual(contextOf(diff));
  const context = { ...CDK_JSON_CONTEXT, ...contextOf(deploy), 'planb:proxyBinary': STAND_IN_BINARY.arm64 };
  return readConfig(new App({ context }).node);
}

const REGION = { AWS_REGION: 'eu-west-1' };
const ZONE = { PLANB_DOMAIN_NAME: 'api.example.com', PLANB_HOSTED_ZONE_ID: 'Z0000000000000EXAMPLE', PLANB_HOSTED_ZONE_NAME: 'example.com' };

describe("deploy.yml's context", () => {
  test('a certificate ARN is passed through', () => {
    const arn = 'arn:aws:acm:eu-west-1:111122223333:certificate/1234abcd-12ab-34cd-56ef-1234567890ab';
    const config = configFromStep({ ...REGION, PLANB_CERTIFICATE_ARN: arn });
    expect(config.certificate).toEqual({ kind: 'arn', certificateArn: arn, domainName: undefined, hostedZone: undefined });
    expect(config.placeholders).toEqual([]);
    expect(config.githubRepo).toBe('example/planb');
  });

  test("without an ARN, a domain and hosted zone get a new certificate: cdk.json's example is replaced, not kept", () => {
    const config = configFromStep({ ...REGION, PLANB_CERTIFICATE_ARN: '', ...ZONE });
    expect(config.certificate).toEqual({
      kind: 'dns',
      domainName: 'api.example.com',
      hostedZone: { hostedZoneId: 'Z0000000000000EXAMPLE', zoneName: 'example.com' },
    });
    expect(config.placeholders).toEqual([]);
  });

  test('with neither, the app names what is missing (not the example value)', () => {
    expect(() => configFromStep(REGION)).toThrow(ConfigError);
    expect(() => configFromStep(REGION)).toThrow(/missing context value planb:certificateArn \(or planb:domainName/);
  });

  test('the optional variables reach the app: alarm e-mail, profile, an existing OIDC provider', () => {
    const provider = 'arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com';
    const config = configFromStep({
      ...REGION,
      ...ZONE,
      PLANB_ALARM_EMAIL: 'ops@example.com',
      PLANB_PROFILE: 'small',
      PLANB_GITHUB_OIDC_PROVIDER_ARN: provider,
    });
    expect(config.alarmEmail).toBe('ops@example.com');
    expect(config.githubOidcProviderArn).toBe(provider);
    expect(config.profile).toBe('small');
  });

  test('a hosted zone id without its name stops the step with a line saying so', () => {
    const run = runDeployStep({ ...REGION, PLANB_HOSTED_ZONE_ID: 'Z0000000000000EXAMPLE' });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain('deploy-context: PLANB_HOSTED_ZONE_ID is set but PLANB_HOSTED_ZONE_NAME is empty');
    expect(run.calls).toEqual([]);
  });

  test('every variable the context script reads is mapped from the repository variable of that name', () => {
    const read = new Set(fs.readFileSync(CONTEXT_SCRIPT, 'utf8').match(/\bPLANB_[A-Z_]+/g));
    expect(read.size).toBeGreaterThan(5);
    for (const name of read) expect({ name, value: deployJob.env[name] }).toEqual({ name, value: `\${{ vars.${name} }}` });
  });
});

/**
 * A GitHub `paths` filter as GitHub applies it: glob patterns (`*` within a path segment, `**`
 * across them), a `!` pattern excluding what earlier ones matched, the last matching pattern
 * deciding.
 */
function pathsFilter(patterns: string[]): (file: string) => boolean {
  const toRegExp = (glob: string) =>
    new RegExp(
      `^${glob
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*\*\//g, '\u0000')
        .replace(/\*\*/g, '\u0001')
        .replace(/\*/g, '[^/]*')
        .replace(/\?/g, '[^/]')
        .replace(/\u0000/g, '(?:.*/)?')
        .replace(/\u0001/g, '.*')}$`,
    );
  const rules = patterns.map((p) => ({ exclude: p.startsWith('!'), re: toRegExp(p.replace(/^!/, '')) }));
  return (file) => rules.reduce((matched, rule) => (rule.re.test(file) ? !rule.exclude : matched), false);
}

/** Every file of the repository (tracked, or new and not ignored), relative to its root. */
function repositoryFiles(): string[] {
  const listed = spawnSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: REPO_ROOT, encoding: 'utf8' });
  expect(listed.status).toBe(0);
  return listed.stdout.split('\n').filter((f) => f && fs.existsSync(path.join(REPO_ROOT, f)));
}

/** Every file under `dir`, relative to it. */
function filesUnder(dir: string, prefix = ''): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(path.join(dir, entry.name), `${prefix}${entry.name}/`) : [`${prefix}${entry.name}`],
  );
}

describe("deploy.yml's paths filter", () => {
  const filter = pathsFilter((workflow.on.push.paths ?? []) as string[]);
  const files = repositoryFiles();

  test('the filter itself: later patterns win, ** spans directories', () => {
    const f = pathsFilter(['a/**', '!**/*.md', 'a/keep.md']);
    expect([f('a/x/y.rs'), f('a/x/README.md'), f('a/keep.md'), f('b/y.rs')]).toEqual([true, false, true, false]);
  });

  test('every file that reaches the stack starts a deploy', () => {
    // The backend image: the Docker context as CDK stages it (after .dockerignore).
    const s = synth();
    const assembly = s.app.synth();
    const assets = JSON.parse(fs.readFileSync(path.join(assembly.directory, `${s.stack.artifactId}.assets.json`), 'utf8'));
    const backend = (Object.values(assets.dockerImages) as { source: { directory: string; dockerFile?: string } }[]).find(
      (image) => image.source.dockerFile === 'Dockerfile.backend',
    )!;
    const imageInputs = filesUnder(path.join(assembly.directory, backend.source.directory));
    expect(imageInputs).toContain('backend/src/main.rs');
    // The proxy binary (make proxy-release: its crates, toolchain, zig pins, flags), what user data
    // installs from systemd/, and the CDK app itself.
    const proxyInputs = files.filter(
      (f) =>
        /^(proxy|systemd)\//.test(f) ||
        ['Cargo.toml', 'Cargo.lock', 'rust-toolchain.toml', 'testkit/requirements.txt', 'Makefile'].includes(f),
    );
    const appInputs = files.filter((f) => /^infra\/(bin|lib|scripts|images)\//.test(f) || /^infra\/[^/]+\.json$/.test(f));
    const inputs = [...imageInputs, ...proxyInputs, ...appInputs].filter((f) => !f.endsWith('.md') || f === 'backend/README.md');
    expect(inputs.filter((f) => !filter(f))).toEqual([]);
    expect(filter('.github/workflows/deploy.yml')).toBe(true);
  });

  test('documentation and tests alone do not', () => {
    const docs = files.filter((f) => f.endsWith('.md') && f !== 'backend/README.md');
    expect(docs).toEqual(expect.arrayContaining(['README.md', 'infra/README.md', 'proxy/README.md', 'CHANGELOG.md']));
    const tests = files.filter((f) => /^(infra\/test|testkit\/(alb1|browser|e2e)|docs|bench)\//.test(f));
    expect(tests.length).toBeGreaterThan(10);
    expect([...docs, ...tests].filter(filter)).toEqual([]);
  });
});
