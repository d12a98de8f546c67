/**
 * ALB1's idle timeout and the proxy's downstream keep-alive, from one number.
 *
 * ALB1 reuses its connections to the proxies. If the proxy closed an idle one first, ALB1 could
 * send the next request into a connection being torn down and answer 502. So the proxy must keep
 * idle connections open longer than ALB1 does (AWS's guidance for any ALB target): ALB1 closes
 * first, always. infra writes both values, the idle timeout on ALB1 and `downstream_keepalive_secs`
 * into the proxy.yaml it ships, so they cannot drift apart.
 */
export const ALB1_IDLE_TIMEOUT_SECS = 60;

/** The proxy's `proxy.downstream_keepalive_secs`: ALB1's idle timeout plus a margin. */
export const DOWNSTREAM_KEEPALIVE_SECS = ALB1_IDLE_TIMEOUT_SECS + 15;
