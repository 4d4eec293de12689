use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::AnyConnection;
use super::schema::channels;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = channels)]
pub struct Channel {
    pub id: String,
    pub tid: String,
    pub name: String,
    pub product_id: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = channels)]
pub struct ChannelChanges {
    pub tid: Option<String>,
    pub name: Option<String>,
    pub updated_at: Option<NaiveDateTime>,
}

crate::db::handle_lookups!(channels, Channel);

pub fn insert(conn: &mut AnyConnection, row: &Channel) -> QueryResult<()> {
    diesel::insert_into(channels::table).values(row).execute(conn).map(drop)
}

pub fn update(conn: &mut AnyConnection, id: &str, changes: &ChannelChanges) -> QueryResult<()> {
    diesel::update(channels::table.find(id)).set(changes).execute(conn).map(drop)
}

pub fn delete(conn: &mut AnyConnection, id: &str) -> QueryResult<usize> {
    diesel::delete(channels::table.find(id)).execute(conn)
}

/// A page of channels, optionally of one product and only in the products a caller may read.
pub fn list(
    conn: &mut AnyConnection,
    product: Option<&str>,
    only: Option<&[String]>,
    page: super::Page,
) -> QueryResult<(Vec<Channel>, i64)> {
    let query = || {
        let mut q = channels::table.into_boxed();
        if let Some(product) = product {
            q = q.filter(channels::product_id.eq(product.to_owned()));
        }
        if let Some(ids) = only {
            q = q.filter(channels::product_id.eq_any(ids.to_vec()));
        }
        q
    };
    let total = query().count().get_result(conn)?;
    let rows = query()
        .order((channels::created_at, channels::id))
        .limit(page.limit)
        .offset(page.offset)
        .select(Channel::as_select())
        .load(conn)?;
    Ok((rows, total))
}
