import { Aws, Duration, Fn, Stack, Validations } from 'aws-cdk-lib';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import { Construct } from 'constructs';

/** Properties of {@link Auth}. */
export interface AuthProps {
  /**
   * Hosted-UI domain prefix: `<prefix>.auth.<region>.amazoncognito.com`. Undefined: derived from
   * the stack (see {@link derivedDomainPrefix}), unique per stack.
   */
  readonly domainPrefix: string | undefined;
  /** The stack's name: the readable part of a derived prefix. */
  readonly stackName: string;
  /** ALB1's OIDC callback, `https://<ALB1 host>/oauth2/idpresponse`. */
  readonly callbackUrl: string;
  /**
   * Where Cognito's `/logout` may send the browser back to: the app's public URL, which the
   * backend's `GET /logout` passes as `logout_uri` (Cognito accepts only registered URLs).
   */
  readonly logoutUrl: string;
  /** 'required' makes every user enrol a TOTP authenticator at first sign-in. */
  readonly mfa: 'required' | 'optional';
}

/**
 * A domain prefix unique to this stack: `<stack name>-<first group of the stack's UUID>`, e.g.
 * `planb-3f2a9c10`. Prefixes are global per region, so a fixed default collides with the first
 * other user of it; the stack id's UUID is random and fixed for the stack's life. The readable part
 * is the stack name in Cognito's alphabet, without the words Cognito reserves.
 */
export function derivedDomainPrefix(stackName: string): string {
  const readable =
    stackName
      .toLowerCase()
      .replace(/aws|amazon|cognito/g, '')
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40)
      .replace(/-+$/, '') || 'planb';
  // arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/UUID -> the UUID's first 8 hex digits.
  const uuid = Fn.select(2, Fn.split('/', Aws.STACK_ID));
  return Fn.join('-', [readable, Fn.select(0, Fn.split('-', uuid))]);
}

/** The resource server's identifier: the prefix of its scopes (`planb-api/read`). */
export const API_RESOURCE_SERVER = 'planb-api';

/** The scopes the resource server defines, each granted to the machine client. */
export const API_SCOPES = {
  read: 'read notes and identity',
  write: 'create, change and delete notes',
} as const;

/**
 * Cognito: the user pool, its hosted-UI domain, the app client ALB1 logs users in with
 * (confidential client with a secret, authorization-code grant, callback to ALB1), and a machine
 * client (client-credentials grant) for callers without a browser, with the resource server
 * whose scopes it is granted.
 *
 * Users are created by an administrator (no self sign-up): this fronts a private API.
 */
export class Auth extends Construct {
  /** The pool whose access tokens the backend verifies. */
  public readonly userPool: cognito.UserPool;
  /** ALB1's client: its id is the one the backend accepts in `client_id`. */
  public readonly userPoolClient: cognito.UserPoolClient;
  /** The hosted-UI domain ALB1 redirects to. */
  public readonly userPoolDomain: cognito.UserPoolDomain;
  /** The resource server `planb-api` and its scopes (see {@link API_SCOPES}). */
  public readonly apiResourceServer: cognito.UserPoolResourceServer;
  /**
   * The machine client: client-credentials grant with a secret, so a job or another service gets
   * an access token (`sub` = this client's id) and calls the API with `Authorization: Bearer`.
   */
  public readonly machineClient: cognito.UserPoolClient;
  /** Every client whose access tokens the backend accepts (its `COGNITO_APP_CLIENT_ID` list). */
  public readonly allowedClients: readonly cognito.IUserPoolClient[];
  /** The `iss` of the pool's tokens: `https://cognito-idp.<region>.amazonaws.com/<pool id>`. */
  public readonly issuer: string;
  /** The pool's signing keys: `<issuer>/.well-known/jwks.json`. */
  public readonly jwksUrl: string;
  /** The hosted UI's base URL, `https://<prefix>.auth.<region>.amazoncognito.com`. */
  public readonly domainUrl: string;

  constructor(scope: Construct, id: string, props: AuthProps) {
    super(scope, id);

    this.userPool = new cognito.UserPool(this, 'UserPool', {
      selfSignUpEnabled: false,
      signInAliases: { email: true },
      autoVerify: { email: true },
      standardAttributes: { email: { required: true, mutable: true } },
      signInCaseSensitive: false,
      passwordPolicy: {
        minLength: 12,
        requireLowercase: true,
        requireUppercase: true,
        requireDigits: true,
        requireSymbols: true,
        tempPasswordValidity: Duration.days(3),
      },
      // TOTP only: SMS would need an SNS role, spend limits and a sandbox exit for little gain.
      mfa: props.mfa === 'required' ? cognito.Mfa.REQUIRED : cognito.Mfa.OPTIONAL,
      mfaSecondFactor: { otp: true, sms: false },
      accountRecovery: cognito.AccountRecovery.EMAIL_ONLY,
      // Plus tier: threat protection blocks sign-ins with leaked or risky credentials, which matters
      // for a login page on the open internet. Priced per monthly active user.
      featurePlan: cognito.FeaturePlan.PLUS,
      standardThreatProtectionMode: cognito.StandardThreatProtectionMode.FULL_FUNCTION,
    });
    if (props.mfa === 'optional') {
      Validations.of(this.userPool).acknowledge({
        id: 'AwsSolutions-COG2',
        reason: 'MFA was made optional on purpose with -c planb:mfa=optional (the default, required, passes this rule).',
      });
    }

    this.userPoolDomain = this.userPool.addDomain('Domain', {
      cognitoDomain: { domainPrefix: props.domainPrefix ?? derivedDomainPrefix(props.stackName) },
    });

    this.userPoolClient = this.userPool.addClient('AlbClient', {
      // ALB's authenticate-cognito is a confidential client: it redeems the code with the secret.
      generateSecret: true,
      oAuth: {
        flows: { authorizationCodeGrant: true },
        scopes: [cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE],
        callbackUrls: [props.callbackUrl],
        logoutUrls: [props.logoutUrl],
      },
      // SRP lets operators fetch tokens from the CLI to call the API without a browser.
      authFlows: { userSrp: true },
      supportedIdentityProviders: [cognito.UserPoolClientIdentityProvider.COGNITO],
      preventUserExistenceErrors: true,
      accessTokenValidity: Duration.hours(1),
      idTokenValidity: Duration.hours(1),
      refreshTokenValidity: Duration.hours(12),
    });

    const scopes = Object.entries(API_SCOPES).map(
      ([scopeName, scopeDescription]) => new cognito.ResourceServerScope({ scopeName, scopeDescription }),
    );
    this.apiResourceServer = this.userPool.addResourceServer('ApiResourceServer', {
      identifier: API_RESOURCE_SERVER,
      userPoolResourceServerName: 'planb API',
      scopes,
    });
    this.machineClient = this.userPool.addClient('MachineClient', {
      // Cognito issues client-credentials tokens only to a confidential client.
      generateSecret: true,
      oAuth: {
        flows: { clientCredentials: true },
        scopes: scopes.map((scope) => cognito.OAuthScope.resourceServer(this.apiResourceServer, scope)),
      },
      // No user sign-in flow: this client never acts for a user (CDK keeps ALLOW_REFRESH_TOKEN_AUTH,
      // which Cognito requires and which a client-credentials client never uses).
      authFlows: { userSrp: false },
      supportedIdentityProviders: [cognito.UserPoolClientIdentityProvider.COGNITO],
      preventUserExistenceErrors: true,
      accessTokenValidity: Duration.hours(1),
    });
    this.allowedClients = [this.userPoolClient, this.machineClient];

    const region = Stack.of(this).region;
    this.issuer = `https://cognito-idp.${region}.amazonaws.com/${this.userPool.userPoolId}`;
    this.jwksUrl = `${this.issuer}/.well-known/jwks.json`;
    this.domainUrl = this.userPoolDomain.baseUrl();
  }
}
