import { egressOf, ingressOf, logicalId, synth, Synthesized } from './helpers';

/**
 * DESIGN.md's chain, each hop open only to the one before it:
 * internet -443/80-> ALB1 -8080-> proxy -80-> ALB2 -8080-> tasks.
 */
describe('security groups', () => {
  let s: Synthesized;
  let alb1: string, proxy: string, alb2: string, tasks: string;

  beforeAll(() => {
    s = synth();
    alb1 = logicalId(s.stack, 'PublicAlb/SecurityGroup');
    proxy = logicalId(s.stack, 'ProxyFleet/SecurityGroup');
    alb2 = logicalId(s.stack, 'Backend/LoadBalancerSecurityGroup');
    tasks = logicalId(s.stack, 'Backend/TaskSecurityGroup');
  });

  test('there are exactly these four security groups (plus none made implicitly)', () => {
    expect(Object.keys(s.template.findResources('AWS::EC2::SecurityGroup')).sort()).toEqual(
      [alb1, proxy, alb2, tasks].sort(),
    );
  });

  test('ALB1 admits the internet on 443, and on 80 for the redirect only', () => {
    expect(ingressOf(s.template, alb1)).toEqual([
      { ports: 'tcp/443-443', peer: '0.0.0.0/0' },
      { ports: 'tcp/80-80', peer: '0.0.0.0/0' },
    ]);
    // Port 80 has no forwarding path: its listener only redirects.
    s.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 80,
      DefaultActions: [{ Type: 'redirect', RedirectConfig: { Protocol: 'HTTPS', Port: '443', StatusCode: 'HTTP_301' } }],
    });
  });

  test('the proxies admit ALB1 only, on the proxy port', () => {
    expect(ingressOf(s.template, proxy)).toEqual([{ ports: 'tcp/8080-8080', peer: `sg:${alb1}` }]);
  });

  test('ALB2 admits the proxies only, on 80', () => {
    expect(ingressOf(s.template, alb2)).toEqual([{ ports: 'tcp/80-80', peer: `sg:${proxy}` }]);
  });

  test('the backend tasks admit ALB2 only, on 8080', () => {
    expect(ingressOf(s.template, tasks)).toEqual([{ ports: 'tcp/8080-8080', peer: `sg:${alb2}` }]);
  });

  test('egress is as narrow: each hop reaches the next, plus HTTPS where AWS endpoints are needed', () => {
    // ALB1: the proxies, and HTTPS to Cognito's token endpoint for the login.
    expect(egressOf(s.template, alb1)).toEqual([
      { ports: 'tcp/443-443', peer: '0.0.0.0/0' },
      { ports: 'tcp/8080-8080', peer: `sg:${proxy}` },
    ]);
    // Proxies: ALB2, and HTTPS to SSM, S3 and Session Manager.
    expect(egressOf(s.template, proxy)).toEqual([
      { ports: 'tcp/443-443', peer: '0.0.0.0/0' },
      { ports: 'tcp/80-80', peer: `sg:${alb2}` },
    ]);
    // ALB2: the tasks and nothing else.
    expect(egressOf(s.template, alb2)).toEqual([{ ports: 'tcp/8080-8080', peer: `sg:${tasks}` }]);
    // Tasks: HTTPS via NAT for the JWKS, ALB keys, ECR and logs.
    expect(egressOf(s.template, tasks)).toEqual([{ ports: 'tcp/443-443', peer: '0.0.0.0/0' }]);
  });

  test('no security group opens SSH', () => {
    for (const sg of [alb1, proxy, alb2, tasks]) {
      expect(ingressOf(s.template, sg).map((r) => r.ports)).not.toContain('tcp/22-22');
    }
  });
});
