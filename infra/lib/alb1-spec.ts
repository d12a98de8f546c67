import * as fs from 'fs';
import * as path from 'path';
import { INFRA_DIR } from './config';

/** Where ALB1's description lives: the one file the CDK app and the local stand-in both read. */
export const ALB1_SPEC_FILE = path.join(INFRA_DIR, 'alb1.json');

/** What a listener rule matches; every condition given must match. */
export interface Alb1Conditions {
  /** ALB path patterns (case-sensitive, `*` and `?` wildcards). */
  readonly paths?: readonly string[];
  readonly methods?: readonly string[];
  /** One header; its name and value patterns match case-insensitively. */
  readonly header?: { readonly name: string; readonly values: readonly string[] };
}

/** A claim ALB's JWT validation requires beside iss, exp, nbf and iat. */
export interface Alb1Claim {
  readonly format: 'single-string' | 'string-array' | 'space-separated-values';
  readonly name: string;
  readonly values: readonly string[];
}

/** A rule's action: every action but the fixed response ends in a forward to the proxies. */
export type Alb1Action =
  | { readonly type: 'fixed-response'; readonly statusCode: number; readonly contentType: string; readonly messageBody: string }
  | { readonly type: 'forward' }
  | { readonly type: 'jwt-validation'; readonly additionalClaims: readonly Alb1Claim[] }
  | { readonly type: 'authenticate-cognito'; readonly onUnauthenticatedRequest: 'deny' | 'authenticate' | 'allow' };

/** One listener rule: its construct id (the CloudFormation logical id follows from it), priority, conditions, action. */
export interface Alb1Rule {
  readonly id: string;
  readonly priority: number;
  readonly conditions: Alb1Conditions;
  readonly action: Alb1Action;
}

/** A managed rule group, in evaluation order; `bodyRules` count and label instead of blocking. */
export interface Alb1ManagedGroup {
  readonly name: string;
  readonly labelNamespace?: string;
  readonly bodyRules?: readonly string[];
}

/** A route that takes a body: exempt from the managed body rules, bounded by its declared length instead. */
export interface Alb1BodyRoute {
  readonly name: string;
  /** The route's paths: `exactly` this one and everything that `startsWith` the other. */
  readonly paths: { readonly exactly: string; readonly startsWith: string };
  /** The largest `Content-Length` WAF lets through to the route. */
  readonly maxContentLength: number;
  /** The name of the WAF rule refusing a declared length above {@link maxContentLength}. */
  readonly overLimitRule: string;
}

/** ALB1 as `alb1.json` describes it. */
export interface Alb1Spec {
  readonly listener: {
    readonly sessionTimeoutSeconds: number;
    readonly scope: string;
    readonly rules: readonly Alb1Rule[];
    readonly defaultAction: Extract<Alb1Action, { type: 'authenticate-cognito' }>;
  };
  readonly waf: {
    readonly managedRuleGroups: readonly Alb1ManagedGroup[];
    /** The name of the WAF rule blocking on the body labels outside the body routes. */
    readonly outsideBodyRoutesRule: string;
    readonly bodyRoutes: readonly Alb1BodyRoute[];
    readonly rateLimitPer5Min: number;
  };
}

/** Every problem with a parsed description, as sentences naming the field (empty: it is sound). */
export function specProblems(spec: Alb1Spec): string[] {
  const problems: string[] = [];
  const rules = spec.listener?.rules ?? [];
  if (!rules.length) problems.push('listener.rules is empty');
  const ids = new Set<string>();
  const priorities = new Set<number>();
  for (const rule of rules) {
    if (!/^[A-Z][A-Za-z0-9]*$/.test(rule.id ?? '')) problems.push(`rule id '${rule.id}' is not a PascalCase name`);
    if (ids.has(rule.id)) problems.push(`rule id '${rule.id}' is used twice`);
    ids.add(rule.id);
    if (!Number.isInteger(rule.priority) || rule.priority < 1 || rule.priority > 50000) {
      problems.push(`rule ${rule.id}: priority ${rule.priority} is not an integer in 1..50000`);
    }
    if (priorities.has(rule.priority)) problems.push(`rule ${rule.id}: priority ${rule.priority} is used twice`);
    priorities.add(rule.priority);
    const c = rule.conditions ?? {};
    if (!c.paths?.length && !c.methods?.length && !c.header) problems.push(`rule ${rule.id} has no condition`);
    if (!['fixed-response', 'forward', 'jwt-validation', 'authenticate-cognito'].includes(rule.action?.type)) {
      problems.push(`rule ${rule.id}: unknown action type '${rule.action?.type}'`);
    }
  }
  const routes = spec.waf?.bodyRoutes ?? [];
  for (const route of routes) {
    if (!Number.isSafeInteger(route.maxContentLength) || route.maxContentLength < 0) {
      problems.push(`body route ${route.name}: maxContentLength ${route.maxContentLength} is not a non-negative integer`);
    }
    if (!route.paths?.exactly?.startsWith('/') || !route.paths?.startsWith?.startsWith('/')) {
      problems.push(`body route ${route.name}: paths.exactly and paths.startsWith must be paths`);
    }
  }
  for (const group of spec.waf?.managedRuleGroups ?? []) {
    if (group.bodyRules?.length && !group.labelNamespace) problems.push(`managed group ${group.name}: bodyRules without labelNamespace`);
  }
  return problems;
}

/** Reads and checks `file` (default: {@link ALB1_SPEC_FILE}); a description with problems is an error naming them. */
export function loadAlb1Spec(file: string = ALB1_SPEC_FILE): Alb1Spec {
  const spec = JSON.parse(fs.readFileSync(file, 'utf8')) as Alb1Spec;
  const problems = specProblems(spec);
  if (problems.length) throw new Error(`${file}: ${problems.join('; ')}`);
  return spec;
}

/** ALB1's description, read once. */
export const ALB1_SPEC: Alb1Spec = loadAlb1Spec();
