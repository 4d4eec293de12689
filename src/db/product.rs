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
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = products)]
pub struct ProductChanges {
    pub tid: Option<String>,
    pub name: Option<String>,
    pub updated_at: Option<NaiveDateTime>,
}

crate::db::handle_lookups!(products, Product);

pub fn insert(conn: &mut AnyConnection, row: &Product) -> QueryResult<()> {
    diesel::insert_into(products::table).values(row).execute(conn).map(drop)
}

pub fn update(conn: &mut AnyConnection, id: &str, changes: &ProductChanges) -> QueryResult<()> {
    diesel::update(products::table.find(id)).set(changes).execute(conn).map(drop)
}

pub fn delete(conn: &mut AnyConnection, id: &str) -> QueryResult<usize> {
    diesel::delete(products::table.find(id)).execute(conn)
}

/// A page of products, optionally only those in `only` (the products a caller may read).
pub fn list(conn: &mut AnyConnection, only: Option<&[String]>, page: super::Page) -> QueryResult<(Vec<Product>, i64)> {
    let query = || {
        let mut q = products::table.into_boxed();
        if let Some(ids) = only {
            q = q.filter(products::id.eq_any(ids.to_vec()));
        }
        q
    };
    let total = query().count().get_result(conn)?;
    let rows = query()
        .order((products::created_at, products::id))
        .limit(page.limit)
        .offset(page.offset)
        .select(Product::as_select())
        .load(conn)?;
    Ok((rows, total))
}
