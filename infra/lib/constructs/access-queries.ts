import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/**
 * The top-level fields of the backend's access line: one JSON object per request, flattened by
 * tracing-subscriber. `message` is always "access"; `sub`, `kind` (user or machine), `client_id`
 * and `username` (absent for machines) only when the caller was verified; `refusal` (the error
 * code, e.g. token_expired) only when it was not. `route` is the route pattern
 * (/api/notes/{id}), never the path; `trace_id` is the Root of x-amzn-trace-id when present.
 */
export const ACCESS_LINE_FIELDS = [
  'message',
  'method',
  'route',
  'status',
  'duration_ms',
  'trace_id',
  'sub',
  'kind',
  'client_id',
  'username',
  'refusal',
] as const;

/** The filter every saved query starts with: the access lines only, not the backend's other lines. */
const ACCESS_LINES = 'message = "access"';

/** A saved Logs Insights query: its name (under the stack's folder) and what it runs. */
export interface AccessQuery {
  /** The construct id of its saved query. */
  readonly id: string;
  readonly name: string;
  readonly query: logs.QueryStringProps;
}

/**
 * The saved queries on the backend's log group, as infra/README.md names them. The time range is
 * the console's (Logs Insights saves none with a query): pick "today" for the first.
 */
export const ACCESS_QUERIES: readonly AccessQuery[] = [
  {
    id: 'WhoCalled',
    name: 'who called a route today',
    query: {
      filterStatements: [ACCESS_LINES, 'ispresent(sub)'],
      statsStatements: ['count(*) as requests, max(@timestamp) as last_call by route, method, sub, username, client_id'],
      sort: 'requests desc',
    },
  },
  {
    id: 'RefusalsByCode',
    name: 'refusals by code',
    query: {
      filterStatements: [ACCESS_LINES, 'ispresent(refusal)'],
      statsStatements: ['count(*) as refusals by refusal, route'],
      sort: 'refusals desc',
    },
  },
  {
    id: 'SlowestRoutes',
    name: 'the slowest routes',
    query: {
      filterStatements: [ACCESS_LINES],
      statsStatements: [
        'count(*) as requests, avg(duration_ms) as avg_ms, pct(duration_ms, 99) as p99_ms, max(duration_ms) as max_ms by route',
      ],
      sort: 'p99_ms desc',
    },
  },
];

/** Properties of {@link AccessQueries}. */
export interface AccessQueriesProps {
  /** The backend's log group, where its access lines land. */
  readonly logGroup: logs.ILogGroup;
  /** The folder the queries appear under in the console (the stack name: two stacks, two folders). */
  readonly folder: string;
}

/**
 * {@link ACCESS_QUERIES} as CloudWatch Logs Insights saved queries on the backend's log group:
 * who called what, what was refused and why, where the time went.
 */
export class AccessQueries extends Construct {
  /** The saved queries, in {@link ACCESS_QUERIES}' order. */
  public readonly definitions: logs.QueryDefinition[];

  constructor(scope: Construct, id: string, props: AccessQueriesProps) {
    super(scope, id);
    this.definitions = ACCESS_QUERIES.map(
      (q) =>
        new logs.QueryDefinition(this, q.id, {
          // A "/" makes the console show the queries in a folder.
          queryDefinitionName: `${props.folder}/${q.name}`,
          queryString: new logs.QueryString(q.query),
          logGroups: [props.logGroup],
        }),
    );
  }
}
