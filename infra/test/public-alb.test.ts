import { Match } from 'aws-cdk-lib/assertions';
import { CUSTOM_DOMAIN, logicalId, synth, Synthesized } from './helpers';

describe('ALB1 and Cognito', () => {
  let s: Synthesized;
  let alb1: string;

  beforeAll(() => {
    s = synth();
    alb1 = logicalId(s.stack, 'PublicAlb/Alb');
  });

  test('two load balancers: ALB1 internet-facing in the public subnets, ALB2 internal in the private ones', () => {
    s.template.resourceCountIs('AWS::ElasticLoadBalancingV2::LoadBalancer', 2);
    const lbs = s.template.toJSON().Resources;
    const alb2 = logicalId(s.stack, 'Backend/InternalAlb');
    expect(lbs[alb1].Properties.Scheme).toBe('internet-facing');
    expect(lbs[alb2].Properties.Scheme).toBe('internal');
    expect(JSON.stringify(lbs[alb1].Properties.Subnets)).toMatch(/publicSubnet/);
    expect(JSON.stringify(lbs[alb2].Properties.Subnets)).toMatch(/privateSubnet/);
  });

  test('ALB1 has a lower-case name, so its DNS name matches the callback Cognito compares exactly', () => {
    s.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', { Name: 'planb-alb1' });
  });

  test('both ALBs log access and drop invalid header fields', () => {
    const lbs = s.template.findResources('AWS::ElasticLoadBalancingV2::LoadBalancer');
    for (const lb of Object.values(lbs)) {
      expect(lb.Properties.LoadBalancerAttributes).toEqual(
        expect.arrayContaining([
          { Key: 'access_logs.s3.enabled', Value: 'true' },
          { Key: 'routing.http.drop_invalid_header_fields.enabled', Value: 'true' },
        ]),
      );
    }
  });

  test('HTTPS: authenticate-cognito first, then forward to the proxy fleet', () => {
    const proxyTargets = logicalId(s.stack, 'PublicAlb/ProxyTargets');
    s.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      LoadBalancerArn: { Ref: alb1 },
      Port: 443,
      Protocol: 'HTTPS',
      Certificates: [{ CertificateArn: s.app.node.tryGetContext('planb:certificateArn') }],
      DefaultActions: [
        {
          Order: 1,
          Type: 'authenticate-cognito',
          AuthenticateCognitoConfig: {
            UserPoolArn: { 'Fn::GetAtt': [logicalId(s.stack, 'Auth/UserPool'), 'Arn'] },
            UserPoolClientId: { Ref: logicalId(s.stack, 'Auth/UserPool/AlbClient') },
            UserPoolDomain: { Ref: logicalId(s.stack, 'Auth/UserPool/Domain') },
            OnUnauthenticatedRequest: 'authenticate',
            Scope: 'openid email profile',
          },
        },
        { Order: 2, Type: 'forward', TargetGroupArn: { Ref: proxyTargets } },
      ],
    });
  });

  test('the proxy target group checks /healthz on the proxy port and holds the Auto Scaling group', () => {
    const proxyTargets = logicalId(s.stack, 'PublicAlb/ProxyTargets');
    s.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      Port: 8080,
      Protocol: 'HTTP',
      TargetType: 'instance',
      HealthCheckPath: '/healthz',
    });
    s.template.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
      TargetGroupARNs: [{ Ref: proxyTargets }],
    });
  });

  test('the app client: secret, code grant, callback to ALB1 /oauth2/idpresponse', () => {
    s.template.hasResourceProperties('AWS::Cognito::UserPoolClient', {
      GenerateSecret: true,
      AllowedOAuthFlows: ['code'],
      AllowedOAuthFlowsUserPoolClient: true,
      AllowedOAuthScopes: Match.arrayWith(['openid', 'email']),
      SupportedIdentityProviders: ['COGNITO'],
      CallbackURLs: [
        { 'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [alb1, 'DNSName'] }, '/oauth2/idpresponse']] },
      ],
    });
  });

  test('the user pool: admin-created users, strong passwords, TOTP MFA required, threat protection', () => {
    s.template.hasResourceProperties('AWS::Cognito::UserPool', {
      AdminCreateUserConfig: { AllowAdminCreateUserOnly: true },
      MfaConfiguration: 'ON',
      EnabledMfas: ['SOFTWARE_TOKEN_MFA'],
      UserPoolTier: 'PLUS',
      UserPoolAddOns: { AdvancedSecurityMode: 'ENFORCED' },
      Policies: { PasswordPolicy: Match.objectLike({ MinimumLength: 12, RequireSymbols: true }) },
    });
  });

  test('the hosted-UI domain prefix is derived per stack: the stack name and its UUID', () => {
    const uuid = { 'Fn::Select': [2, { 'Fn::Split': ['/', { Ref: 'AWS::StackId' }] }] };
    s.template.hasResourceProperties('AWS::Cognito::UserPoolDomain', {
      Domain: { 'Fn::Join': ['-', ['planb', { 'Fn::Select': [0, { 'Fn::Split': ['-', uuid] }] }]] },
    });
    const other = synth({ 'planb:stackName': 'Cognito-AWS-Demo' });
    const domain = Object.values(other.template.findResources('AWS::Cognito::UserPoolDomain'))[0].Properties.Domain;
    // Cognito refuses prefixes containing its reserved words: they are dropped from the readable part.
    expect(domain['Fn::Join'][1][0]).toBe('demo');
  });

  test('a given prefix is used as is', () => {
    const given = synth({ 'planb:cognitoDomainPrefix': 'my-login' });
    given.template.hasResourceProperties('AWS::Cognito::UserPoolDomain', { Domain: 'my-login' });
  });

  test('outputs: ALB1 DNS name, URL, pool id, client id, SSM parameter name', () => {
    const outputs = s.template.toJSON().Outputs;
    expect(outputs.PublicAlbDnsName.Value).toEqual({ 'Fn::GetAtt': [alb1, 'DNSName'] });
    expect(outputs.UserPoolId.Value).toEqual({ Ref: logicalId(s.stack, 'Auth/UserPool') });
    expect(outputs.UserPoolClientId.Value).toEqual({ Ref: logicalId(s.stack, 'Auth/UserPool/AlbClient') });
    expect(outputs.SsmParameterName.Value).toEqual({ Ref: logicalId(s.stack, 'Backend/Alb2DnsName') });
    expect(outputs.Url).toBeDefined();
  });

  test('no lookups: synth needs no credentials and records no context lookups', () => {
    expect(s.app.synth().manifest.missing ?? []).toEqual([]);
    // The account is left to deploy time; the region comes from context.
    expect(s.stack.region).toBe('eu-west-1');
    expect(s.stack.resolve(s.stack.account)).toEqual({ Ref: 'AWS::AccountId' });
  });
});

describe('ALB1 with a custom domain', () => {
  let s: Synthesized;

  beforeAll(() => {
    s = synth(CUSTOM_DOMAIN);
  });

  test('a DNS-validated certificate in the given zone, and an alias record to ALB1', () => {
    s.template.hasResourceProperties('AWS::CertificateManager::Certificate', {
      DomainName: 'api.example.com',
      ValidationMethod: 'DNS',
      DomainValidationOptions: [{ DomainName: 'api.example.com', HostedZoneId: 'Z0000000000000EXAMPLE' }],
    });
    s.template.hasResourceProperties('AWS::Route53::RecordSet', {
      Name: 'api.example.com.',
      Type: 'A',
      HostedZoneId: 'Z0000000000000EXAMPLE',
    });
  });

  test('the callback and the URL use the domain', () => {
    s.template.hasResourceProperties('AWS::Cognito::UserPoolClient', {
      CallbackURLs: ['https://api.example.com/oauth2/idpresponse'],
    });
    expect(s.template.toJSON().Outputs.Url.Value).toBe('https://api.example.com/');
  });
});
