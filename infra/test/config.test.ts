import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { buildApp } from '../lib/app';
import { INFRA_DIR, PLACEHOLDER_CERTIFICATE_ARN, readConfig } from '../lib/config';
import { CDK_JSON_CONTEXT, context, CUSTOM_DOMAIN, STAND_IN_BINARY } from './helpers';

function configWith(overrides: Record<string, unknown>) {
  return readConfig(new App({ context: context(overrides) }).node);
}

describe('context', () => {
  test("cdk.json's defaults (with a stand-in binary) are a complete config", () => {
    const config = configWith({});
    expect(config.region).toBe('eu-west-1');
    expect(config.certificate.kind).toBe('arn');
    // Graviton by default, for both tiers.
    expect(config.architecture).toBe('arm64');
    expect(config.proxyInstanceType).toBe('t4g.small');
    expect(config.ssmParameterName).toBe('/planb/PlanB/alb2/dns-name');
    expect(config.proxyBinaryPath).toBe(STAND_IN_BINARY.arm64);
    // No fixed Cognito prefix: the Auth construct derives one per stack.
    expect(config.cognitoDomainPrefix).toBeUndefined();
    expect(config.alarmEmail).toBeUndefined();
    expect(config.githubRepo).toBeUndefined();
    // The example certificate ARN passes only because the tests allow placeholders.
    expect(CDK_JSON_CONTEXT['planb:certificateArn']).toBe(PLACEHOLDER_CERTIFICATE_ARN);
    expect(config.placeholders).toEqual(['planb:certificateArn']);
  });

  test('cdk.json points the proxy binary at the aarch64 musl release build and holds no fixed prefix', () => {
    const cdkJson = JSON.parse(fs.readFileSync(path.join(INFRA_DIR, 'cdk.json'), 'utf8'));
    expect(cdkJson.context['planb:proxyBinary']).toBe('../target/aarch64-unknown-linux-musl/release/planb-proxy');
    expect(cdkJson.context['planb:cognitoDomainPrefix']).toBeUndefined();
    expect(cdkJson.context['planb:ssmParameterName']).toBeUndefined();
  });

  test("cdk.json's example certificate stops synth, naming the key and how to set it", () => {
    for (const allow of [undefined, false, 'false']) {
      expect(() => configWith({ 'planb:allowPlaceholders': allow })).toThrow(
        /^context value planb:certificateArn still holds the example value from cdk.json, which cannot be deployed: pass -c planb:certificateArn=arn:aws:acm:.* \(offline synth and tests only: -c planb:allowPlaceholders=true\)$/,
      );
    }
    // A real ARN needs no allowance.
    const real = configWith({
      'planb:allowPlaceholders': undefined,
      'planb:certificateArn': 'arn:aws:acm:eu-west-1:111122223333:certificate/abc-123',
    });
    expect(real.placeholders).toEqual([]);
  });

  test('the SSM parameter name is scoped by the stack name', () => {
    expect(configWith({ 'planb:stackName': 'PlanB-staging' }).ssmParameterName).toBe('/planb/PlanB-staging/alb2/dns-name');
    expect(configWith({ 'planb:ssmParameterName': '/custom/name' }).ssmParameterName).toBe('/custom/name');
  });

  test('optional inputs: alarm e-mail and GitHub repository', () => {
    const config = configWith({ 'planb:alarmEmail': 'ops@example.com', 'planb:githubRepo': 'example/planb' });
    expect(config.alarmEmail).toBe('ops@example.com');
    expect(config.githubRepo).toBe('example/planb');
    expect(configWith({ 'planb:cognitoDomainPrefix': 'my-login' }).cognitoDomainPrefix).toBe('my-login');
  });

  test.each([
    ['planb:region', { 'planb:region': undefined }],
    ['planb:proxyBinary', { 'planb:proxyBinary': undefined }],
    ['planb:certificateArn', { 'planb:certificateArn': undefined }],
    ['planb:hostedZoneId', { ...CUSTOM_DOMAIN, 'planb:hostedZoneId': undefined }],
    ['planb:hostedZoneName', { ...CUSTOM_DOMAIN, 'planb:hostedZoneName': undefined }],
  ])('a missing %s stops synth with a message naming it', (key, overrides) => {
    const app = new App({ context: context(overrides) });
    expect(() => buildApp(app)).toThrow(new RegExp(`missing context value ${key}`));
  });

  test.each([
    ['planb:region', { 'planb:region': 'Europe' }],
    ['planb:cognitoDomainPrefix', { 'planb:cognitoDomainPrefix': 'my-cognito-login' }],
    ['planb:cognitoDomainPrefix', { 'planb:cognitoDomainPrefix': 'Upper' }],
    ['planb:architecture', { 'planb:architecture': 'sparc' }],
    ['planb:proxyMinCapacity', { 'planb:proxyMinCapacity': 'two' }],
    ['planb:backendMaxCapacity', { 'planb:backendMinCapacity': 4, 'planb:backendMaxCapacity': 2 }],
    ['planb:verifyAlbSignature', { 'planb:verifyAlbSignature': 'yes' }],
    ['planb:certificateArn', { 'planb:certificateArn': 'not-an-arn' }],
    ['planb:domainName', { ...CUSTOM_DOMAIN, 'planb:domainName': 'api.example.org' }],
    ['planb:ssmParameterName', { 'planb:ssmParameterName': 'no-leading-slash' }],
    ['planb:alarmEmail', { 'planb:alarmEmail': 'not-an-address' }],
    ['planb:githubRepo', { 'planb:githubRepo': 'https://github.com/example/planb' }],
    ['planb:githubOidcProviderArn', { 'planb:githubRepo': 'a/b', 'planb:githubOidcProviderArn': 'arn:aws:iam::111122223333:oidc-provider/accounts.google.com' }],
    ['planb:githubOidcProviderArn', { 'planb:githubOidcProviderArn': 'arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com' }],
    ['planb:allowPlaceholders', { 'planb:allowPlaceholders': 'yes' }],
    ['planb:profile', { 'planb:profile': 'tiny' }],
    ['planb:traceSampleRatio', { 'planb:traceSampleRatio': '1.5' }],
    ['planb:traceSampleRatio', { 'planb:traceSampleRatio': '-0.1' }],
    ['planb:traceSampleRatio', { 'planb:traceSampleRatio': '10%' }],
    ['planb:traceSampleRatio', { 'planb:traceSampleRatio': '0x1' }],
    ['planb:traceSampleRatio', { 'planb:traceSampleRatio': 'on' }],
  ])('a malformed %s is rejected by name', (key, overrides) => {
    expect(() => configWith(overrides)).toThrow(key);
  });

  test('traces: off when planb:traceSampleRatio is absent or 0, else the ratio, from -c or cdk.json alike', () => {
    expect(configWith({}).traceSampleRatio).toBeUndefined();
    expect(configWith({ 'planb:traceSampleRatio': '0' }).traceSampleRatio).toBeUndefined();
    expect(configWith({ 'planb:traceSampleRatio': 0 }).traceSampleRatio).toBeUndefined();
    expect(configWith({ 'planb:traceSampleRatio': '0.05' }).traceSampleRatio).toBe(0.05);
    expect(configWith({ 'planb:traceSampleRatio': 0.05 }).traceSampleRatio).toBe(0.05);
    expect(configWith({ 'planb:traceSampleRatio': '1' }).traceSampleRatio).toBe(1);
    expect(configWith({ 'planb:traceSampleRatio': 1e-7 }).traceSampleRatio).toBe(1e-7);
    expect(() => configWith({ 'planb:traceSampleRatio': '2' })).toThrow(
      /^context value planb:traceSampleRatio must be a number from 0 \(off\) to 1 \(every trace the backend starts\), got "2"$/,
    );
  });

  test('a certificate from another region is rejected: ALB1 can only use its own region', () => {
    expect(() =>
      configWith({ 'planb:certificateArn': 'arn:aws:acm:us-east-1:111122223333:certificate/abc-123' }),
    ).toThrow(/planb:certificateArn is in us-east-1 but planb:region is eu-west-1/);
  });

  test('a missing proxy binary says to run make proxy-release', () => {
    const missing = path.join(os.tmpdir(), 'no-such-dir', 'planb-proxy');
    expect(() => configWith({ 'planb:proxyBinary': missing })).toThrow(/make proxy-release/);
  });

  test('relative binary paths resolve against infra/, not the working directory', () => {
    // The default relative path: it names ../target/... from infra/.
    expect(() => configWith({ 'planb:proxyBinary': '../no-such/planb-proxy' })).toThrow(
      path.join(path.dirname(INFRA_DIR), 'no-such', 'planb-proxy'),
    );
  });

  test("the binary's CPU comes from its ELF header, not its path", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'planb-arch-'));
    // An x86_64 build under a path that says aarch64: the header wins.
    const misnamed = path.join(dir, 'aarch64-unknown-linux-musl', 'release', 'planb-proxy');
    fs.mkdirSync(path.dirname(misnamed), { recursive: true });
    fs.copyFileSync(STAND_IN_BINARY.x86_64, misnamed);
    try {
      expect(() => configWith({ 'planb:proxyBinary': misnamed, 'planb:architecture': 'arm64' })).toThrow(
        /is a x86_64 build but planb:architecture is arm64: run `make proxy-release` or pass -c planb:architecture=x86_64/,
      );
      expect(configWith({ 'planb:proxyBinary': misnamed, 'planb:architecture': 'x86_64' }).architecture).toBe('x86_64');
      expect(() => configWith({ 'planb:proxyBinary': STAND_IN_BINARY.arm64, 'planb:architecture': 'x86_64' })).toThrow(
        /is a arm64 build but planb:architecture is x86_64: run `ARCH=x86_64 make proxy-release`/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a file that is not an ELF executable (a script, a truncated file) is refused', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'planb-elf-'));
    try {
      const script = path.join(dir, 'script');
      fs.writeFileSync(script, '#!/bin/sh\nexit 1\n');
      const truncated = path.join(dir, 'truncated');
      fs.writeFileSync(truncated, fs.readFileSync(STAND_IN_BINARY.arm64).subarray(0, 10));
      for (const file of [script, truncated]) {
        expect(() => configWith({ 'planb:proxyBinary': file })).toThrow(/is not a 64-bit little-endian ELF executable/);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('-c values arrive as strings and are parsed like cdk.json values', () => {
    const config = configWith({ 'planb:proxyMaxCapacity': '6', 'planb:verifyAlbSignature': 'false', 'planb:natGateways': '2' });
    expect(config.proxyMaxCapacity).toBe(6);
    expect(config.verifyAlbSignature).toBe(false);
    expect(config.natGateways).toBe(2);
  });

  test('the CLI entry point prints one line naming the key and exits 1', () => {
    const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'planb-cli-'));
    const ctx = context({ 'planb:region': '' });
    try {
      const run = spawnSync(
        process.execPath,
        [require.resolve('ts-node/dist/bin'), '--transpile-only', path.join(INFRA_DIR, 'bin', 'app.ts')],
        {
          cwd: INFRA_DIR,
          encoding: 'utf8',
          // How the CDK CLI hands context and the output dir to the app.
          env: { ...process.env, CDK_CONTEXT_JSON: JSON.stringify(ctx), CDK_OUTDIR: outdir },
          timeout: 90000,
        },
      );
      expect(run.status).toBe(1);
      expect(run.stderr.trim()).toMatch(/^error: missing context value planb:region: /);
      expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
    } finally {
      fs.rmSync(outdir, { recursive: true, force: true });
    }
  });
});
