//! Retrying what is safe to retry: reads, dry runs and server-side applies
//! (applying the same object twice is the same as once), on failures that are
//! likely to pass (connection errors, 429, 502, 503, 504), with exponential
//! backoff. A 500 is not among them: the API server uses it for failures that
//! stay (an exhausted Service IP range, a failing webhook).
//! Anything else fails at once: retrying a refusal only delays the message.

use std::future::Future;
use std::time::Duration;

const ATTEMPTS: u32 = 4;
const FIRST_DELAY: Duration = Duration::from_millis(250);

/// A Kubernetes API call, retried on transient failures.
pub async fn kube<T, F, Fut>(attempt: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    with_backoff(ATTEMPTS, transient, attempt).await
}

/// Runs `attempt` until it succeeds, fails for good, or has failed
/// `attempts` times with errors `transient` says may pass.
pub async fn with_backoff<T, E, F, Fut>(
    attempts: u32,
    transient: impl Fn(&E) -> bool,
    mut attempt: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delay = FIRST_DELAY;
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(err) if tries < attempts && transient(&err) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
                tries += 1;
            }
            result => return result,
        }
    }
}

fn transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => matches!(status.code, 429 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn status(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("test", "Test")
                .with_code(code)
                .boxed(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_then_given_up() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = kube(|| async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err(status(503))
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), ATTEMPTS);
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_are_not_retried() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = kube(|| async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err(status(403))
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_success_is_returned() {
        let calls = AtomicU32::new(0);
        let result = kube(|| async {
            match calls.fetch_add(1, Ordering::Relaxed) {
                0 => Err(status(502)),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(result.unwrap(), 7);
    }
}
