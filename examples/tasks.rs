//! Plays both ends of an agent's work queue, for `scripts/demo`: the agents
//! the local control plane runs are kwok's, which take no tasks.
//!
//!   cargo run --example tasks -- publish SUBJECT COUNT
//!   cargo run --example tasks -- work STREAM CONSUMER
//!
//! `publish` puts COUNT tasks on SUBJECT; `work` takes every task waiting on
//! a pull consumer and acknowledges it, as agents that finished their work.
//! Both connect to `FLEET_NATS_URL` (`scripts/controlplane env` sets it).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_nats::jetstream::{self, consumer::PullConsumer};
use futures::StreamExt as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = std::env::var("FLEET_NATS_URL").context("FLEET_NATS_URL is not set")?;
    let client = async_nats::connect(&url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let js = jetstream::new(client);
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["publish", subject, count] => {
            let count: usize = count.parse().context("COUNT is a number")?;
            for n in 1..=count {
                js.publish(subject.to_string(), format!("task {n}").into())
                    .await?
                    .await
                    .with_context(|| format!("publishing to {subject}"))?;
            }
            println!("published {count} tasks to {subject}");
        }
        ["work", stream, consumer] => {
            let consumer: PullConsumer = js
                .get_stream(stream)
                .await
                .with_context(|| format!("stream {stream}"))?
                .get_consumer(consumer)
                .await
                .map_err(|err| anyhow::anyhow!("consumer {consumer} of stream {stream}: {err}"))?;
            let mut done = 0;
            loop {
                let mut batch = consumer
                    .fetch()
                    .max_messages(100)
                    .expires(Duration::from_secs(1))
                    .messages()
                    .await?;
                let before = done;
                while let Some(message) = batch.next().await {
                    // The server has removed it from the queue once this returns.
                    message
                        .map_err(|err| anyhow::anyhow!(err))?
                        .double_ack()
                        .await
                        .map_err(|err| anyhow::anyhow!(err))?;
                    done += 1;
                }
                if done == before {
                    break;
                }
            }
            println!("acknowledged {done} tasks");
        }
        _ => bail!("usage: tasks publish SUBJECT COUNT | tasks work STREAM CONSUMER"),
    }
    Ok(())
}
