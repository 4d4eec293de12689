//! Models and channels: handles inside a product, with the same shape and rules, served by
//! one set of functions over their own tables (`db::product_scoped_table!`).

use serde::Deserialize;

use super::{CatalogObject, HandleUpdate, HandleView, Home, NewScoped, Product, Right, handle_taken, named, new_id};
use crate::db::{self, AnyConnection, Page};
use crate::domain::ids::{ObjectRef, validate_name, validate_tid};
use crate::domain::rights::Action;
use crate::error::Result;
use crate::service::{Actor, Hub, ListParams, Listing};
use crate::time;

/// The product-scoped families, as the doors name them.
pub type Models = db::model::Model;
pub type Channels = db::channel::Channel;

#[derive(Debug, Default, Deserialize)]
pub struct ScopedQuery {
    pub product: Option<String>,
    #[serde(flatten)]
    pub list: ListParams,
}

/// What models and channels have beyond [`CatalogObject`]: making one and listing them.
pub trait ProductScoped: CatalogObject<View = HandleView, Update = HandleUpdate> {
    fn new_row(tid: String, name: String, product_id: String) -> Self;
    fn insert(&self, conn: &mut AnyConnection) -> diesel::QueryResult<()>;
    fn list(
        conn: &mut AnyConnection,
        product: Option<&str>,
        only: Option<&[String]>,
        page: Page,
    ) -> diesel::QueryResult<(Vec<Self>, i64)>;
}

macro_rules! product_scoped {
    ($row:ty, $module:ident, $changes:ident, $kind:literal, $dependents:literal) => {
        impl CatalogObject for $row {
            const KIND: &'static str = $kind;
            const DEPENDENTS: &'static str = $dependents;
            const WRITE: Right = Right::InHome(Action::Write);
            const DELETE: Right = Right::InHome(Action::Write);
            type View = HandleView;
            type Update = HandleUpdate;

            fn find(conn: &mut AnyConnection, id: &str) -> diesel::QueryResult<Option<Self>> {
                db::$module::find(conn, id)
            }
            fn find_by_ref(conn: &mut AnyConnection, r: &ObjectRef) -> diesel::QueryResult<Option<Self>> {
                db::$module::find_by_ref(conn, r)
            }
            fn remove(conn: &mut AnyConnection, id: &str) -> diesel::QueryResult<usize> {
                db::$module::delete(conn, id)
            }
            fn id(&self) -> &str {
                &self.id
            }
            fn home(&self) -> Home<'_> {
                Home::Product(&self.product_id)
            }
            fn view(self) -> Result<HandleView> {
                Ok(HandleView {
                    id: self.id,
                    tid: self.tid,
                    name: self.name,
                    product: Some(self.product_id),
                    created_at: self.created_at,
                    updated_at: self.updated_at,
                })
            }
            fn check(input: &HandleUpdate) -> Result<()> {
                input.validate()
            }
            fn change(conn: &mut AnyConnection, row: &Self, input: &HandleUpdate) -> Result<()> {
                let changes = db::$module::$changes {
                    tid: input.tid.clone(),
                    name: input.name.clone(),
                    updated_at: Some(time::now()),
                };
                db::$module::update(conn, &row.id, &changes).map_err(handle_taken($kind, input.tid.as_deref()))
            }
        }

        impl ProductScoped for $row {
            fn new_row(tid: String, name: String, product_id: String) -> Self {
                let now = time::now();
                Self { id: new_id(), tid, name, product_id, created_at: now, updated_at: now }
            }
            fn insert(&self, conn: &mut AnyConnection) -> diesel::QueryResult<()> {
                db::$module::insert(conn, self)
            }
            fn list(
                conn: &mut AnyConnection,
                product: Option<&str>,
                only: Option<&[String]>,
                page: Page,
            ) -> diesel::QueryResult<(Vec<Self>, i64)> {
                db::$module::list(conn, product, only, page)
            }
        }
    };
}

product_scoped!(db::model::Model, model, ModelChanges, "model", "its firmware and devices");
product_scoped!(db::channel::Channel, channel, ChannelChanges, "channel", "its firmware and devices");

pub async fn create_scoped<T: ProductScoped>(hub: &Hub, actor: &Actor, input: NewScoped) -> Result<HandleView> {
    validate_tid("tid", &input.tid)?;
    validate_name("name", &input.name)?;
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let product = named::<Product>(conn, &actor, "product", &input.product)?;
            actor.require_in(Action::Write, &product.id)?;
            let row = T::new_row(input.tid.clone(), input.name, product.id);
            row.insert(conn).map_err(handle_taken(T::KIND, Some(&input.tid)))?;
            row.view()
        })
        .await
}

pub async fn list_scoped<T: ProductScoped>(
    hub: &Hub,
    actor: &Actor,
    query: ScopedQuery,
) -> Result<Listing<HandleView>> {
    let page = query.list.page()?;
    let only = actor.products_allowing(Action::Read);
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let product = query.product.as_deref().map(|p| named::<Product>(conn, &actor, "product", p)).transpose()?;
            let (rows, total) = T::list(conn, product.as_ref().map(|p| p.id.as_str()), only.as_deref(), page)?;
            let items = rows.into_iter().map(T::view).collect::<Result<Vec<_>>>()?;
            Ok(Listing::new(items, total, page))
        })
        .await
}
