use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::AnyConnection;
use super::schema::grants;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = grants)]
pub struct GrantRow {
    pub id: String,
    pub user_id: String,
    pub product_id: Option<String>,
    pub role: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Default)]
pub struct Filter {
    pub user: Option<String>,
    pub product: Option<String>,
    /// Only grants on these products (a product admin's view); `None`: all.
    pub products: Option<Vec<String>>,
}

pub fn find(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<GrantRow>> {
    grants::table.find(id).select(GrantRow::as_select()).get_result(conn).optional()
}

pub fn for_user(conn: &mut AnyConnection, user_id: &str) -> QueryResult<Vec<GrantRow>> {
    grants::table.filter(grants::user_id.eq(user_id)).select(GrantRow::as_select()).load(conn)
}

crate::db::row_writes!(grants, GrantRow);

/// Whether the user already holds this role on this scope (NULL product = everywhere;
/// SQL UNIQUE treats NULLs as distinct, so this is checked here).
pub fn exists(conn: &mut AnyConnection, user_id: &str, product_id: Option<&str>, role: &str) -> QueryResult<bool> {
    let mut q = grants::table.filter(grants::user_id.eq(user_id)).filter(grants::role.eq(role)).into_boxed();
    q = match product_id {
        Some(p) => q.filter(grants::product_id.eq(p.to_owned())),
        None => q.filter(grants::product_id.is_null()),
    };
    Ok(q.count().get_result::<i64>(conn)? > 0)
}

pub fn list(conn: &mut AnyConnection, filter: &Filter, page: super::Page) -> QueryResult<(Vec<GrantRow>, i64)> {
    let query = || {
        let mut q = grants::table.into_boxed();
        if let Some(u) = &filter.user {
            q = q.filter(grants::user_id.eq(u.clone()));
        }
        if let Some(p) = &filter.product {
            q = q.filter(grants::product_id.eq(p.clone()));
        }
        if let Some(ids) = &filter.products {
            q = q.filter(grants::product_id.eq_any(ids.clone()));
        }
        q
    };
    crate::db::page_of!(conn, query(), (grants::created_at, grants::id), GrantRow::as_select(), page)
}

/// (grant id, user id) of every grant of `role` everywhere held by an active user.
pub fn active_global(conn: &mut AnyConnection, role: &str) -> QueryResult<Vec<(String, String)>> {
    grants::table
        .inner_join(super::schema::users::table)
        .filter(grants::role.eq(role))
        .filter(grants::product_id.is_null())
        .filter(super::schema::users::active.eq(true))
        .select((grants::id, grants::user_id))
        .load(conn)
}
