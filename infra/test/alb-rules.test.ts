import { API_RESOURCE_SERVER, API_SCOPES } from '../lib/constructs/auth';
import { LISTENER_RULES } from '../lib/constructs/public-alb';

/** The API's paths and the sign-out route, as the tests below expect them. */
const API_PATH_PATTERN = '/api/*';
const LOGOUT_PATH = '/logout';
import { CUSTOM_DOMAIN, logicalId, synth, Synthesized } from './helpers';

type Condition = { Field: string; [config: string]: any };
type Action = { Type: string; Order?: number; [config: string]: any };
type Rule = { Priority: number; Conditions: Condition[]; Actions: Action[] };

/** A request as ALB1's rules see it. */
interface Request {
  readonly method: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
}

/** ALB's wildcard match: `*` any run of characters, `?` one character, the rest literal. */
function wildcard(pattern: string, value: string, caseInsensitive: boolean): boolean {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, caseInsensitive ? 'is' : 's').test(value);
}

/**
 * A model of ALB's rule selection (test double: no ALB runs here), for the condition types these
 * rules use: the rules by priority, the first whose every condition matches; none: the default.
 * Per ALB's documentation, path patterns are case-sensitive, header names and values are not.
 */
function selectRule(rules: Rule[], req: Request): Rule | 'default' {
  const headers = Object.fromEntries(Object.entries(req.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  const matches = (c: Condition): boolean => {
    switch (c.Field) {
      case 'path-pattern':
        return c.PathPatternConfig.Values.some((p: string) => wildcard(p, req.path, false));
      case 'http-request-method':
        return c.HttpRequestMethodConfig.Values.includes(req.method);
      case 'http-header': {
        const value = headers[c.HttpHeaderConfig.HttpHeaderName.toLowerCase()];
        return value !== undefined && c.HttpHeaderConfig.Values.some((p: string) => wildcard(p, value, true));
      }
      default:
        throw new Error(`the model has no ${c.Field} condition`);
    }
  };
  const sorted = [...rules].sort((a, b) => a.Priority - b.Priority);
  return sorted.find((r) => r.Conditions.every(matches)) ?? 'default';
}

describe("ALB1's HTTPS listener rules", () => {
  let s: Synthesized;
  let rules: Rule[];
  let defaultActions: Action[];
  let proxyTargets: { Ref: string };
  let byPriority: (p: number) => Rule;

  beforeAll(() => {
    s = synth();
    const listeners = s.template.findResources('AWS::ElasticLoadBalancingV2::Listener');
    const [httpsId, https] = Object.entries(listeners).find(([, l]) => l.Properties.Port === 443)!;
    defaultActions = https.Properties.DefaultActions;
    rules = Object.values(s.template.findResources('AWS::ElasticLoadBalancingV2::ListenerRule'))
      .map((r) => r.Properties)
      .filter((r) => r.ListenerArn.Ref === httpsId);
    proxyTargets = { Ref: logicalId(s.stack, 'PublicAlb/ProxyTargets') };
    byPriority = (p) => {
      const found = rules.filter((r) => r.Priority === p);
      expect(found).toHaveLength(1);
      return found[0];
    };
  });

  const cognito = () => ({
    UserPoolArn: { 'Fn::GetAtt': [logicalId(s.stack, 'Auth/UserPool'), 'Arn'] },
    UserPoolClientId: { Ref: logicalId(s.stack, 'Auth/UserPool/AlbClient') },
    UserPoolDomain: { Ref: logicalId(s.stack, 'Auth/UserPool/Domain') },
    Scope: 'openid email profile',
  });

  test('five rules at distinct priorities: internal paths, preflight, logout, bearer, API', () => {
    expect(rules.map((r) => r.Priority).sort((a, b) => a - b)).toEqual([
      LISTENER_RULES.InternalPaths,
      LISTENER_RULES.ApiPreflight,
      LISTENER_RULES.Logout,
      LISTENER_RULES.Bearer,
      LISTENER_RULES.Api,
    ]);
    // Preflight and bearer before the API's session rule, so neither ever meets its 401.
    expect(LISTENER_RULES.ApiPreflight).toBeLessThan(LISTENER_RULES.Api);
    expect(LISTENER_RULES.Bearer).toBeLessThan(LISTENER_RULES.Api);
  });

  test('the default action stays the browser login: authenticate-cognito (authenticate), then forward', () => {
    expect(defaultActions).toEqual([
      { Order: 1, Type: 'authenticate-cognito', AuthenticateCognitoConfig: { ...cognito(), OnUnauthenticatedRequest: 'authenticate', SessionTimeout: '28800' } },
      { Order: 2, Type: 'forward', TargetGroupArn: proxyTargets },
    ]);
  });

  test('OPTIONS on /api/* is forwarded with no authentication', () => {
    const rule = byPriority(LISTENER_RULES.ApiPreflight);
    expect(rule.Conditions).toEqual([
      { Field: 'http-request-method', HttpRequestMethodConfig: { Values: ['OPTIONS'] } },
      { Field: 'path-pattern', PathPatternConfig: { Values: [API_PATH_PATTERN] } },
    ]);
    expect(rule.Actions).toEqual([{ Type: 'forward', TargetGroupArn: proxyTargets }]);
  });

  test('/api/* is authenticate-cognito with deny (401 without a session, the session cookie passes), then forward', () => {
    const rule = byPriority(LISTENER_RULES.Api);
    expect(rule.Conditions).toEqual([{ Field: 'path-pattern', PathPatternConfig: { Values: [API_PATH_PATTERN] } }]);
    // The same pool, client and scopes as the login, so the login's session cookie is valid here.
    expect(rule.Actions).toEqual([
      { Order: 1, Type: 'authenticate-cognito', AuthenticateCognitoConfig: { ...cognito(), OnUnauthenticatedRequest: 'deny', SessionTimeout: 28800 } },
      { Order: 2, Type: 'forward', TargetGroupArn: proxyTargets },
    ]);
  });

  test("Authorization: Bearer is ALB's JWT validation against the pool (issuer, JWKS, access tokens only), then forward", () => {
    const rule = byPriority(LISTENER_RULES.Bearer);
    expect(rule.Conditions).toEqual([
      { Field: 'http-header', HttpHeaderConfig: { HttpHeaderName: 'Authorization', Values: ['Bearer *'] } },
    ]);
    const pool = { Ref: logicalId(s.stack, 'Auth/UserPool') };
    expect(rule.Actions).toEqual([
      {
        Order: 1,
        Type: 'jwt-validation',
        JwtValidationConfig: {
          Issuer: { 'Fn::Join': ['', ['https://cognito-idp.eu-west-1.amazonaws.com/', pool]] },
          JwksEndpoint: { 'Fn::Join': ['', ['https://cognito-idp.eu-west-1.amazonaws.com/', pool, '/.well-known/jwks.json']] },
          AdditionalClaims: [{ Format: 'single-string', Name: 'token_use', Values: ['access'] }],
        },
      },
      { Order: 2, Type: 'forward', TargetGroupArn: proxyTargets },
    ]);
  });

  test('/logout is forwarded to the backend with no authentication', () => {
    const rule = byPriority(LISTENER_RULES.Logout);
    expect(rule.Conditions).toEqual([{ Field: 'path-pattern', PathPatternConfig: { Values: [LOGOUT_PATH] } }]);
    expect(rule.Actions).toEqual([{ Type: 'forward', TargetGroupArn: proxyTargets }]);
  });

  test("every rule is within ALB's limits: at most 5 condition values and 5 wildcards, one condition of each single kind", () => {
    for (const rule of rules) {
      const values = rule.Conditions.flatMap((c) => Object.values(c).find((v) => typeof v === 'object').Values as string[]);
      expect({ priority: rule.Priority, values: values.length <= 5 }).toEqual({ priority: rule.Priority, values: true });
      const wildcards = values.join('').split('').filter((ch) => ch === '*' || ch === '?').length;
      expect({ priority: rule.Priority, wildcards: wildcards <= 5 }).toEqual({ priority: rule.Priority, wildcards: true });
      const single = rule.Conditions.map((c) => c.Field).filter((f) => f !== 'http-header' && f !== 'query-string');
      expect(new Set(single).size).toBe(single.length);
    }
  });

  test.each<[string, Request, string]>([
    ['a page: the login', { method: 'GET', path: '/' }, 'default'],
    ["ALB's own callback: the login action handles it", { method: 'GET', path: '/oauth2/idpresponse' }, 'default'],
    ['an API call without a session: 401', { method: 'GET', path: '/api/me' }, 'Api'],
    ['an API call with a session cookie: the same rule, which lets it pass', { method: 'PUT', path: '/api/notes/n1', headers: { Cookie: 'AWSELBAuthSessionCookie-0=x' } }, 'Api'],
    ['a CORS preflight (no cookie, no Authorization)', { method: 'OPTIONS', path: '/api/notes', headers: { Origin: 'https://app.example.com' } }, 'ApiPreflight'],
    ['a machine client', { method: 'GET', path: '/api/me', headers: { Authorization: 'Bearer a.b.c' } }, 'Bearer'],
    ['a bearer token in lower case', { method: 'POST', path: '/api/notes', headers: { authorization: 'bearer a.b.c' } }, 'Bearer'],
    ['Basic credentials are no bearer token', { method: 'GET', path: '/api/me', headers: { Authorization: 'Basic dTpw' } }, 'Api'],
    ['sign-out, no session needed', { method: 'GET', path: '/logout' }, 'Logout'],
    ['sign-out with a bearer token', { method: 'GET', path: '/logout', headers: { Authorization: 'Bearer a.b.c' } }, 'Logout'],
    ['/metrics, even with a token: the internal 404', { method: 'GET', path: '/metrics', headers: { Authorization: 'Bearer a.b.c' } }, 'InternalPaths'],
    ['/Api/me is no API path (ALB paths are case-sensitive): the login', { method: 'GET', path: '/Api/me' }, 'default'],
  ])('%s', (_name, req, expected) => {
    const selected = selectRule(rules, req);
    expect(selected === 'default' ? 'default' : selected.Priority).toBe(expected === 'default' ? 'default' : LISTENER_RULES[expected]);
  });
});

describe('Cognito: the resource server, the machine client, sign-out', () => {
  let s: Synthesized;

  beforeAll(() => {
    s = synth();
  });

  test('a resource server planb-api with read and write scopes', () => {
    s.template.hasResourceProperties('AWS::Cognito::UserPoolResourceServer', {
      Identifier: API_RESOURCE_SERVER,
      UserPoolId: { Ref: logicalId(s.stack, 'Auth/UserPool') },
      Scopes: Object.entries(API_SCOPES).map(([ScopeName, ScopeDescription]) => ({ ScopeName, ScopeDescription })),
    });
    expect(Object.keys(API_SCOPES)).toEqual(['read', 'write']);
  });

  test('the machine client: client credentials only, with a secret, granted both scopes, no user sign-in', () => {
    const client = s.template.toJSON().Resources[logicalId(s.stack, 'Auth/UserPool/MachineClient')].Properties;
    const server = { Ref: logicalId(s.stack, 'Auth/UserPool/ApiResourceServer') };
    expect(client).toMatchObject({
      GenerateSecret: true,
      AllowedOAuthFlows: ['client_credentials'],
      AllowedOAuthFlowsUserPoolClient: true,
      AllowedOAuthScopes: Object.keys(API_SCOPES).map((scope) => ({ 'Fn::Join': ['', [server, `/${scope}`]] })),
      ExplicitAuthFlows: ['ALLOW_REFRESH_TOKEN_AUTH'],
      AccessTokenValidity: 60,
    });
    expect(client.CallbackURLs).toBeUndefined();
  });

  test("ALB1's client registers the app's URL as its sign-out URL, the one the backend is given", () => {
    const url = { 'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [logicalId(s.stack, 'PublicAlb/Alb'), 'DNSName'] }, '/']] };
    const client = s.template.toJSON().Resources[logicalId(s.stack, 'Auth/UserPool/AlbClient')].Properties;
    expect(client.LogoutURLs).toEqual([url]);
    const env = s.template.toJSON().Resources[logicalId(s.stack, 'Backend/Task')].Properties.ContainerDefinitions[0].Environment;
    expect(env.find((e: { Name: string }) => e.Name === 'LOGOUT_REDIRECT_URL').Value).toEqual(url);
  });

  test('outputs: the machine client id and the token endpoint', () => {
    const outputs = s.template.toJSON().Outputs;
    expect(outputs.MachineClientId.Value).toEqual({ Ref: logicalId(s.stack, 'Auth/UserPool/MachineClient') });
    expect(outputs.TokenEndpoint.Value).toEqual({
      'Fn::Join': ['', ['https://', { Ref: logicalId(s.stack, 'Auth/UserPool/Domain') }, '.auth.eu-west-1.amazoncognito.com/oauth2/token']],
    });
  });

  test('with a custom domain, sign-out returns to it', () => {
    const custom = synth(CUSTOM_DOMAIN);
    custom.template.hasResourceProperties('AWS::Cognito::UserPoolClient', {
      CallbackURLs: ['https://api.example.com/oauth2/idpresponse'],
      LogoutURLs: ['https://api.example.com/'],
    });
    const env = custom.template.toJSON().Resources[logicalId(custom.stack, 'Backend/Task')].Properties.ContainerDefinitions[0].Environment;
    expect(env.find((e: { Name: string }) => e.Name === 'LOGOUT_REDIRECT_URL').Value).toBe('https://api.example.com/');
  });
});
