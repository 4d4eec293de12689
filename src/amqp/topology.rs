//! The DMF topology, declared on every (re)connect: idempotent when it exists as declared.
//! hawkBit's objects and defaults (spec §4.1, seed 004):
//!
//! | object | default name | kind |
//! |---|---|---|
//! | receiver exchange | `dmf.exchange` | fanout, durable: every routing key reaches the receiver queue |
//! | receiver queue | `dmf_receiver` | durable, dead-letters to the dead-letter exchange |
//! | dead-letter exchange | `dmf.connector.deadletter` | fanout, durable |
//! | dead-letter queue | `dmf_connector_deadletter_ttl` | durable, messages kept 21 days |
//! | default reply exchange | `sp.direct.exchange` | fanout, durable: replies to things without `reply_to` |
//! | default reply queue | `sp_direct_queue` | durable, bound to the default reply exchange |

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ExchangeKind};

use crate::settings::DmfSettings;

/// hawkBit keeps dead letters three weeks.
const DEAD_LETTER_TTL_MS: i32 = 21 * 24 * 3600 * 1000;

/// Explains a failed declaration; a clash with an existing object says what to do.
fn explain(what: &str, name: &str, setting: &str, e: &lapin::Error) -> String {
    let text = e.to_string();
    if text.contains("PRECONDITION_FAILED") || text.contains("inequivalent") {
        format!(
            "the broker already has {what} {name:?} with other settings than devicehub declares ({text}); \
             delete it (e.g. `rabbitmqctl delete_{kind} {name}` or the management UI) so devicehub can declare it, \
             or set `{setting}` to another name",
            kind = if what.ends_with("exchange") { "exchange" } else { "queue" },
        )
    } else {
        format!("declaring {what} {name:?}: {text}")
    }
}

async fn exchange(conn: &Connection, name: &str, what: &str, setting: &str) -> Result<(), String> {
    // a channel per object: a clash closes the channel, and the next object gets a fresh one
    let ch = conn.create_channel().await.map_err(|e| format!("opening a channel: {e}"))?;
    let options = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    ch.exchange_declare(name.into(), ExchangeKind::Fanout, options, FieldTable::default())
        .await
        .map_err(|e| explain(what, name, setting, &e))?;
    let _ = ch.close(200, "OK".into()).await;
    Ok(())
}

async fn queue(
    conn: &Connection,
    name: &str,
    bound_to: &str,
    arguments: FieldTable,
    what: &str,
    setting: &str,
) -> Result<(), String> {
    let ch = conn.create_channel().await.map_err(|e| format!("opening a channel: {e}"))?;
    let options = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    ch.queue_declare(name.into(), options, arguments).await.map_err(|e| explain(what, name, setting, &e))?;
    ch.queue_bind(name.into(), bound_to.into(), "".into(), QueueBindOptions::default(), FieldTable::default())
        .await
        .map_err(|e| format!("binding queue {name:?} to exchange {bound_to:?}: {e}"))?;
    let _ = ch.close(200, "OK".into()).await;
    Ok(())
}

pub async fn declare(conn: &Connection, n: &DmfSettings) -> Result<(), String> {
    exchange(conn, &n.dead_letter_exchange, "dead-letter exchange", "dmf_dead_letter_exchange").await?;
    let mut ttl = FieldTable::default();
    ttl.insert("x-message-ttl".into(), AMQPValue::LongInt(DEAD_LETTER_TTL_MS));
    queue(conn, &n.dead_letter_queue, &n.dead_letter_exchange, ttl, "dead-letter queue", "dmf_dead_letter_queue")
        .await?;
    exchange(conn, &n.exchange, "receiver exchange", "dmf_exchange").await?;
    let mut dlx = FieldTable::default();
    dlx.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(n.dead_letter_exchange.as_str().into()));
    queue(conn, &n.receiver_queue, &n.exchange, dlx, "receiver queue", "dmf_receiver_queue").await?;
    exchange(conn, &n.reply_exchange, "reply exchange", "dmf_reply_exchange").await?;
    queue(conn, &n.reply_queue, &n.reply_exchange, FieldTable::default(), "reply queue", "dmf_reply_queue").await
}
