use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::AnyConnection;
use super::schema::products;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = products)]
pub struct Product {
    pub id: String,
    pub tid: String,
    pub name: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// hawkBit DDI: devices may authenticate with their own target token.
    pub ddi_target_token_auth: bool,
    /// hawkBit DDI: gateways (API tokens with a device role here) may act for any device.
    pub ddi_gateway_token_auth: bool,
    /// hawkBit DDI: the polling interval devices are told.
    pub ddi_polling_secs: i32,
    /// hawkBit DDI: new assignments wait for the device's consent.
    pub ddi_confirmation_required: bool,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = products)]
pub struct ProductChanges {
    pub tid: Option<String>,
    pub name: Option<String>,
    pub updated_at: Option<NaiveDateTime>,
    pub ddi_target_token_auth: Option<bool>,
    pub ddi_gateway_token_auth: Option<bool>,
    pub ddi_polling_secs: Option<i32>,
    pub ddi_confirmation_required: Option<bool>,
}

/// A product by its handle, ignoring case (hawkBit tenants are case-insensitive).
pub fn find_by_tid_ignoring_case(conn: &mut AnyConnection, tid: &str) -> QueryResult<Option<Product>> {
    diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);
    products::table
        .filter(lower(products::tid).eq(tid.to_lowercase()))
        .select(Product::as_select())
        .load(conn)
        .map(|rows| rows.into_iter().next())
}

crate::db::handle_lookups!(products, Product);

crate::db::row_writes!(products, Product, ProductChanges);

/// A page of products, optionally only those in `only` (the products a caller may read).
pub fn list(conn: &mut AnyConnection, only: Option<&[String]>, page: super::Page) -> QueryResult<(Vec<Product>, i64)> {
    let query = || {
        let mut q = products::table.into_boxed();
        if let Some(ids) = only {
            q = q.filter(products::id.eq_any(ids.to_vec()));
        }
        q
    };
    crate::db::page_of!(conn, query(), (products::created_at, products::id), Product::as_select(), page)
}
