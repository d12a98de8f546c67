import * as fs from 'fs';
import * as path from 'path';
import { Node } from 'constructs';
import { ELF_MACHINE, machineName, readElfHeader } from './elf';
import { MetricDetail } from './prometheus';

/** The infra/ directory: relative context paths are resolved against it, not the caller's cwd. */
export const INFRA_DIR = path.resolve(__dirname, '..');

/** The repository root: the Docker build context of the backend image and home of `systemd/`. */
export const REPO_ROOT = path.resolve(INFRA_DIR, '..');

/** Prefix of every context key this app reads (`cdk.json` or `-c planb:key=value`). */
export const CONTEXT_PREFIX = 'planb:';

/** The CPU architecture of both tiers: the proxy instances and the backend tasks. */
export type Architecture = 'x86_64' | 'arm64';

/** How ALB1's HTTPS listener gets its certificate and which host name users type. */
export type CertificateSource =
  | {
      /** An existing ACM certificate in the stack's region. */
      readonly kind: 'arn';
      readonly certificateArn: string;
      /** The host name users type; when unset, ALB1's own DNS name is used. */
      readonly domainName?: string;
      /** When set together with domainName, the stack adds an alias record for it. */
      readonly hostedZone?: HostedZoneRef;
    }
  | {
      /** A new DNS-validated ACM certificate for domainName, validated in hostedZone. */
      readonly kind: 'dns';
      readonly domainName: string;
      readonly hostedZone: HostedZoneRef;
    };

/** A Route 53 public hosted zone given by id and name (no lookup: synth stays offline). */
export interface HostedZoneRef {
  readonly hostedZoneId: string;
  readonly zoneName: string;
}

/**
 * How much the stack runs when idle: `standard` (the default: two of everything that can fail
 * alone, every metric dimension, every WAF verdict logged) or `small` (a team's dev account: one
 * proxy on standard CPU credits, one backend task, fewer metric dimensions, WAF logging only what
 * it blocks or counts, the proxies' AWS API calls through NAT instead of interface endpoints).
 * infra/README.md's cost table gives both floors.
 */
export type Profile = 'standard' | 'small';

/** Every input of the stack, validated; built from context by {@link readConfig}. */
export interface PlanBConfig {
  readonly stackName: string;
  readonly profile: Profile;
  /** The proxies' burstable CPU credits: `unlimited` (standard profile) bills sustained bursts, `standard` throttles to the baseline instead. */
  readonly proxyCpuCredits: 'standard' | 'unlimited';
  /** Which metric dimensions the CloudWatch agents publish (each dimension value is a billed metric). */
  readonly metricDetail: MetricDetail;
  /** WAF verdicts written to its log group: every request's, or only those it blocked or counted. */
  readonly wafLoggedVerdicts: 'all' | 'blockAndCount';
  /**
   * How the proxies reach AWS's APIs: `endpoints` (interface endpoints in the VPC; their HTTPS
   * goes nowhere else) or `nat` (through the NAT gateway to anywhere on 443, without the
   * endpoints' hourly charge).
   */
  readonly proxyAwsAccess: 'endpoints' | 'nat';
  readonly region: string;
  readonly certificate: CertificateSource;
  /**
   * Hosted-UI domain prefix from `planb:cognitoDomainPrefix`; undefined means "derive one unique to
   * this stack at deploy time" (see `Auth`).
   */
  readonly cognitoDomainPrefix: string | undefined;
  /** Absolute path of the planb-proxy binary shipped as an S3 asset. */
  readonly proxyBinaryPath: string;
  readonly architecture: Architecture;
  readonly proxyInstanceType: string;
  readonly ssmParameterName: string;
  readonly natGateways: number;
  readonly proxyMinCapacity: number;
  readonly proxyMaxCapacity: number;
  readonly backendMinCapacity: number;
  readonly backendMaxCapacity: number;
  /** Pass ALB1's ARN to the backend as ALB_ARN so it verifies x-amzn-oidc-data too. */
  readonly verifyAlbSignature: boolean;
  /**
   * The share of traces starting at the backend that it records and sends to X-Ray, in (0, 1],
   * through the collector sidecar; undefined (`planb:traceSampleRatio` absent or 0): traces off,
   * no collector.
   */
  readonly traceSampleRatio: number | undefined;
  /** Cognito MFA: 'required' (TOTP) or 'optional'. */
  readonly mfa: 'required' | 'optional';
  /** Where alarm notifications are e-mailed (optional: the SNS topic exists either way). */
  readonly alarmEmail: string | undefined;
  /** `owner/name` of the GitHub repository whose main branch may deploy (OIDC role), if any. */
  readonly githubRepo: string | undefined;
  /**
   * The ARN of the account's existing GitHub OIDC provider (an account holds one per issuer): the
   * deploy role trusts it instead of the stack creating one, which would fail if it exists.
   */
  readonly githubOidcProviderArn: string | undefined;
  /**
   * Context keys still holding the example values shipped in cdk.json. Empty unless
   * `planb:allowPlaceholders=true` (tests, offline gates): otherwise such a value stops synth.
   */
  readonly placeholders: string[];
}

/**
 * The example certificate ARN in cdk.json (123456789012 is AWS's documentation account).
 * It lets `cdk synth` run out of the box; a deploy needs a real one.
 */
export const PLACEHOLDER_CERTIFICATE_ARN =
  'arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000';

/** Raised for a missing or malformed context value; the message names the key. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function isPlaceholderArn(arn: string): boolean {
  return arn.split(':')[4] === '123456789012';
}

function key(name: string): string {
  return `${CONTEXT_PREFIX}${name}`;
}

/** Context values come typed from cdk.json but as strings from `-c`: treat both alike. */
function raw(node: Node, name: string): string | undefined {
  const value = node.tryGetContext(key(name));
  if (value === undefined || value === null) return undefined;
  const text = String(value).trim();
  return text === '' ? undefined : text;
}

function required(node: Node, name: string, hint: string): string {
  const value = raw(node, name);
  if (value === undefined) {
    throw new ConfigError(
      `missing context value ${key(name)}: ${hint} (set it in infra/cdk.json or pass -c ${key(name)}=...)`,
    );
  }
  return value;
}

function integer(node: Node, name: string, fallback: number, min: number, max: number): number {
  const value = raw(node, name);
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new ConfigError(`context value ${key(name)} must be an integer from ${min} to ${max}, got "${value}"`);
  }
  return Number(value);
}

function boolean(node: Node, name: string, fallback: boolean): boolean {
  const value = raw(node, name);
  if (value === undefined) return fallback;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new ConfigError(`context value ${key(name)} must be true or false, got "${value}"`);
}

function oneOf<T extends string>(node: Node, name: string, allowed: readonly T[], fallback: T): T {
  const value = raw(node, name) ?? fallback;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(`context value ${key(name)} must be one of ${allowed.join(', ')}, got "${value}"`);
  }
  return value as T;
}

function hostedZone(node: Node): HostedZoneRef | undefined {
  const hostedZoneId = raw(node, 'hostedZoneId');
  if (hostedZoneId === undefined) return undefined;
  const zoneName = required(node, 'hostedZoneName', `the name of hosted zone ${hostedZoneId} (no lookups at synth)`);
  return { hostedZoneId, zoneName: zoneName.replace(/\.$/, '') };
}

function certificate(node: Node, region: string): CertificateSource {
  const certificateArn = raw(node, 'certificateArn');
  const domainName = raw(node, 'domainName')?.toLowerCase();
  const zone = hostedZone(node);
  if (domainName !== undefined && !/^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$/.test(domainName)) {
    throw new ConfigError(`context value ${key('domainName')} is not a DNS name: "${domainName}"`);
  }
  if (zone && domainName && !(domainName === zone.zoneName || domainName.endsWith(`.${zone.zoneName}`))) {
    throw new ConfigError(
      `context value ${key('domainName')} (${domainName}) is not inside ${key('hostedZoneName')} (${zone.zoneName})`,
    );
  }
  if (certificateArn !== undefined) {
    const match = /^arn:aws[a-z-]*:acm:([a-z0-9-]+):\d{12}:certificate\/[A-Za-z0-9-]+$/.exec(certificateArn);
    if (!match) {
      throw new ConfigError(`context value ${key('certificateArn')} is not an ACM certificate ARN: "${certificateArn}"`);
    }
    // An ALB only accepts certificates from its own region (the cdk.json example is exempt: it is
    // flagged as a placeholder anyway, and synth in any region should work out of the box).
    if (match[1] !== region && !isPlaceholderArn(certificateArn)) {
      throw new ConfigError(
        `context value ${key('certificateArn')} is in ${match[1]} but ${key('region')} is ${region}: ALB1 needs a certificate from its own region`,
      );
    }
    return { kind: 'arn', certificateArn, domainName, hostedZone: domainName ? zone : undefined };
  }
  if (domainName === undefined) {
    throw new ConfigError(
      `missing context value ${key('certificateArn')} (or ${key('domainName')} with ${key('hostedZoneId')} and ${key('hostedZoneName')}): ALB1 serves HTTPS and needs a certificate`,
    );
  }
  if (zone === undefined) {
    throw new ConfigError(
      `missing context value ${key('hostedZoneId')}: ${key('domainName')} without ${key('certificateArn')} needs a hosted zone to validate a new certificate`,
    );
  }
  return { kind: 'dns', domainName, hostedZone: zone };
}

function proxyBinary(node: Node, architecture: Architecture): string {
  const configured = required(node, 'proxyBinary', 'the path of the static planb-proxy build shipped to the proxy fleet');
  const resolved = path.resolve(INFRA_DIR, configured);
  if (!fs.existsSync(resolved) || !fs.statSync(resolved).isFile()) {
    throw new ConfigError(
      `the proxy binary ${resolved} (context value ${key('proxyBinary')}) does not exist: run \`make proxy-release\` at the repository root first`,
    );
  }
  // The CPU comes from the file itself (ELF e_machine), not from its path: a renamed or copied
  // build is checked just the same, and an x86_64 binary never reaches a Graviton instance.
  const elf = readElfHeader(resolved);
  if (elf === undefined || !elf.is64Bit || !elf.littleEndian) {
    throw new ConfigError(
      `the proxy binary ${resolved} (context value ${key('proxyBinary')}) is not a 64-bit little-endian ELF executable: run \`make proxy-release\``,
    );
  }
  if (elf.machine !== ELF_MACHINE[architecture]) {
    const rebuild = architecture === 'arm64' ? 'make proxy-release' : 'ARCH=x86_64 make proxy-release';
    throw new ConfigError(
      `the proxy binary ${resolved} (context value ${key('proxyBinary')}) is a ${machineName(elf.machine)} build but ${key('architecture')} is ${architecture}: run \`${rebuild}\` or pass -c ${key('architecture')}=${machineName(elf.machine)}`,
    );
  }
  return resolved;
}

/** The domain prefix when given; Cognito's rules: lower case, digits, hyphens, no reserved words. */
function cognitoDomainPrefix(node: Node): string | undefined {
  const prefix = raw(node, 'cognitoDomainPrefix');
  if (prefix === undefined) return undefined;
  if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(prefix) || /aws|amazon|cognito/.test(prefix)) {
    throw new ConfigError(
      `context value ${key('cognitoDomainPrefix')} must be lower-case letters, digits and hyphens without "aws", "amazon" or "cognito", got "${prefix}"`,
    );
  }
  return prefix;
}

/**
 * Example values that let `cdk synth` run out of the box but can never deploy. Each is an error
 * naming its key and how to set it, unless `planb:allowPlaceholders=true` (tests, offline gates).
 */
function checkPlaceholders(node: Node, cert: CertificateSource): string[] {
  const found: { key: string; fix: string }[] = [];
  if (cert.kind === 'arn' && isPlaceholderArn(cert.certificateArn)) {
    found.push({
      key: key('certificateArn'),
      fix: `pass -c ${key('certificateArn')}=arn:aws:acm:REGION:ACCOUNT:certificate/ID (an ACM certificate in ${key('region')}), or -c ${key('certificateArn')}= with ${key('domainName')}, ${key('hostedZoneId')} and ${key('hostedZoneName')} to have one created`,
    });
  }
  if (found.length === 0 || boolean(node, 'allowPlaceholders', false)) return found.map((f) => f.key);
  const first = found[0];
  throw new ConfigError(
    `context value ${first.key} still holds the example value from cdk.json, which cannot be deployed: ${first.fix} (offline synth and tests only: -c ${key('allowPlaceholders')}=true)`,
  );
}

function optionalMatching(node: Node, name: string, pattern: RegExp, what: string): string | undefined {
  const value = raw(node, name);
  if (value !== undefined && !pattern.test(value)) {
    throw new ConfigError(`context value ${key(name)} must be ${what}, got "${value}"`);
  }
  return value;
}

/** A ratio in [0, 1] written as a decimal number; 0 (or nothing) means off, so undefined. */
function ratio(node: Node, name: string, what: string): number | undefined {
  const value = raw(node, name);
  if (value === undefined) return undefined;
  const parsed = /^(\d+(\.\d*)?|\.\d+)(e-?\d+)?$/i.test(value) ? Number(value) : NaN;
  if (!(parsed >= 0 && parsed <= 1)) {
    throw new ConfigError(`context value ${key(name)} must be a number from 0 (off) to 1 (${what}), got "${value}"`);
  }
  return parsed === 0 ? undefined : parsed;
}

/**
 * Reads and validates every `planb:*` context value.
 *
 * Throws {@link ConfigError} naming the key when a required value is missing or malformed, when a
 * value is still cdk.json's example (unless `planb:allowPlaceholders=true`), and when the proxy
 * binary is absent or built for the other CPU (the message says what to run). Does no AWS lookups.
 */
export function readConfig(node: Node): PlanBConfig {
  const region = required(node, 'region', 'the AWS region to deploy to, e.g. eu-west-1');
  if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(region)) {
    throw new ConfigError(`context value ${key('region')} is not an AWS region: "${region}"`);
  }
  const stackName = raw(node, 'stackName') ?? 'PlanB';
  if (!/^[A-Za-z][A-Za-z0-9-]{0,100}$/.test(stackName)) {
    throw new ConfigError(`context value ${key('stackName')} is not a valid stack name: "${stackName}"`);
  }
  // Graviton by default: the same work for less money on both tiers.
  const architecture = oneOf<Architecture>(node, 'architecture', ['x86_64', 'arm64'], 'arm64');
  // Scoped by the stack name, so a second stack in the same account and region gets its own.
  const ssmParameterName = raw(node, 'ssmParameterName') ?? `/planb/${stackName}/alb2/dns-name`;
  if (!/^\/[A-Za-z0-9_.\-/]+$/.test(ssmParameterName) || ssmParameterName.startsWith('/aws') || ssmParameterName.startsWith('/ssm')) {
    throw new ConfigError(`context value ${key('ssmParameterName')} must be a path like /planb/alb2/dns-name, got "${ssmParameterName}"`);
  }
  const profile = oneOf<Profile>(node, 'profile', ['standard', 'small'], 'standard');
  const small = profile === 'small';
  const proxyMinCapacity = integer(node, 'proxyMinCapacity', small ? 1 : 2, 1, 100);
  const proxyMaxCapacity = integer(node, 'proxyMaxCapacity', 4, proxyMinCapacity, 100);
  const backendMinCapacity = integer(node, 'backendMinCapacity', small ? 1 : 2, 1, 100);
  const backendMaxCapacity = integer(node, 'backendMaxCapacity', 8, backendMinCapacity, 100);
  const cert = certificate(node, region);
  const githubRepo = optionalMatching(node, 'githubRepo', /^[A-Za-z0-9-]+\/[A-Za-z0-9._-]+$/, 'a GitHub repository as owner/name');
  const githubOidcProviderArn = optionalMatching(
    node,
    'githubOidcProviderArn',
    /^arn:aws[a-z-]*:iam::\d{12}:oidc-provider\/token\.actions\.githubusercontent\.com$/,
    "the ARN of the account's GitHub OIDC provider (arn:aws:iam::ACCOUNT:oidc-provider/token.actions.githubusercontent.com)",
  );
  if (githubOidcProviderArn !== undefined && githubRepo === undefined) {
    throw new ConfigError(`context value ${key('githubOidcProviderArn')} is set but ${key('githubRepo')} is not: the provider is only used by the GitHub deploy role`);
  }
  const placeholders = checkPlaceholders(node, cert);
  return {
    stackName,
    profile,
    proxyCpuCredits: small ? 'standard' : 'unlimited',
    metricDetail: small ? 'reduced' : 'full',
    wafLoggedVerdicts: small ? 'blockAndCount' : 'all',
    proxyAwsAccess: small ? 'nat' : 'endpoints',
    region,
    certificate: cert,
    cognitoDomainPrefix: cognitoDomainPrefix(node),
    proxyBinaryPath: proxyBinary(node, architecture),
    architecture,
    proxyInstanceType: raw(node, 'proxyInstanceType') ?? (architecture === 'arm64' ? 't4g.small' : 't3.small'),
    ssmParameterName,
    natGateways: integer(node, 'natGateways', 1, 1, 2),
    proxyMinCapacity,
    proxyMaxCapacity,
    backendMinCapacity,
    backendMaxCapacity,
    verifyAlbSignature: boolean(node, 'verifyAlbSignature', true),
    traceSampleRatio: ratio(node, 'traceSampleRatio', 'every trace the backend starts'),
    mfa: oneOf(node, 'mfa', ['required', 'optional'] as const, 'required'),
    alarmEmail: optionalMatching(node, 'alarmEmail', /^[^@\s]+@[^@\s]+\.[^@\s]+$/, 'an e-mail address'),
    githubRepo,
    githubOidcProviderArn,
    placeholders,
  };
}
