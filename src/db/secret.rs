//! Secrets shared by every instance, created once.

use diesel::prelude::*;

use super::AnyConnection;
use super::schema::server_secrets;

/// The secret called `name`, created with `make` if it does not exist yet. Runs in a write
/// transaction so two instances starting at once agree on one value.
pub fn get_or_create(conn: &mut AnyConnection, name: &str, make: impl FnOnce() -> String) -> QueryResult<String> {
    super::write_transaction(conn, |conn| {
        let existing: Option<String> =
            server_secrets::table.find(name).select(server_secrets::value).get_result(conn).optional()?;
        if let Some(v) = existing {
            return Ok(v);
        }
        let value = make();
        diesel::insert_into(server_secrets::table)
            .values((
                server_secrets::name.eq(name),
                server_secrets::value.eq(&value),
                server_secrets::created_at.eq(crate::time::now()),
            ))
            .execute(conn)?;
        Ok(value)
    })
}
