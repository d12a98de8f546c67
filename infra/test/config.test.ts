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
    expect(config.architecture).toBe('x86_64');
    expect(config.proxyInstanceType).toBe('t3.small');
    expect(config.ssmParameterName).toBe('/planb/alb2/dns-name');
    expect(config.proxyBinaryPath).toBe(STAND_IN_BINARY);
    // The example certificate ARN is reported so bin/app.ts can say a deploy needs a real one.
    expect(CDK_JSON_CONTEXT['planb:certificateArn']).toBe(PLACEHOLDER_CERTIFICATE_ARN);
    expect(config.placeholders).toEqual(['planb:certificateArn']);
  });

  test('cdk.json points the proxy binary at the musl release build', () => {
    const cdkJson = JSON.parse(fs.readFileSync(path.join(INFRA_DIR, 'cdk.json'), 'utf8'));
    expect(cdkJson.context['planb:proxyBinary']).toBe('../target/x86_64-unknown-linux-musl/release/planb-proxy');
  });

  test.each([
    ['planb:region', { 'planb:region': undefined }],
    ['planb:cognitoDomainPrefix', { 'planb:cognitoDomainPrefix': '' }],
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
  ])('a malformed %s is rejected by name', (key, overrides) => {
    expect(() => configWith(overrides)).toThrow(key);
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

  test('an x86_64 musl build is refused for arm64 instances', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'planb-arch-'));
    const x86 = path.join(dir, 'x86_64-unknown-linux-musl', 'release', 'planb-proxy');
    fs.mkdirSync(path.dirname(x86), { recursive: true });
    fs.writeFileSync(x86, 'stand-in');
    try {
      expect(() => configWith({ 'planb:proxyBinary': x86, 'planb:architecture': 'arm64' })).toThrow(
        /x86_64 build but planb:architecture is arm64/,
      );
      expect(configWith({ 'planb:proxyBinary': x86 }).architecture).toBe('x86_64');
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
