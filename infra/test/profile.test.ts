import { BLOCK_AND_COUNT_ONLY } from '../lib/constructs/web-acl';
import { egressOf, logicalId, proxyUserData, synth, Synthesized } from './helpers';

type Declaration = { metric_selectors: string[]; dimensions: string[][] };

/** The EMF declarations of the proxy agent (user data) and the backend sidecar (task environment). */
function declarations(s: Synthesized): { proxy: Declaration[]; backend: Declaration[] } {
  const of = (config: any): Declaration[] => config.logs.metrics_collected.prometheus.emf_processor.metric_declaration;
  const agentFile = /cat > \S*planb-agent\.json <<'PLANB_PROXY_EOF'\n([\s\S]*?)\nPLANB_PROXY_EOF/.exec(proxyUserData(s))![1];
  const proxy = of(JSON.parse(agentFile.replace(/"\{"Ref":"([^"]+)"\}"/g, '"$1"')));
  const containers = s.template.toJSON().Resources[logicalId(s.stack, 'Backend/Task')].Properties.ContainerDefinitions;
  const cw = containers.find((c: any) => c.Name === 'cloudwatch-agent').Environment.find((e: any) => e.Name === 'CW_CONFIG_CONTENT').Value;
  const text = (cw['Fn::Join'][1] as unknown[]).map((p) => (typeof p === 'string' ? p : 'log-group')).join('');
  return { proxy, backend: of(JSON.parse(text)) };
}

/** Every (metric, dimension names) pair published: what CloudWatch bills per dimension value. */
function published(decls: Declaration[]): string[] {
  return decls.flatMap((d) => d.metric_selectors.flatMap((m) => d.dimensions.map((dims) => `${m.replace(/[\^$]/g, '')}{${[...dims].sort().join(',')}}`)));
}

/** Every metric an alarm watches in the custom namespaces, as (metric, dimension names). */
function alarmed(s: Synthesized): string[] {
  const alarms = Object.values(s.template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
  return alarms
    .filter((a) => /^PlanB\//.test(a.Namespace ?? ''))
    .map((a) => `${a.MetricName}{${(a.Dimensions ?? []).map((d: any) => d.Name).sort().join(',')}}`);
}

describe.each([
  ['standard', {}],
  ['small', { 'planb:profile': 'small' }],
])('profile %s', (profile, overrides) => {
  let s: Synthesized;
  beforeAll(() => {
    s = synth(overrides);
  });

  test('every alarm watches a metric the agents publish', () => {
    const { proxy, backend } = declarations(s);
    const all = new Set([...published(proxy), ...published(backend)]);
    const watched = alarmed(s);
    expect(watched.length).toBeGreaterThan(5);
    expect(watched.filter((m) => !all.has(m))).toEqual([]);
  });

  test(`the proxy and the backend run at ${profile === 'small' ? 'one instance and one task' : 'two of each'}`, () => {
    const n = profile === 'small' ? '1' : '2';
    const asg = s.template.toJSON().Resources[logicalId(s.stack, 'ProxyFleet/Asg')];
    expect(asg.Properties.MinSize).toBe(n);
    expect(asg.CreationPolicy.ResourceSignal.Count).toBe(Number(n));
    s.template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: Number(n), ScalableDimension: 'ecs:service:DesiredCount' });
  });
});

describe('the small profile against the standard one', () => {
  let standard: Synthesized;
  let small: Synthesized;
  beforeAll(() => {
    standard = synth();
    small = synth({ 'planb:profile': 'small' });
  });

  test('standard CPU credits on the proxies instead of unlimited', () => {
    const credits = (s: Synthesized) =>
      s.template.toJSON().Resources[logicalId(s.stack, 'ProxyFleet/LaunchTemplate')].Properties.LaunchTemplateData.CreditSpecification;
    expect(credits(standard)).toEqual({ CpuCredits: 'unlimited' });
    expect(credits(small)).toEqual({ CpuCredits: 'standard' });
  });

  test('WAF logs only what it blocked or counted', () => {
    const filter = (s: Synthesized) => Object.values(s.template.findResources('AWS::WAFv2::LoggingConfiguration'))[0].Properties.LoggingFilter;
    expect(filter(standard)).toBeUndefined();
    expect(filter(small)).toEqual(BLOCK_AND_COUNT_ONLY);
    expect(BLOCK_AND_COUNT_ONLY.DefaultBehavior).toBe('DROP');
    expect(BLOCK_AND_COUNT_ONLY.Filters.flatMap((f) => f.Conditions.map((c) => c.ActionCondition.Action)).sort()).toEqual(['BLOCK', 'COUNT']);
  });

  test('fewer metric dimensions: no per-route, per-operation, reuse or close-reason split', () => {
    const full = declarations(standard);
    const reduced = declarations(small);
    const all = (d: { proxy: Declaration[]; backend: Declaration[] }) => [...published(d.proxy), ...published(d.backend)];
    expect(all(reduced).length).toBeLessThan(all(full).length);
    for (const split of ['route', 'op', 'reused', 'reason}']) {
      expect(all(full).some((m) => m.includes(split))).toBe(true);
    }
    const reducedText = all(reduced).join(' ');
    expect(reducedText).not.toMatch(/route|\bop\b|,op|reused|keepalive_closes_total\{job,reason\}/);
    // What the alarms read stays: verification failures by reason, SSM refresh failures.
    expect(all(reduced)).toEqual(expect.arrayContaining(['planb_verification_failures_total{job,reason}', 'planb_proxy_ssm_refresh_failures_total{job}']));
  });

  test('the proxies reach AWS through interface endpoints, or through NAT on 443 in the small profile', () => {
    const endpoints = (s: Synthesized) =>
      Object.values(s.template.findResources('AWS::EC2::VPCEndpoint')).filter((e) => e.Properties.VpcEndpointType === 'Interface').length;
    const proxyEgress = (s: Synthesized) => egressOf(s.template, logicalId(s.stack, 'ProxyFleet/SecurityGroup'));
    expect(endpoints(standard)).toBe(6);
    expect(proxyEgress(standard)).not.toContainEqual({ ports: 'tcp/443-443', peer: '0.0.0.0/0' });
    expect(endpoints(small)).toBe(0);
    expect(proxyEgress(small)).toContainEqual({ ports: 'tcp/443-443', peer: '0.0.0.0/0' });
    // Port 80 still goes to ALB2 alone.
    expect(proxyEgress(small).filter((r) => r.ports === 'tcp/80-80')).toEqual(proxyEgress(standard).filter((r) => r.ports === 'tcp/80-80'));
  });

  test('the dashboard graphs only dimensions the small profile publishes', () => {
    const body = JSON.stringify(small.template.toJSON().Resources[logicalId(small.stack, 'Monitoring/Dashboard')].Properties.DashboardBody);
    expect(body).not.toContain('route');
    expect(body).not.toContain('reused');
  });
});
