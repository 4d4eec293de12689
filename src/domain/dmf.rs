//! hawkBit's Device Management Federation API (DMF), without the broker: what an inbound
//! message means (headers, properties and JSON body → [`Inbound`], or a [`Rejection`] that
//! says why it goes to the dead-letter queue), how a status maps onto the session (through
//! DDI's own feedback tables in `domain::ddi`, never a second copy), and the bodies the
//! server sends. Protocol facts: seed 004 and `../shared/specs/hawkbit-ddi-dmf.md` §4; where
//! they disagree the seed wins (e.g. the `tenant` header is optional: absent means the
//! configured default product, as DDI's `DEFAULT`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::attributes::Mode;
use super::ddi::{Execution, Finished};

/// A message as the door received it: its string headers and the properties that matter.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    pub headers: BTreeMap<String, String>,
    pub content_type: Option<String>,
    pub reply_to: Option<String>,
    pub correlation_id: Option<String>,
    pub body: Vec<u8>,
}

/// Why a message is refused (dead-lettered); the door logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection(pub String);

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn reject<T>(why: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection(why.into()))
}

/// A parsed inbound message: who it is for, and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The `tenant` header (a product handle, or `DEFAULT`); `None`: the default product.
    pub tenant: Option<String>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub kind: Inbound,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// `THING_CREATED`: register (or update) the thing, remember where it listens.
    ThingCreated { thing: String, create: CreateThing },
    /// `THING_REMOVED` (and `THING_DELETED` sent by a thing): delete the device.
    ThingRemoved { thing: String },
    /// `EVENT` / `UPDATE_ATTRIBUTES`.
    UpdateAttributes { thing: String, update: AttributeUpdate },
    /// `EVENT` / `UPDATE_ACTION_STATUS` (no thing id needed: the action names its device).
    ActionStatus(ActionStatusUpdate),
    /// `EVENT` / `UPDATE_AUTO_CONFIRM`.
    AutoConfirm { thing: String, body: AutoConfirmation },
    /// `PING`: answered with `PING_RESPONSE`.
    Ping,
}

/// `DmfCreateThing`; every field optional, an empty body means none.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateThing {
    pub name: Option<String>,
    /// hawkBit's target type: here the device's model (handle or id).
    #[serde(rename = "type")]
    pub model: Option<String>,
    pub attribute_update: Option<AttributeUpdate>,
}

/// `DmfAttributeUpdate`: the same rules as DDI `configData`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AttributeUpdate {
    pub attributes: Map<String, Value>,
    #[serde(default, deserialize_with = "upper_mode")]
    pub mode: Mode,
}

fn upper_mode<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Mode, D::Error> {
    match Option::<String>::deserialize(de)?.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("MERGE") => Ok(Mode::Merge),
        Some("REPLACE") => Ok(Mode::Replace),
        Some("REMOVE") => Ok(Mode::Remove),
        Some(other) => Err(serde::de::Error::custom(format!("mode {other:?} is not MERGE, REPLACE or REMOVE"))),
    }
}

/// `DmfActionStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionStatus {
    Download,
    Retrieved,
    Running,
    Finished,
    Error,
    Warning,
    Canceled,
    CancelRejected,
    Downloaded,
    Confirmed,
    Denied,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Download => "DOWNLOAD",
            ActionStatus::Retrieved => "RETRIEVED",
            ActionStatus::Running => "RUNNING",
            ActionStatus::Finished => "FINISHED",
            ActionStatus::Error => "ERROR",
            ActionStatus::Warning => "WARNING",
            ActionStatus::Canceled => "CANCELED",
            ActionStatus::CancelRejected => "CANCEL_REJECTED",
            ActionStatus::Downloaded => "DOWNLOADED",
            ActionStatus::Confirmed => "CONFIRMED",
            ActionStatus::Denied => "DENIED",
        }
    }
}

/// `DmfActionUpdateStatus`. `softwareModuleId` and `timestamp` are read and ignored, as in
/// hawkBit (the server stamps statuses with its own clock).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionStatusUpdate {
    #[serde(deserialize_with = "action_id")]
    pub action_id: i64,
    pub action_status: ActionStatus,
    #[serde(default)]
    pub message: Option<Vec<String>>,
    #[serde(default)]
    pub code: Option<i64>,
}

/// A JSON number; a string of digits is read too (some gateways quote long values).
fn action_id<'de, D: serde::Deserializer<'de>>(de: D) -> Result<i64, D::Error> {
    match Value::deserialize(de)? {
        Value::Number(n) => n.as_i64().ok_or_else(|| serde::de::Error::custom("actionId is not a whole number")),
        Value::String(s) => s.trim().parse().map_err(|_| serde::de::Error::custom("actionId is not a number")),
        _ => Err(serde::de::Error::custom("actionId must be a number")),
    }
}

/// `DmfAutoConfirmation`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AutoConfirmation {
    pub enabled: bool,
    pub initiator: Option<String>,
    pub remark: Option<String>,
}

/// What a DMF status does, in the terms of DDI's tables (`domain::ddi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusEffect {
    /// A deployment feedback: `ddi::deployment_feedback(type, execution, finished)`.
    Deployment(Execution, Finished),
    /// A cancel feedback: `ddi::cancel_feedback(execution, finished)`.
    Cancel(Execution, Finished),
    /// `RETRIEVED`: the gateway fetched the action (DDI has no feedback for it).
    Retrieved,
    /// `CONFIRMED` / `DENIED`: the consent answer.
    Consent(bool),
}

/// Each DMF status as the DDI feedback hawkBit itself maps it to (spec §4.2, §3.2–3.3).
pub fn status_effect(status: ActionStatus) -> StatusEffect {
    use Execution as X;
    use StatusEffect::*;
    match status {
        ActionStatus::Download => Deployment(X::Download, Finished::None),
        ActionStatus::Retrieved => Retrieved,
        ActionStatus::Running => Deployment(X::Proceeding, Finished::None),
        ActionStatus::Finished => Deployment(X::Closed, Finished::Success),
        ActionStatus::Error => Deployment(X::Closed, Finished::Failure),
        ActionStatus::Warning => Deployment(X::Rejected, Finished::None),
        ActionStatus::Downloaded => Deployment(X::Downloaded, Finished::None),
        ActionStatus::Canceled => Cancel(X::Closed, Finished::Success),
        ActionStatus::CancelRejected => Cancel(X::Rejected, Finished::None),
        ActionStatus::Confirmed => Consent(true),
        ActionStatus::Denied => Consent(false),
    }
}

fn header<'a>(env: &'a Envelope, name: &str) -> Option<&'a str> {
    env.headers.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn thing(env: &Envelope) -> Result<String, Rejection> {
    let Some(id) = header(env, "thingId") else { return reject("the thingId header is missing") };
    if id.len() > 256 || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return reject(format!("thingId {id:?} is not 1 to 256 characters without white space"));
    }
    Ok(id.to_owned())
}

/// The JSON body; `None` when empty (or the JSON string `""`, which hawkBit reads as empty).
fn json_body<T: serde::de::DeserializeOwned>(env: &Envelope, what: &str) -> Result<Option<T>, Rejection> {
    if let Some(ct) = &env.content_type
        && !ct.to_ascii_lowercase().contains("json")
    {
        return reject(format!("content type {ct:?} is not JSON"));
    }
    let text = std::str::from_utf8(&env.body).map_err(|_| Rejection(format!("the {what} body is not UTF-8")))?;
    if text.trim().is_empty() || text.trim() == "\"\"" {
        return Ok(None);
    }
    serde_json::from_str(text).map(Some).map_err(|e| Rejection(format!("the {what} body is not valid: {e}")))
}

fn required<T: serde::de::DeserializeOwned>(env: &Envelope, what: &str) -> Result<T, Rejection> {
    json_body(env, what)?.ok_or_else(|| Rejection(format!("the {what} body is empty")))
}

/// Reads an inbound message, or says why it is refused.
pub fn parse(env: &Envelope) -> Result<Message, Rejection> {
    let Some(kind) = header(env, "type") else { return reject("the type header is missing") };
    let kind = match kind.to_ascii_uppercase().as_str() {
        "THING_CREATED" => {
            Inbound::ThingCreated { thing: thing(env)?, create: json_body(env, "THING_CREATED")?.unwrap_or_default() }
        }
        "THING_REMOVED" | "THING_DELETED" => Inbound::ThingRemoved { thing: thing(env)? },
        "PING" => {
            if env.correlation_id.as_deref().is_none_or(str::is_empty) {
                return reject("a PING needs a correlation_id to be answered");
            }
            Inbound::Ping
        }
        "EVENT" => {
            let Some(topic) = header(env, "topic") else { return reject("the topic header of an EVENT is missing") };
            match topic.to_ascii_uppercase().as_str() {
                "UPDATE_ACTION_STATUS" => Inbound::ActionStatus(required(env, "UPDATE_ACTION_STATUS")?),
                "UPDATE_ATTRIBUTES" => {
                    Inbound::UpdateAttributes { thing: thing(env)?, update: required(env, "UPDATE_ATTRIBUTES")? }
                }
                "UPDATE_AUTO_CONFIRM" => {
                    Inbound::AutoConfirm { thing: thing(env)?, body: required(env, "UPDATE_AUTO_CONFIRM")? }
                }
                other => return reject(format!("topic {other:?} is not one a thing sends")),
            }
        }
        other => return reject(format!("type {other:?} is not one a thing sends")),
    };
    Ok(Message {
        tenant: header(env, "tenant").map(str::to_owned),
        correlation_id: env.correlation_id.clone().filter(|c| !c.is_empty()),
        reply_to: env.reply_to.clone().filter(|r| !r.is_empty()),
        kind,
    })
}

// ---- what the server sends ------------------------------------------------------------------

/// `DmfDownloadAndUpdateRequest` (also the body of `DOWNLOAD` and `CONFIRM`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadRequest {
    pub action_id: i64,
    pub target_security_token: String,
    pub software_modules: Vec<SoftwareModule>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SoftwareModule {
    pub module_id: i64,
    pub module_type: String,
    pub module_version: String,
    pub artifacts: Vec<Artifact>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<KeyValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    pub filename: String,
    /// `HTTP` (and `HTTPS` when the public URL is https) → the DDI download URL.
    pub urls: BTreeMap<String, String>,
    pub hashes: Hashes,
    pub size: u64,
}

/// DMF's hashes: SHA-1 and MD5 as hawkBit sends them, SHA-256 as well (unknown fields are
/// ignored by DMF clients, and it is the digest worth checking).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hashes {
    pub sha1: String,
    pub md5: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// The `urls` of an artifact: the DDI download URL under `HTTP`, and under `HTTPS` too when
/// it is an https URL (hawkBit names each protocol it serves).
pub fn artifact_urls(url: &str) -> BTreeMap<String, String> {
    let mut urls = BTreeMap::new();
    urls.insert("HTTP".to_owned(), url.to_owned());
    if url.starts_with("https://") {
        urls.insert("HTTPS".to_owned(), url.to_owned());
    }
    urls
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is the test's failure")]
mod tests {
    use super::*;

    fn env(headers: &[(&str, &str)], body: &str) -> Envelope {
        Envelope {
            headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            content_type: Some("application/json".into()),
            reply_to: Some("gw".into()),
            correlation_id: Some("c-1".into()),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn messages_of_the_seed_parse() {
        let m = parse(&env(&[("type", "THING_CREATED "), ("tenant", "P1"), ("thingId", "abc")], "")).unwrap();
        assert_eq!(m.kind, Inbound::ThingCreated { thing: "abc".into(), create: CreateThing::default() });
        assert_eq!(m.tenant.as_deref(), Some("P1"));
        let m = parse(&env(
            &[("type", "EVENT"), ("topic", "UPDATE_ACTION_STATUS")],
            r#"{"actionId":137,"softwareModuleId":17,"actionStatus":"DOWNLOAD","message":["started"]}"#,
        ))
        .unwrap();
        assert_eq!(m.tenant, None, "the seed makes the tenant optional");
        let Inbound::ActionStatus(s) = m.kind else { panic!("a status") };
        assert_eq!((s.action_id, s.action_status), (137, ActionStatus::Download));
        let m = parse(&env(
            &[("type", "EVENT"), ("topic", "UPDATE_ATTRIBUTES"), ("thingId", "abc")],
            r#"{"attributes":{"a":"1"},"mode":"REPLACE"}"#,
        ))
        .unwrap();
        let Inbound::UpdateAttributes { update, .. } = m.kind else { panic!("attributes") };
        assert_eq!(update.mode, Mode::Replace);
        let created = parse(&env(
            &[("type", "THING_CREATED"), ("thingId", "abc")],
            r#"{"name":"n","type":"CAFEBABE","attributeUpdate":{"attributes":{"k":"v"}}}"#,
        ))
        .unwrap();
        let Inbound::ThingCreated { create, .. } = created.kind else { panic!("created") };
        assert_eq!((create.name.as_deref(), create.model.as_deref()), (Some("n"), Some("CAFEBABE")));
        assert_eq!(create.attribute_update.map(|u| u.mode), Some(Mode::Merge));
    }

    #[test]
    fn malformed_messages_say_why() {
        let why = |headers: &[(&str, &str)], body: &str| parse(&env(headers, body)).unwrap_err().0;
        assert!(why(&[("tenant", "P1")], "").contains("type header"));
        assert!(why(&[("type", "EVENT")], "{}").contains("topic header"));
        assert!(why(&[("type", "EVENT"), ("topic", "NOPE")], "{}").contains("NOPE"));
        assert!(why(&[("type", "NOPE")], "").contains("NOPE"));
        assert!(why(&[("type", "EVENT"), ("topic", "UPDATE_ACTION_STATUS")], "{not json").contains("not valid"));
        assert!(
            why(&[("type", "EVENT"), ("topic", "UPDATE_ACTION_STATUS")], r#"{"actionId":1,"actionStatus":"NOPE"}"#)
                .contains("not valid")
        );
        assert!(why(&[("type", "THING_CREATED")], "").contains("thingId"));
        let mut ping = env(&[("type", "PING")], "");
        ping.correlation_id = None;
        assert!(parse(&ping).unwrap_err().0.contains("correlation_id"));
        let mut xml = env(&[("type", "EVENT"), ("topic", "UPDATE_ATTRIBUTES"), ("thingId", "a")], "{}");
        xml.content_type = Some("application/xml".into());
        assert!(parse(&xml).unwrap_err().0.contains("not JSON"));
    }

    #[test]
    fn statuses_map_onto_ddi_feedback() {
        use super::super::ddi::{ActionType, CancelEffect, FeedbackEffect, cancel_feedback, deployment_feedback};
        let deploy = |s| match status_effect(s) {
            StatusEffect::Deployment(x, f) => deployment_feedback(ActionType::Forced, x, f),
            other => panic!("{other:?}"),
        };
        assert_eq!(deploy(ActionStatus::Finished), FeedbackEffect::Close { success: true, installed: true });
        assert_eq!(deploy(ActionStatus::Error), FeedbackEffect::Close { success: false, installed: false });
        assert_eq!(deploy(ActionStatus::Running), FeedbackEffect::Record("RUNNING"));
        assert_eq!(deploy(ActionStatus::Download), FeedbackEffect::Record("DOWNLOAD"));
        assert_eq!(deploy(ActionStatus::Warning), FeedbackEffect::Record("WARNING"));
        assert_eq!(deploy(ActionStatus::Downloaded), FeedbackEffect::Record("DOWNLOADED"));
        let cancel = |s| match status_effect(s) {
            StatusEffect::Cancel(x, f) => cancel_feedback(x, f),
            other => panic!("{other:?}"),
        };
        assert_eq!(cancel(ActionStatus::Canceled), CancelEffect::Canceled);
        assert_eq!(cancel(ActionStatus::CancelRejected), CancelEffect::Refused("CANCEL_REJECTED"));
        assert_eq!(status_effect(ActionStatus::Confirmed), StatusEffect::Consent(true));
    }
}
