import { egressOf, ingressOf, logicalId, synth, Synthesized } from './helpers';

/**
 * DESIGN.md's chain, each hop open only to the one before it:
 * internet -443/80-> ALB1 -8080-> proxy -80-> ALB2 -8080-> tasks.
 */
describe('security groups', () => {
  let s: Synthesized;
  let alb1: string, proxy: string, alb2: string, tasks: string, endpoints: string;

  beforeAll(() => {
    s = synth();
    alb1 = logicalId(s.stack, 'PublicAlb/SecurityGroup');
    proxy = logicalId(s.stack, 'ProxyFleet/SecurityGroup');
    alb2 = logicalId(s.stack, 'Backend/LoadBalancerSecurityGroup');
    tasks = logicalId(s.stack, 'Backend/TaskSecurityGroup');
    endpoints = logicalId(s.stack, 'AwsEndpoints/SecurityGroup');
  });

  test('there are exactly these five security groups (plus none made implicitly)', () => {
    expect(Object.keys(s.template.findResources('AWS::EC2::SecurityGroup')).sort()).toEqual(
      [alb1, proxy, alb2, tasks, endpoints].sort(),
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
    // Proxies: ALB2, the AWS API endpoints, and S3 by its prefix list; nothing on the internet.
    const s3PrefixList = `prefix-list:${JSON.stringify({ 'Fn::GetAtt': [logicalId(s.stack, 'AwsEndpoints/S3PrefixList/Resource/Default'), 'PrefixLists.0.PrefixListId'] })}`;
    expect(egressOf(s.template, proxy)).toEqual(
      [
        { ports: 'tcp/443-443', peer: `sg:${endpoints}` },
        { ports: 'tcp/443-443', peer: s3PrefixList },
        { ports: 'tcp/80-80', peer: `sg:${alb2}` },
      ].sort((a, b) => `${a.ports}${a.peer}`.localeCompare(`${b.ports}${b.peer}`)),
    );
    // ALB2: the tasks and nothing else.
    expect(egressOf(s.template, alb2)).toEqual([{ ports: 'tcp/8080-8080', peer: `sg:${tasks}` }]);
    // Tasks: HTTPS via NAT for the JWKS, ALB keys, ECR and logs.
    expect(egressOf(s.template, tasks)).toEqual([{ ports: 'tcp/443-443', peer: '0.0.0.0/0' }]);
  });

  test('the AWS API endpoints the proxies use sit behind one group open to the VPC on 443 only', () => {
    const endpointsOf = s.template.findResources('AWS::EC2::VPCEndpoint', { Properties: { VpcEndpointType: 'Interface' } });
    const services = Object.values(endpointsOf).map((e) => JSON.stringify(e.Properties.ServiceName));
    for (const service of ['ssm', 'ssmmessages', 'ec2messages', 'logs', 'elasticloadbalancing', 'cloudformation']) {
      expect(services.filter((n) => n.includes(`.${service}"`) || n.endsWith(`.${service}`))).toHaveLength(1);
    }
    for (const e of Object.values(endpointsOf)) {
      expect(e.Properties.PrivateDnsEnabled).toBe(true);
      expect(e.Properties.SecurityGroupIds).toEqual([{ 'Fn::GetAtt': [endpoints, 'GroupId'] }]);
    }
    const vpcCidr = s.template.toJSON().Resources[endpoints].Properties.SecurityGroupIngress[0].CidrIp;
    expect(vpcCidr).toEqual({ 'Fn::GetAtt': [logicalId(s.stack, 'Network/Vpc'), 'CidrBlock'] });
    expect(s.template.toJSON().Resources[endpoints].Properties.SecurityGroupIngress).toHaveLength(1);
    expect(s.template.toJSON().Resources[endpoints].Properties.SecurityGroupIngress[0]).toMatchObject({ IpProtocol: 'tcp', FromPort: 443, ToPort: 443 });
    // The S3 prefix list is looked up by the region's name, at deploy time.
    const lookup = JSON.stringify(s.template.toJSON().Resources[logicalId(s.stack, 'AwsEndpoints/S3PrefixList/Resource/Default')].Properties);
    expect(lookup).toContain('describeManagedPrefixLists');
    expect(lookup).toContain('prefix-list-name');
    expect(lookup).toContain('com.amazonaws.');
    expect(lookup).toContain('.s3');
  });

  test('no security group opens SSH', () => {
    for (const sg of [alb1, proxy, alb2, tasks, endpoints]) {
      expect(ingressOf(s.template, sg).map((r) => r.ports)).not.toContain('tcp/22-22');
    }
  });
});
