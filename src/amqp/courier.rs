//! Publishing: the outbox's courier for door `dmf`, and replies such as `PING_RESPONSE`.
//! One publisher channel with publisher confirms: a notice counts as delivered only when the
//! broker confirmed it. Publishing to an exchange that does not exist makes the broker close
//! the channel; the next publish opens a new one, and the notice stays in the outbox for its
//! next attempt.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use tokio::sync::Mutex;

use crate::error::{Error, Result};
use crate::service::Hub;
use crate::service::dmf::{self as svc, Outbound};
use crate::service::outbox::{Courier, Notice};

/// The current connection (while the link is up) and the publisher channel on it.
#[derive(Default)]
pub struct Link {
    conn: Mutex<Option<Arc<Connection>>>,
    channel: Mutex<Option<Channel>>,
}

impl Link {
    pub async fn set(&self, conn: Arc<Connection>) {
        *self.channel.lock().await = None;
        *self.conn.lock().await = Some(conn);
    }

    pub async fn clear(&self) {
        *self.channel.lock().await = None;
        *self.conn.lock().await = None;
    }

    /// Publishes to `out.exchange` with routing key `""`; `Ok` once the broker confirmed.
    pub async fn publish(&self, out: &Outbound) -> std::result::Result<(), String> {
        let mut channel = self.channel.lock().await;
        if channel.as_ref().is_none_or(|c| !c.status().connected()) {
            let conn = self.conn.lock().await.clone().ok_or("not connected to the broker")?;
            let ch = conn.create_channel().await.map_err(|e| format!("opening a channel: {e}"))?;
            ch.confirm_select(ConfirmSelectOptions::default()).await.map_err(|e| format!("confirm mode: {e}"))?;
            *channel = Some(ch);
        }
        let ch = channel.as_ref().ok_or("no channel")?;
        let mut headers = FieldTable::default();
        for (k, v) in &out.headers {
            headers.insert((*k).into(), AMQPValue::LongString(v.as_str().into()));
        }
        let mut properties = BasicProperties::default()
            .with_content_type(out.content_type.into())
            .with_delivery_mode(2)
            .with_headers(headers);
        if let Some(id) = &out.correlation_id {
            properties = properties.with_correlation_id(id.as_str().into()).with_message_id(id.as_str().into());
        }
        let confirm = ch
            .basic_publish(
                out.exchange.as_str().into(),
                "".into(),
                BasicPublishOptions::default(),
                &out.body,
                properties,
            )
            .await
            .map_err(|e| format!("publishing to {:?}: {e}", out.exchange))?
            .await
            .map_err(|e| format!("publishing to {:?}: {e}", out.exchange))?;
        if confirm.is_nack() {
            return Err(format!("the broker refused the message for {:?}", out.exchange));
        }
        Ok(())
    }
}

/// Delivers outbox notices of door `dmf`: builds the message from the action as it is now,
/// and publishes it to the thing's reply exchange.
pub struct AmqpCourier {
    hub: Hub,
    link: Arc<Link>,
}

impl AmqpCourier {
    pub fn new(hub: Hub, link: Arc<Link>) -> AmqpCourier {
        AmqpCourier { hub, link }
    }
}

impl Courier for AmqpCourier {
    fn deliver<'a>(&'a self, id: &'a str, notice: &'a Notice) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let Some(out) = svc::outbound(&self.hub, id, notice).await? else {
                tracing::debug!(notice = id, topic = %notice.topic, "DMF: nothing (left) to tell the thing");
                return Ok(());
            };
            self.link.publish(&out).await.map_err(Error::Unavailable)?;
            tracing::debug!(notice = id, exchange = %out.exchange, "DMF: message published");
            Ok(())
        })
    }
}
