//! What the doors render of a session: seed 003's view, the history entry (with the
//! hawkBit action details of an assigned session), and its events.

use chrono::NaiveDateTime;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::engine::state_of;
use crate::db::session::{Session, SessionEvent};
use crate::domain::session::State;
use crate::error::{Error, Result};
use crate::service::Hub;
use crate::service::action::CANCELED;
use crate::time;

/// A session as devices see it: exactly seed 003's fields, plus `payload` once there is
/// something to say (the deliverable, or why it failed), and `action` for a session an admin
/// assigned (how hawkBit devices see it: a pending cancel shows there).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub id: String,
    #[serde(serialize_with = "time::rfc3339")]
    pub create_time: NaiveDateTime,
    pub creator: String,
    pub state: String,
    pub finished: bool,
    #[serde(serialize_with = "time::rfc3339_opt")]
    pub expiration_time: Option<NaiveDateTime>,
    pub delivery_procedure: String,
    pub current_firmware: Option<String>,
    pub target_firmware: Option<String>,
    pub device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionView>,
}

/// A session in a list or a device's history, where expired ones appear too.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    #[serde(flatten)]
    pub session: SessionView,
    pub expired: bool,
    /// Bytes of the deliverable served so far (whole downloads and byte ranges).
    pub bytes_served: i64,
}

/// A session as a hawkBit action: its DDI id (a string, as DDI writes ids) and details.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActionView {
    pub id: String,
    #[serde(rename = "type")]
    pub action_type: String,
    /// An admin asked the device to cancel and it has not answered yet.
    pub cancel_requested: bool,
    /// The device confirmed a cancel: the session ended as canceled.
    pub cancel_confirmed: bool,
    pub consent_required: bool,
    pub consented: bool,
}

impl HistoryEntry {
    pub fn of(hub: &Hub, s: Session, creator: String) -> Result<HistoryEntry> {
        let expired = s.expired_at.is_some();
        // ranges counted in memory and not written yet (`service::tally`) included
        let pending = i64::try_from(hub.tally.pending(&s.id)).unwrap_or(i64::MAX);
        let bytes_served = s.bytes_served.saturating_add(pending);
        Ok(HistoryEntry { session: view(hub, s, creator)?, expired, bytes_served })
    }
}

impl ActionView {
    /// The action of an assigned session; none for one a device asked for itself.
    pub fn of(s: &Session, state: State) -> Option<ActionView> {
        let action_type = s.action_type.clone()?;
        Some(ActionView {
            id: s.number.to_string(),
            action_type,
            cancel_requested: s.cancel_requested_at.is_some(),
            cancel_confirmed: state == State::Fail && s.fail_reason.as_deref() == Some(CANCELED),
            consent_required: s.consent_required,
            consented: s.consented_at.is_some(),
        })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    #[serde(serialize_with = "time::rfc3339")]
    pub at: NaiveDateTime,
    pub kind: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub message: Option<String>,
    /// The `X-Request-Id` of the HTTP request that wrote it (none for jobs and timers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl From<SessionEvent> for EventView {
    fn from(e: SessionEvent) -> Self {
        EventView {
            at: e.at,
            kind: e.kind,
            from_state: e.from_state,
            to_state: e.to_state,
            message: e.message,
            request_id: e.request_id,
        }
    }
}

/// Builds the view; a deliverable gets a freshly signed download link.
pub fn view(hub: &Hub, s: Session, creator: String) -> Result<SessionView> {
    let st = state_of(&s)?;
    let payload = match (st, &s.payload) {
        (st, Some(stored)) if st.has_deliverable() => {
            let mut p: Map<String, Value> =
                serde_json::from_str(stored).map_err(|e| Error::internal(format!("stored payload: {e}")))?;
            let sha = s.artifact_sha256.clone().unwrap_or_default();
            let ttl = chrono::Duration::seconds(i64::try_from(hub.settings.link_ttl_secs).unwrap_or(3600));
            let mut until = chrono::Utc::now() + ttl;
            if let Some(exp) = s.expires_at {
                until = until.min(exp.and_utc());
            }
            let token = hub.links.sign(&s.id, &sha, until)?;
            p.insert(
                "download_link".into(),
                hub.link(&format!("api/v1/firmware-update/{}/download?token={token}", s.id)).into(),
            );
            Some(Value::Object(p))
        }
        (State::Fail, _) => Some(json!({"reason": s.fail_reason.clone().unwrap_or_else(|| "failed".into())})),
        _ => None,
    };
    let action = ActionView::of(&s, st);
    Ok(SessionView {
        action,
        id: s.id,
        create_time: s.created_at,
        creator,
        state: st.as_str().to_owned(),
        finished: st.is_finished(),
        expiration_time: s.expires_at,
        delivery_procedure: s.procedure_id,
        current_firmware: s.current_firmware_id,
        target_firmware: s.target_firmware_id,
        device: s.device_id,
        payload,
    })
}
