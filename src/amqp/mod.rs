//! The DMF door: hawkBit's Device Management Federation API over AMQP 0-9-1 (RabbitMQ),
//! with `lapin`. On only when `amqp_url` is set. One task keeps a connection: it connects,
//! declares the topology (idempotently; a clash says which object and how to fix it),
//! consumes the receiver queue with a bounded prefetch, and reconnects with back-off when
//! the link breaks. Each message is parsed (`domain::dmf`) and applied in one transaction
//! (`service::dmf`); it is acknowledged only after that committed, rejected to the
//! dead-letter queue (with a log line that says why) when it is malformed or names what does
//! not exist, and requeued after a back-off when the database is down. Nothing a message
//! does can end the consumer. Outbound messages are the outbox's: [`courier::AmqpCourier`]
//! publishes them (with publisher confirms) after their transaction committed.

pub mod courier;
mod topology;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use tokio::task::JoinSet;

use crate::domain::dmf::{Envelope, parse};
use crate::error::Error;
use crate::service::Hub;
use crate::service::dmf::{self as svc, DOOR};

/// The first wait after a lost link or a requeued message; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Starts the door when AMQP is configured: registers its courier and keeps the link.
pub fn spawn(hub: &Hub, set: &mut JoinSet<()>) {
    let Some(url) = hub.settings.amqp_url.as_ref().map(|u| u.expose().to_owned()) else { return };
    let link = Arc::new(courier::Link::default());
    hub.couriers.register(DOOR, Arc::new(courier::AmqpCourier::new(hub.clone(), link.clone())));
    hub.broker.set("connecting");
    set.spawn(run(hub.clone(), url, link));
    tracing::info!(exchange = %hub.settings.dmf.exchange, queue = %hub.settings.dmf.receiver_queue, "DMF door on");
}

/// Keeps the link for as long as the process runs.
async fn run(hub: Hub, url: String, link: Arc<courier::Link>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let error = match session(&hub, &url, &link, &mut backoff).await {
            Ok(()) => "the broker closed the connection".to_owned(),
            Err(e) => e,
        };
        link.clear().await;
        hub.broker.set(format!("reconnecting: {error}"));
        tracing::warn!(error = %error, retry_in_ms = backoff.as_millis(), "DMF: the broker link is down; reconnecting");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: connect, declare, consume until the link breaks.
async fn session(hub: &Hub, url: &str, link: &courier::Link, backoff: &mut Duration) -> Result<(), String> {
    let conn =
        Connection::connect(url, ConnectionProperties::default()).await.map_err(|e| format!("connecting: {e}"))?;
    let conn = Arc::new(conn);
    let dmf = &hub.settings.dmf;
    topology::declare(&conn, dmf).await?;
    let channel = conn.create_channel().await.map_err(|e| format!("opening a channel: {e}"))?;
    channel
        .basic_qos(dmf.prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| format!("setting the prefetch: {e}"))?;
    let mut consumer = channel
        .basic_consume(
            dmf.receiver_queue.as_str().into(),
            "devicehub".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("consuming {:?}: {e}", dmf.receiver_queue))?;
    link.set(conn.clone()).await;
    hub.broker.set("ok");
    *backoff = FIRST_BACKOFF;
    tracing::info!("DMF: connected to the broker, topology declared, consuming");
    let mut retry = FIRST_BACKOFF;
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery.map_err(|e| format!("consuming: {e}"))?;
        process(hub, link, delivery, &mut retry).await;
    }
    Ok(())
}

/// What becomes of a message.
enum Outcome {
    Ack,
    /// To the dead-letter queue, for this reason.
    Reject(String),
    /// Back into the queue after a pause (the infrastructure failed).
    Requeue(String),
}

/// Handles one delivery; never fails (a broken channel shows in the consumer stream).
async fn process(hub: &Hub, link: &courier::Link, delivery: Delivery, retry: &mut Duration) {
    let envelope = envelope(&delivery);
    let header = |k: &str| envelope.headers.get(k).cloned().unwrap_or_default();
    let (kind, topic, thing, tenant) = (header("type"), header("topic"), header("thingId"), header("tenant"));
    let outcome = match parse(&envelope) {
        Err(rejection) => Outcome::Reject(rejection.0),
        Ok(message) => match svc::handle(hub, message).await {
            Ok(reply) => {
                if let Some(out) = reply
                    && let Err(e) = link.publish(&out).await
                {
                    tracing::warn!(error = %e, exchange = %out.exchange, "DMF: a reply could not be published");
                }
                Outcome::Ack
            }
            // a bug that a second attempt also hits is the message's problem, not the broker's
            Err(e @ Error::Internal(_)) if delivery.redelivered => Outcome::Reject(format!("failed twice: {e}")),
            Err(e) if svc::is_infrastructure(&e) => Outcome::Requeue(e.to_string()),
            Err(e) => Outcome::Reject(e.to_string()),
        },
    };
    let done = match outcome {
        Outcome::Ack => {
            *retry = FIRST_BACKOFF;
            delivery.ack(BasicAckOptions::default()).await
        }
        Outcome::Reject(why) => {
            tracing::warn!(
                reason = %why, r#type = %kind, topic = %topic, thing = %thing, tenant = %tenant,
                "DMF: message rejected to the dead-letter queue"
            );
            delivery.reject(BasicRejectOptions { requeue: false }).await
        }
        Outcome::Requeue(why) => {
            tracing::warn!(
                error = %why, r#type = %kind, topic = %topic, retry_in_ms = retry.as_millis(),
                "DMF: message requeued (infrastructure error)"
            );
            tokio::time::sleep(*retry).await;
            *retry = (*retry * 2).min(MAX_BACKOFF);
            delivery.nack(BasicNackOptions { requeue: true, multiple: false }).await
        }
    };
    if let Err(e) = done {
        // the channel is gone: the message comes again after the reconnect
        tracing::warn!(error = %e, "DMF: acknowledging a message failed");
    }
}

/// The parts of a delivery the protocol reads: string headers and three properties.
fn envelope(d: &Delivery) -> Envelope {
    let p = &d.properties;
    let headers = p
        .headers()
        .as_ref()
        .map(|table| table.inner().iter().filter_map(|(k, v)| text(v).map(|v| (k.as_str().to_owned(), v))).collect())
        .unwrap_or_default();
    Envelope {
        headers,
        content_type: p.content_type().as_ref().map(|s| s.as_str().to_owned()),
        reply_to: p.reply_to().as_ref().map(|s| s.as_str().to_owned()),
        correlation_id: p.correlation_id().as_ref().map(|s| s.as_str().to_owned()),
        body: d.data.clone(),
    }
}

fn text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}
