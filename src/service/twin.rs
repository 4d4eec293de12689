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
            };
            db::device::insert(conn, &row)?;
            Ok(row.id)
        }
    }
}
