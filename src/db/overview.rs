//! Counts for the admin overview: what the fleet runs, where sessions stand, who went quiet.

use chrono::NaiveDateTime;
use diesel::dsl::count_star;
use diesel::prelude::*;

use super::AnyConnection;
use super::device::Device;
use super::schema::{devices, sessions};

/// (product id, installed version, devices), in the given products (`None`: all).
pub fn devices_by_version(
    conn: &mut AnyConnection,
    only: Option<&[String]>,
) -> QueryResult<Vec<(String, Option<String>, i64)>> {
    let mut q = devices::table
        .group_by((devices::product_id, devices::installed_version))
        .select((devices::product_id, devices::installed_version, count_star()))
        .into_boxed();
    if let Some(ids) = only {
        q = q.filter(devices::product_id.eq_any(ids.to_vec()));
    }
    q.load(conn)
}

/// (state, sessions) of the live sessions in the given products, optionally only those
/// targeting one firmware.
pub fn sessions_by_state(
    conn: &mut AnyConnection,
    only: Option<&[String]>,
    target_firmware: Option<&str>,
) -> QueryResult<Vec<(String, i64)>> {
    let mut q = sessions::table.group_by(sessions::state).select((sessions::state, count_star())).into_boxed();
    if let Some(ids) = only {
        q = q.filter(sessions::product_id.eq_any(ids.to_vec()));
    }
    match target_firmware {
        // an assignment's progress includes sessions whose life has ended
        Some(f) => q = q.filter(sessions::target_firmware_id.eq(f.to_owned())),
        None => q = q.filter(sessions::expired_at.is_null()),
    }
    q.load(conn)
}

/// Devices last seen before `cutoff` (or never), longest quiet first, and how many there are.
pub fn quiet_devices(
    conn: &mut AnyConnection,
    only: Option<&[String]>,
    cutoff: NaiveDateTime,
    limit: i64,
) -> QueryResult<(Vec<Device>, i64)> {
    let query = || {
        let mut q = devices::table.filter(devices::last_seen.lt(cutoff).or(devices::last_seen.is_null())).into_boxed();
        if let Some(ids) = only {
            q = q.filter(devices::product_id.eq_any(ids.to_vec()));
        }
        q
    };
    let total = query().count().get_result(conn)?;
    let rows =
        query().order((devices::last_seen.asc(), devices::id)).limit(limit).select(Device::as_select()).load(conn)?;
    Ok((rows, total))
}
