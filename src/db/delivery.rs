//! Delivery methods and delivery procedures.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::AnyConnection;
use super::schema::{delivery_methods, delivery_procedures};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = delivery_methods)]
pub struct DeliveryMethod {
    pub id: String,
    pub tid: String,
    pub name: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = delivery_methods)]
pub struct DeliveryMethodChanges {
    pub tid: Option<String>,
    pub name: Option<String>,
    pub updated_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = delivery_procedures)]
pub struct DeliveryProcedure {
    pub id: String,
    pub tid: String,
    pub name: String,
    pub delivery_method_id: String,
    /// JSON list of `pipeline::steps::StepConfig`.
    pub steps: String,
    pub confirm: bool,
    /// JSON `domain::procedure::Timeouts` (only the overridden states).
    pub timeouts: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = delivery_procedures)]
pub struct DeliveryProcedureChanges {
    pub tid: Option<String>,
    pub name: Option<String>,
    pub delivery_method_id: Option<String>,
    pub steps: Option<String>,
    pub confirm: Option<bool>,
    pub timeouts: Option<String>,
    pub updated_at: Option<NaiveDateTime>,
}

pub mod methods {
    use super::*;

    crate::db::handle_lookups!(delivery_methods, DeliveryMethod);

    crate::db::row_writes!(delivery_methods, DeliveryMethod, DeliveryMethodChanges);

    pub fn list(conn: &mut AnyConnection, page: crate::db::Page) -> QueryResult<(Vec<DeliveryMethod>, i64)> {
        let order = (delivery_methods::created_at, delivery_methods::id);
        crate::db::page_of!(conn, delivery_methods::table, order, DeliveryMethod::as_select(), page)
    }
}

pub mod procedures {
    use super::*;

    crate::db::handle_lookups!(delivery_procedures, DeliveryProcedure);

    crate::db::row_writes!(delivery_procedures, DeliveryProcedure, DeliveryProcedureChanges);

    pub fn list(
        conn: &mut AnyConnection,
        method: Option<&str>,
        page: crate::db::Page,
    ) -> QueryResult<(Vec<DeliveryProcedure>, i64)> {
        let query = || {
            let mut q = delivery_procedures::table.into_boxed();
            if let Some(m) = method {
                q = q.filter(delivery_procedures::delivery_method_id.eq(m.to_owned()));
            }
            q
        };
        let order = (delivery_procedures::created_at, delivery_procedures::id);
        crate::db::page_of!(conn, query(), order, DeliveryProcedure::as_select(), page)
    }
}
