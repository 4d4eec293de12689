//! What sessions teach the device twin: the device's own request (model, channel,
//! installed version, last seen) and a confirmed update (the new installed version).
//! Admins' own changes to devices are `service::devices`.

use chrono::NaiveDateTime;

use crate::db::session::Session;
use crate::db::{self, AnyConnection};
use crate::domain::version::FirmwareVersion;
use crate::error::Result;
use crate::time;

/// After a confirmed success the device runs the target firmware: say so in its twin.
pub fn record_installed(conn: &mut AnyConnection, s: &Session) -> Result<()> {
    let (Some(device_id), Some(target)) = (&s.device_id, &s.target_firmware_id) else { return Ok(()) };
    let Some(fw) = db::firmware::find(conn, target)? else { return Ok(()) };
    let changes = db::device::DeviceChanges {
        installed_firmware_id: Some(Some(fw.id)),
        installed_version: Some(Some(fw.version)),
        updated_at: Some(time::now()),
        ..Default::default()
    };
    db::device::update(conn, device_id, &changes)?;
    Ok(())
}

/// Creates or updates the device twin from what the device just told us; answers its id.
#[expect(clippy::too_many_arguments, reason = "each argument is one fact the device reported")]
pub fn touch(
    conn: &mut AnyConnection,
    existing: Option<db::device::Device>,
    device_id: &str,
    model: &db::model::Model,
    channel_id: &str,
    current: Option<&FirmwareVersion>,
    current_fw: Option<&db::firmware::Firmware>,
    session_id: &str,
    now: NaiveDateTime,
) -> Result<String> {
    match existing {
        Some(d) => {
            let changes = db::device::DeviceChanges {
                model_id: Some(Some(model.id.clone())),
                channel_id: Some(Some(channel_id.to_owned())),
                installed_firmware_id: current.map(|_| current_fw.map(|f| f.id.clone())),
                installed_version: current.map(|v| Some(v.to_string())),
                last_seen: Some(Some(now)),
                last_session_id: Some(Some(session_id.to_owned())),
                updated_at: Some(now),
                ..Default::default()
            };
            db::device::update(conn, &d.id, &changes)?;
            Ok(d.id)
        }
        None => {
            let row = db::device::Device {
                id: uuid::Uuid::new_v4().to_string(),
                product_id: model.product_id.clone(),
                device_id: device_id.to_owned(),
                name: None,
                model_id: Some(model.id.clone()),
                channel_id: Some(channel_id.to_owned()),
                installed_firmware_id: current_fw.map(|f| f.id.clone()),
                installed_version: current.map(ToString::to_string),
                attributes: "{}".to_owned(),
                last_seen: Some(now),
                last_session_id: Some(session_id.to_owned()),
                created_at: now,
                updated_at: now,
                target_token_hash: None,
                attributes_requested: true,
                auto_confirm: None,
                installed_session_id: None,
                dmf_reply_to: None,
                target_token_sealed: None,
                age_recipient: None,
            };
            db::device::insert(conn, &row)?;
            Ok(row.id)
        }
    }
}

/// A hawkBit action's `closed`+`success`: the device runs the action's target now; the
/// action becomes its installedBase, and hawkBit asks for fresh attributes after an update.
pub fn record_action_installed(conn: &mut AnyConnection, device: &db::device::Device, done: &Session) -> Result<()> {
    let Some(fw) = done.target_firmware_id.as_deref().map(|id| db::firmware::find(conn, id)).transpose()?.flatten()
    else {
        return Ok(());
    };
    let changes = db::device::DeviceChanges {
        model_id: Some(Some(fw.model_id.clone())),
        installed_firmware_id: Some(Some(fw.id)),
        installed_version: Some(Some(fw.version)),
        installed_session_id: Some(Some(done.id.clone())),
        attributes_requested: Some(true),
        updated_at: Some(time::now()),
        ..Default::default()
    };
    db::device::update(conn, &device.id, &changes)?;
    Ok(())
}

/// Asks the device for its attributes on its next poll (hawkBit's requestControllerAttributes).
pub fn request_attributes(conn: &mut AnyConnection, device: &db::device::Device) -> Result<()> {
    let changes = db::device::DeviceChanges { attributes_requested: Some(true), ..Default::default() };
    db::device::update(conn, &device.id, &changes)?;
    Ok(())
}

/// The device runs `fw`, installed without an action: no installedBase link to an older one.
pub fn record_installed_without_action(
    conn: &mut AnyConnection,
    device: &db::device::Device,
    fw: &db::firmware::Firmware,
) -> Result<()> {
    let changes = db::device::DeviceChanges {
        installed_firmware_id: Some(Some(fw.id.clone())),
        installed_version: Some(Some(fw.version.clone())),
        installed_session_id: Some(None),
        updated_at: Some(time::now()),
        ..Default::default()
    };
    db::device::update(conn, &device.id, &changes)?;
    Ok(())
}

/// The attributes the device reported; it has answered the request for them.
pub fn set_attributes(
    conn: &mut AnyConnection,
    device: &db::device::Device,
    attributes: serde_json::Map<String, serde_json::Value>,
) -> Result<()> {
    let changes = db::device::DeviceChanges {
        attributes: Some(serde_json::Value::Object(attributes).to_string()),
        attributes_requested: Some(false),
        updated_at: Some(time::now()),
        ..Default::default()
    };
    db::device::update(conn, &device.id, &changes)?;
    Ok(())
}

/// Turns auto-confirm on (with its state) or off.
pub fn set_auto_confirm(
    conn: &mut AnyConnection,
    device: &db::device::Device,
    state: Option<&super::action::AutoConfirm>,
) -> Result<()> {
    let json =
        state.map(serde_json::to_string).transpose().map_err(|e| crate::error::Error::internal(e.to_string()))?;
    let changes = db::device::DeviceChanges { auto_confirm: Some(json), ..Default::default() };
    db::device::update(conn, &device.id, &changes)?;
    Ok(())
}
