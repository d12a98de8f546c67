//! The upstream's name from SSM Parameter Store: read at start with bounded
//! retries, then re-read every `ssm_refresh_secs` so a replaced ALB2 is
//! followed without a restart (a failed re-read, or a value that is not an
//! allowed host on the configured port, keeps the current name).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_ssm::error::DisplayErrorContext;

use crate::metrics::Metrics;
use crate::upstream::{HostPatterns, SharedTarget, Target};

/// One SSM client with short timeouts: the SDK's own retries stay on, our loop
/// bounds the total.
pub async fn client() -> aws_sdk_ssm::Client {
    let conf = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(10))
                .build(),
        )
        .load()
        .await;
    aws_sdk_ssm::Client::new(&conf)
}

/// Reads the parameter once; the error is one line with the SDK's cause chain.
pub async fn get(client: &aws_sdk_ssm::Client, name: &str) -> Result<String, String> {
    match client.get_parameter().name(name).send().await {
        Ok(out) => match out.parameter().and_then(|p| p.value()) {
            Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err("the parameter has no value".to_string()),
        },
        Err(e) => {
            if e.as_service_error()
                .is_some_and(|s| s.is_parameter_not_found())
            {
                Err("ParameterNotFound".to_string())
            } else {
                Err(DisplayErrorContext(&e).to_string().replace('\n', " "))
            }
        }
    }
}

/// Reads the parameter at start: retries with exponential backoff (250 ms
/// doubling, at most 5 s apart) until `budget` is spent. The error names the
/// parameter, the attempts and the last cause.
pub async fn read_at_startup(name: &str, budget: Duration) -> Result<String, String> {
    let started = Instant::now();
    let client = client().await;
    let mut delay = Duration::from_millis(250);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let left = budget
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(1));
        let last = match tokio::time::timeout(left, get(&client, name)).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e,
            Err(_) => format!("no answer within {left:?}"),
        };
        let spent = started.elapsed();
        if spent + delay >= budget {
            return Err(format!(
                "cannot read SSM parameter {name} ({attempts} attempts in {:.1}s): {last}",
                spent.as_secs_f64()
            ));
        }
        tracing::warn!(parameter = name, attempt = attempts, error = %last, "SSM read failed, retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Re-reads the parameter every `every`, forever: a new value replaces the
/// target (discovery resolves it on its next run); a failed read, or a value
/// that `allowed` refuses (see [`Target::from_ssm_value`]), keeps it.
pub async fn refresh(
    parameter: &str,
    port: u16,
    allowed: &HostPatterns,
    every: Duration,
    target: &SharedTarget,
    metrics: &Metrics,
) {
    // The client lives in the calling service's runtime (its connection pool too).
    let client = client().await;
    loop {
        tokio::time::sleep(every).await;
        match get(&client, parameter).await {
            Ok(value) => match Target::from_ssm_value(&value, port, allowed) {
                Ok(new) => {
                    if **target.load() != new {
                        tracing::info!(parameter, upstream = %new, "upstream name changed");
                        target.store(Arc::new(new));
                    }
                }
                Err(e) => {
                    metrics.ssm_refresh_failures.inc();
                    tracing::warn!(parameter, error = %e, "SSM value refused; keeping the current upstream name");
                }
            },
            Err(e) => {
                metrics.ssm_refresh_failures.inc();
                tracing::warn!(parameter, error = %e, "SSM re-read failed; keeping the current upstream name");
            }
        }
    }
}
