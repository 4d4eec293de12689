use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::AnyConnection;
use super::schema::models;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = models)]
pub struct Model {
    pub id: String,
    pub tid: String,
    pub name: String,
    pub product_id: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = models)]
pub struct ModelChanges {
    pub tid: Option<String>,
    pub name: Option<String>,
    pub updated_at: Option<NaiveDateTime>,
}

crate::db::handle_lookups!(models, Model);

pub fn insert(conn: &mut AnyConnection, row: &Model) -> QueryResult<()> {
    diesel::insert_into(models::table).values(row).execute(conn).map(drop)
}

pub fn update(conn: &mut AnyConnection, id: &str, changes: &ModelChanges) -> QueryResult<()> {
    diesel::update(models::table.find(id)).set(changes).execute(conn).map(drop)
}

pub fn delete(conn: &mut AnyConnection, id: &str) -> QueryResult<usize> {
    diesel::delete(models::table.find(id)).execute(conn)
}

/// A page of models, optionally of one product and only in the products a caller may read.
pub fn list(
    conn: &mut AnyConnection,
    product: Option<&str>,
    only: Option<&[String]>,
    page: super::Page,
) -> QueryResult<(Vec<Model>, i64)> {
    let query = || {
        let mut q = models::table.into_boxed();
        if let Some(product) = product {
            q = q.filter(models::product_id.eq(product.to_owned()));
        }
        if let Some(ids) = only {
            q = q.filter(models::product_id.eq_any(ids.to_vec()));
        }
        q
    };
    let total = query().count().get_result(conn)?;
    let rows = query()
        .order((models::created_at, models::id))
        .limit(page.limit)
        .offset(page.offset)
        .select(Model::as_select())
        .load(conn)?;
    Ok((rows, total))
}
