/**
 * The platform API of an environment: a REST API (API Gateway) with AWS_IAM authorization on every
 * method, the API Lambda (`functions/api/index.ts`), access logs and throttling, and the two managed
 * policies teams attach to their IAM roles: members and release managers.
 *
 * Authorization happens in IAM. API Gateway checks each request's SigV4 signature and whether the
 * signer's policies allow `execute-api:Invoke` on `arn:aws:execute-api:<region>:<account>:<api>/<stage>/<METHOD>/<path>`
 * before the Lambda runs. Production promotion is its own resource path
 * (`POST /models/{model}/versions/{version}/production`), so the members' policy simply leaves it
 * out, and denies the protected aliases' paths.
 */
import { Arn, ArnFormat, CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import type { Construct } from 'constructs';
import { DEFAULT_PROTECTED_ALIASES } from '../lib/api/caller.ts';
import { API_ROUTES } from '../lib/api/routes.ts';
import { DASHBOARD_PATHS } from '../lib/api/static-dashboard.ts';
import { tableDefinitions, tableNamesFor } from '../lib/metadata/dynamodb/table-definitions.ts';
import { DEPLOYED_ALIAS } from '../lib/orchestrators/deployed-pipelines.ts';
import { acknowledgeRule, acknowledgeWildcardResource } from './nag.ts';
import { apiUrlParameterName, PROMOTION_ROUTES, runnerRoleName, TABLE_DATA_ACTIONS } from './runner-stack.ts';

/** Props of {@link ApiStack}. */
export interface ApiStackProps extends StackProps {
  /** The Stackline stack the API serves (`STACKLINE_STACK`). */
  stacklineStack: string;
  bucketName: string;
  artifactPrefix: string;
  encryptionKey?: kms.IKey;
  tablePrefix: string;
  /** A directory holding the API bundle's `index.mjs` and the dashboard's files (`bundleApiLambda`). */
  codeDirectory: string;
  /** ARN prefixes of release managers' principals (`STACKLINE_RELEASE_MANAGER_ARNS`): who may `force`. */
  releaseManagerArns?: string[];
  /**
   * The environment's deployed pipelines, by name, with their definition hash (`pipelineDefinitionHash`):
   * `POST /runs` starts their state machines' `live` alias and checks callers' hashes against these.
   */
  pipelines?: Readonly<Record<string, string>>;
  /** The state machines are `<stateMachinePrefix><pipeline>`. Default `<tablePrefix>-`. */
  stateMachinePrefix?: string;
  /** Pipelines whose steps may promote to production through the API (`STACKLINE_PROMOTERS`). */
  promoters?: readonly string[];
  /**
   * The step runner's IAM role names: requests they sign act for the run they name (`x-stackline-run`).
   * Default `[<tablePrefix>-step-runner]` (the runner stack's role).
   */
  runnerRoleNames?: readonly string[];
  /** API Gateway stage name. Default `api`. */
  stageName?: string;
  /** Steady-state requests per second and burst. Default 50 / 100. */
  throttle?: { rateLimit: number; burstLimit: number };
}

/** `/models/{model}/aliases/{alias}` → `/models/*\/aliases/*`: the ARN form of a route. */
export function arnPath(path: string): string {
  return path.replace(/\{[^}]+\}/g, '*');
}

export class ApiStack extends Stack {
  readonly api: apigateway.RestApi;
  readonly function: lambda.Function;
  readonly membersPolicy: iam.ManagedPolicy;
  readonly releaseManagersPolicy: iam.ManagedPolicy;
  readonly stageName: string;

  constructor(scope: Construct, id: string, props: ApiStackProps) {
    super(scope, id, props);
    const functionName = `${props.tablePrefix}-api`;
    const stageName = props.stageName ?? 'api';
    const artifactPrefix = props.artifactPrefix.replace(/^\/+|\/+$/g, '');
    const bucketArn = Arn.format({ service: 's3', region: '', account: '', resource: props.bucketName }, this);
    const storeObjects = `${bucketArn}/${artifactPrefix ? `${artifactPrefix}/` : ''}*`;
    const tableArns = Object.values(tableDefinitions(tableNamesFor(props.tablePrefix))).flatMap((definition) => {
      const tableArn = Arn.format(
        { service: 'dynamodb', resource: 'table', resourceName: definition.TableName! },
        this,
      );
      return [tableArn, ...(definition.GlobalSecondaryIndexes ?? []).map((i) => `${tableArn}/index/${i.IndexName}`)];
    });

    const logGroup = new logs.LogGroup(this, 'ApiFunctionLogs', {
      logGroupName: `/aws/lambda/${functionName}`,
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const role = new iam.Role(this, 'ApiFunctionRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Stackline API (${props.stacklineStack})`,
    });
    logGroup.grantWrite(role);
    role.addToPolicy(new iam.PolicyStatement({ actions: TABLE_DATA_ACTIONS, resources: tableArns }));
    // Presigned download URLs act with the signer's permissions: read-only on the store's keys.
    role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [storeObjects] }));
    if (props.encryptionKey) {
      role.addToPolicy(new iam.PolicyStatement({ actions: ['kms:Decrypt'], resources: [props.encryptionKey.keyArn] }));
    }
    // POST /runs: start the deployed pipelines' live aliases, and nothing else of Step Functions.
    const stateMachinePrefix = props.stateMachinePrefix ?? `${props.tablePrefix}-`;
    const stateMachineArnPrefix = Arn.format(
      {
        service: 'states',
        resource: 'stateMachine',
        resourceName: stateMachinePrefix,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      },
      this,
    );
    const pipelines = props.pipelines ?? {};
    const aliasArns = Object.keys(pipelines)
      .sort()
      .map((name) => `${stateMachineArnPrefix}${name}:${DEPLOYED_ALIAS}`);
    if (aliasArns.length > 0) {
      role.addToPolicy(new iam.PolicyStatement({ actions: ['states:StartExecution'], resources: aliasArns }));
    }
    const runnerRoleNames = props.runnerRoleNames ?? [runnerRoleName(props.tablePrefix)];
    const runnerRoleArns = runnerRoleNames.map((name) =>
      Arn.format({ service: 'sts', region: '', resource: 'assumed-role', resourceName: `${name}/` }, this),
    );
    acknowledgeWildcardResource(
      role,
      storeObjects,
      'Artifact blobs are content-addressed keys under the store prefix.',
    );

    this.function = new lambda.Function(this, 'ApiFunction', {
      functionName,
      description: `Stackline API for stack ${props.stacklineStack}`,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(props.codeDirectory),
      memorySize: 512,
      timeout: Duration.seconds(29),
      role,
      logGroup,
      environment: {
        STACKLINE_STACK: props.stacklineStack,
        STACKLINE_ARTIFACT_BUCKET: props.bucketName,
        STACKLINE_ARTIFACT_PREFIX: artifactPrefix,
        STACKLINE_TABLE_PREFIX: props.tablePrefix,
        STACKLINE_RELEASE_MANAGER_ARNS: (props.releaseManagerArns ?? []).join(','),
        STACKLINE_PROMOTERS: (props.promoters ?? []).join(','),
        STACKLINE_RUNNER_ROLE_ARNS: runnerRoleArns.join(','),
        STACKLINE_STATE_MACHINE_ARN_PREFIX: stateMachineArnPrefix,
        STACKLINE_DEPLOYED_PIPELINES: JSON.stringify(pipelines),
        POWERTOOLS_SERVICE_NAME: 'stackline-api',
      },
    });
    acknowledgeRule(
      this.function,
      'L1',
      'Node.js 22 on purpose: the bundle targets Node 20+; move to 24 after testing there.',
    );

    const accessLogs = new logs.LogGroup(this, 'ApiAccessLogs', {
      retention: logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const throttle = props.throttle ?? { rateLimit: 50, burstLimit: 100 };
    this.api = new apigateway.RestApi(this, 'Api', {
      restApiName: `${props.tablePrefix}-api`,
      description: `Stackline API for stack ${props.stacklineStack}`,
      endpointTypes: [apigateway.EndpointType.REGIONAL],
      cloudWatchRole: false,
      defaultMethodOptions: { authorizationType: apigateway.AuthorizationType.IAM },
      deployOptions: {
        stageName,
        accessLogDestination: new apigateway.LogGroupLogDestination(accessLogs),
        accessLogFormat: apigateway.AccessLogFormat.jsonWithStandardFields({
          caller: true,
          user: true,
          httpMethod: true,
          ip: true,
          protocol: true,
          requestTime: true,
          resourcePath: true,
          responseLength: true,
          status: true,
        }),
        throttlingRateLimit: throttle.rateLimit,
        throttlingBurstLimit: throttle.burstLimit,
      },
    });
    const integration = new apigateway.LambdaIntegration(this.function);
    // One API Gateway resource per route, so unknown paths never reach the function.
    const resourceFor = (path: string) =>
      path
        .split('/')
        .filter(Boolean)
        .reduce<apigateway.IResource>(
          (parent, part) => parent.getResource(part) ?? parent.addResource(part),
          this.api.root,
        );
    for (const route of API_ROUTES) resourceFor(route.path).addMethod(route.method.toUpperCase(), integration);
    resourceFor('/openapi.json').addMethod('GET', integration);
    // The dashboard's page and assets, from the function's code asset, under the same AWS_IAM.
    for (const path of DASHBOARD_PATHS) resourceFor(path).addMethod('GET', integration);

    acknowledgeRule(
      this.api,
      'APIG2',
      'Requests are validated by the Lambda against the same zod schemas the OpenAPI document is generated from.',
    );
    acknowledgeRule(this.api, 'APIG3', 'WAF is a per-account choice; the API is IAM-authorized and throttled.');
    acknowledgeRule(
      this.api,
      'APIG6',
      'Execution logging needs the account-wide API Gateway CloudWatch role; access logs are on.',
    );
    acknowledgeRule(this.api, 'COG4', 'AWS_IAM (SigV4) authorization on every method instead of Cognito.');

    const invoke = (method: string, path: string) => this.api.arnForExecuteApi(method, path, stageName);
    const memberWrites = API_ROUTES.filter((r) => r.writes && !r.releaseManagerOnly).map((r) =>
      invoke(r.method.toUpperCase(), arnPath(r.path)),
    );
    const protectedAliasPaths = DEFAULT_PROTECTED_ALIASES.flatMap((alias) =>
      ['PUT', 'DELETE'].map((method) => invoke(method, `/models/*/aliases/${alias}`)),
    );
    this.membersPolicy = new iam.ManagedPolicy(this, 'MembersPolicy', {
      managedPolicyName: `${props.tablePrefix}-api-members`,
      description: `Stackline ${props.stacklineStack} API: read everything, promote to staging/archived, set unprotected aliases`,
      statements: [
        new iam.PolicyStatement({
          sid: 'ReadAndMemberWrites',
          actions: ['execute-api:Invoke'],
          resources: [invoke('GET', '/*'), ...memberWrites],
        }),
        new iam.PolicyStatement({
          sid: 'ProtectedAliases',
          effect: iam.Effect.DENY,
          actions: ['execute-api:Invoke'],
          resources: protectedAliasPaths,
        }),
      ],
    });
    this.releaseManagersPolicy = new iam.ManagedPolicy(this, 'ReleaseManagersPolicy', {
      managedPolicyName: `${props.tablePrefix}-api-release-managers`,
      description: `Stackline ${props.stacklineStack} API: everything members may, plus production promotion and protected aliases`,
      statements: [
        new iam.PolicyStatement({
          sid: 'EveryRoute',
          actions: ['execute-api:Invoke'],
          resources: [invoke('*', '/*')],
        }),
      ],
    });
    const routeArns: Array<[iam.ManagedPolicy, string[]]> = [
      [this.membersPolicy, [invoke('GET', '/*'), ...memberWrites, ...protectedAliasPaths]],
      [this.releaseManagersPolicy, [invoke('*', '/*')]],
    ];
    for (const [policy, arns] of routeArns) {
      for (const resource of arns) {
        acknowledgeWildcardResource(policy, resource, 'execute-api ARNs name routes; * stands for path parameters.');
      }
    }

    this.stageName = stageName;

    // Promotions from step code: the runner roles may invoke exactly the two promotion routes, and
    // find this API's URL in SSM. Granted here (the roles by name), so the runner stack does not
    // depend on the API stack and deploys without it.
    const promotionRoutes = PROMOTION_ROUTES.map((path) => invoke('POST', path));
    const runnerPromotions = new iam.Policy(this, 'RunnerPromotions', {
      roles: runnerRoleNames.map((name, i) => iam.Role.fromRoleName(this, `RunnerRole${i}`, name)),
      statements: [new iam.PolicyStatement({ actions: ['execute-api:Invoke'], resources: promotionRoutes })],
    });
    for (const route of promotionRoutes) {
      acknowledgeWildcardResource(
        runnerPromotions,
        route,
        'execute-api ARNs name routes; * stands for path parameters.',
      );
    }
    new ssm.StringParameter(this, 'ApiUrlParameter', {
      parameterName: apiUrlParameterName(props.tablePrefix),
      stringValue: this.api.url,
      description: `Stackline ${props.stacklineStack} API URL, for the step runner's promotions`,
    });
    new CfnOutput(this, 'ApiUrl', { value: this.api.url, description: 'Stackline API base URL' });
    new CfnOutput(this, 'MembersPolicyArn', { value: this.membersPolicy.managedPolicyArn });
    new CfnOutput(this, 'ReleaseManagersPolicyArn', { value: this.releaseManagersPolicy.managedPolicyArn });
  }
}
