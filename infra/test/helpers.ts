import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { IConstruct } from 'constructs';
import { buildApp } from '../lib/app';
import { INFRA_DIR } from '../lib/config';
import { PlanBStack } from '../lib/planb-stack';

/** One temp dir per test process for stand-in binaries and cloud assemblies; removed at exit. */
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'planb-infra-test-'));
process.on('exit', () => fs.rmSync(TMP, { recursive: true, force: true }));

/**
 * cdk.json's context. Jest does not read cdk.json (only the CDK CLI does), so the tests pass it
 * to the App themselves: they then synthesize what `cdk synth` would, feature flags included.
 */
export const CDK_JSON_CONTEXT: Record<string, unknown> = JSON.parse(
  fs.readFileSync(path.join(INFRA_DIR, 'cdk.json'), 'utf8'),
).context;

/**
 * Stand-ins for the planb-proxy binary: a crafted 64-byte ELF header for each CPU (test/fixtures),
 * which is all readConfig reads. The tests check wiring, never the real musl build.
 */
export const STAND_IN_BINARY = {
  arm64: path.join(INFRA_DIR, 'test', 'fixtures', 'elf-header-aarch64.bin'),
  x86_64: path.join(INFRA_DIR, 'test', 'fixtures', 'elf-header-x86_64.bin'),
} as const;

/**
 * cdk.json's context with the stand-in binary for the chosen architecture and placeholders
 * allowed (cdk.json's example certificate), plus `overrides`.
 */
export function context(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const arch = (overrides['planb:architecture'] ?? CDK_JSON_CONTEXT['planb:architecture']) as 'arm64' | 'x86_64';
  return {
    ...CDK_JSON_CONTEXT,
    'planb:proxyBinary': STAND_IN_BINARY[arch] ?? STAND_IN_BINARY.arm64,
    'planb:allowPlaceholders': true,
    ...overrides,
  };
}

/** A synthesized Plan B app: the App, the stack and its template. */
export interface Synthesized {
  readonly app: App;
  readonly stack: PlanBStack;
  readonly template: Template;
}

/** Builds the app exactly as bin/app.ts does (cdk-nag included) and synthesizes it. */
export function synth(overrides: Record<string, unknown> = {}): Synthesized {
  const app = new App({ outdir: fs.mkdtempSync(path.join(TMP, 'cdk.out-')), context: context(overrides) });
  const stack = buildApp(app);
  return { app, stack, template: Template.fromStack(stack) };
}

/** Context for the custom-domain variant: a new DNS-validated certificate and an alias record. */
export const CUSTOM_DOMAIN = {
  'planb:certificateArn': '',
  'planb:domainName': 'api.example.com',
  'planb:hostedZoneId': 'Z0000000000000EXAMPLE',
  'planb:hostedZoneName': 'example.com',
};

/** The logical id of the CloudFormation resource at construct path `p` (e.g. 'PublicAlb/Alb'). */
export function logicalId(stack: Stack, p: string): string {
  let node: IConstruct = stack;
  for (const part of p.split('/')) node = node.node.findChild(part);
  const element = CfnElement.isCfnElement(node) ? node : node.node.defaultChild;
  if (!element || !CfnElement.isCfnElement(element)) throw new Error(`no CloudFormation resource at ${p}`);
  return stack.resolve((element as CfnElement).logicalId);
}

/** A security group rule reduced to what the tests compare: port range and peer. */
export interface Rule {
  readonly ports: string;
  readonly peer: string;
}

function peerOf(rule: Record<string, any>, sgKey: string): string {
  if (rule.CidrIp) return rule.CidrIp;
  if (rule.CidrIpv6) return rule.CidrIpv6;
  if (rule.DestinationPrefixListId) return `prefix-list:${JSON.stringify(rule.DestinationPrefixListId)}`;
  const sg = rule[sgKey];
  if (sg && sg['Fn::GetAtt']) return `sg:${sg['Fn::GetAtt'][0]}`;
  return JSON.stringify(rule);
}

function rulesOf(template: Template, sgId: string, direction: 'ingress' | 'egress'): Rule[] {
  const [inlineKey, standaloneType, sgKey] =
    direction === 'ingress'
      ? ['SecurityGroupIngress', 'AWS::EC2::SecurityGroupIngress', 'SourceSecurityGroupId']
      : ['SecurityGroupEgress', 'AWS::EC2::SecurityGroupEgress', 'DestinationSecurityGroupId'];
  const sg = template.toJSON().Resources[sgId];
  const inline: Record<string, any>[] = sg.Properties[inlineKey] ?? [];
  const standalone = Object.values(template.findResources(standaloneType))
    .map((r) => r.Properties)
    .filter((p) => p.GroupId?.['Fn::GetAtt']?.[0] === sgId);
  return [...inline, ...standalone]
    .map((r) => ({ ports: `${r.IpProtocol}/${r.FromPort}-${r.ToPort}`, peer: peerOf(r, sgKey) }))
    .sort((a, b) => `${a.ports}${a.peer}`.localeCompare(`${b.ports}${b.peer}`));
}

/** Every ingress rule of security group `sgId`, inline or standalone. */
export function ingressOf(template: Template, sgId: string): Rule[] {
  return rulesOf(template, sgId, 'ingress');
}

/** Every egress rule of security group `sgId`, inline or standalone. */
export function egressOf(template: Template, sgId: string): Rule[] {
  return rulesOf(template, sgId, 'egress');
}

/**
 * The proxy fleet's user data as text: the Fn::Join pieces concatenated, each intrinsic replaced
 * by its JSON (e.g. the asset bucket's Fn::Sub), so tests can read the script.
 */
export function proxyUserData(synthesized: Synthesized): string {
  const lt = synthesized.template.toJSON().Resources[logicalId(synthesized.stack, 'ProxyFleet/LaunchTemplate')];
  const joined = lt.Properties.LaunchTemplateData.UserData['Fn::Base64'];
  const parts: unknown[] = typeof joined === 'string' ? [joined] : joined['Fn::Join'][1];
  return parts.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join('');
}
