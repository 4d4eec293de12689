//! The catalog: products, models, channels, delivery methods and delivery procedures.
//!
//! Every family answers the same questions through [`CatalogObject`] — where an object
//! lives (a product, or shared by all), who may see, change and delete it — so reading,
//! changing and deleting one is written once ([`get`], [`update`], [`delete`]); only what
//! is really a family's own (its fields, its creation, its list filters) lives in its file.

mod delivery;
mod products;
mod scoped;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

pub use delivery::{
    DeliveryMethod, DeliveryProcedure, NewProcedure, ProcedureQuery, ProcedureUpdate, ProcedureView, create_method,
    create_procedure, list_methods, list_procedures,
};
pub use products::{
    DdiSettings, DdiSettingsUpdate, Product, ProductUpdate, ProductView, create_product, list_products,
};
pub use scoped::{Channels, Models, ProductScoped, ScopedQuery, create_scoped, list_scoped};

use super::{Actor, duplicate, find_path_if, resolve_if};
use crate::db::{AnyConnection, write_transaction};
use crate::domain::ids::{ObjectRef, validate_name, validate_tid};
use crate::domain::rights::{Action, Scope};
use crate::error::{Error, Result};
use crate::service::Hub;
use crate::time;

/// How products, models, channels and delivery methods look in the API.
#[derive(Debug, Clone, Serialize)]
pub struct HandleView {
    pub id: String,
    pub tid: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(serialize_with = "time::rfc3339")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "time::rfc3339")]
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewHandle {
    pub tid: String,
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewScoped {
    pub tid: String,
    pub name: String,
    pub product: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandleUpdate {
    pub tid: Option<String>,
    pub name: Option<String>,
}

impl HandleUpdate {
    fn validate(&self) -> Result<()> {
        if let Some(tid) = &self.tid {
            validate_tid("tid", tid)?;
        }
        if let Some(name) = &self.name {
            validate_name("name", name)?;
        }
        Ok(())
    }
}

/// Where a catalog object lives, for who may see it.
pub enum Home<'a> {
    /// In a product: seen by anyone holding a grant there or everywhere.
    Product(&'a str),
    /// Shared by all products: seen by anyone holding a grant at all.
    Shared,
}

/// A right an action on an object needs: in the object's own product, or everywhere.
#[derive(Debug, Clone, Copy)]
pub enum Right {
    InHome(Action),
    Global(Action),
}

/// One family of the catalog.
pub trait CatalogObject: Sized + Send + 'static {
    /// The family's name in messages ("delivery method").
    const KIND: &'static str;
    /// What must go before an object can be deleted (for the 409 message).
    const DEPENDENTS: &'static str;
    /// The right to change an object, and to delete it.
    const WRITE: Right;
    const DELETE: Right;
    type View: Serialize + Send + 'static;
    /// A change as clients send it.
    type Update: Send + 'static;

    fn find(conn: &mut AnyConnection, id: &str) -> diesel::QueryResult<Option<Self>>;
    fn find_by_ref(conn: &mut AnyConnection, r: &ObjectRef) -> diesel::QueryResult<Option<Self>>;
    fn remove(conn: &mut AnyConnection, id: &str) -> diesel::QueryResult<usize>;
    fn id(&self) -> &str;
    fn home(&self) -> Home<'_>;
    fn view(self) -> Result<Self::View>;
    /// Checks a change before anything is looked up.
    fn check(update: &Self::Update) -> Result<()>;
    /// Writes a change to `row` (in a write transaction).
    fn change(conn: &mut AnyConnection, row: &Self, update: &Self::Update) -> Result<()>;
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn visible<T: CatalogObject>(actor: &Actor, row: &T) -> bool {
    match row.home() {
        Home::Product(p) => actor.sees(p),
        Home::Shared => actor.has_any_grant(),
    }
}

/// The catalog object a request body or a list filter names (`"model": "CAFEBABE"`), if the
/// actor sees it: one it does not see is an unknown reference (422), exactly as a missing one.
pub fn named<T: CatalogObject>(conn: &mut AnyConnection, actor: &Actor, field: &str, raw: &str) -> Result<T> {
    resolve_if(conn, T::KIND, field, raw, T::find_by_ref, |row: &T| visible(actor, row))
}

/// [`named`], for an object that must belong to `product_id` (a device's model or channel).
pub fn named_in<T: CatalogObject>(
    conn: &mut AnyConnection,
    actor: &Actor,
    field: &str,
    raw: &str,
    product_id: &str,
) -> Result<T> {
    let found = named::<T>(conn, actor, field, raw)?;
    if !matches!(found.home(), Home::Product(p) if p == product_id) {
        return Err(Error::unprocessable("unknown_reference", format!("{field}: {raw:?} belongs to another product")));
    }
    Ok(found)
}

/// The object a URL names, if the actor sees it, once the actor holds `right` on it.
/// What the actor does not see is not found, exactly as what does not exist.
fn find_for<T: CatalogObject>(conn: &mut AnyConnection, actor: &Actor, raw: &str, right: Right) -> Result<T> {
    let row = find_path_if(conn, T::KIND, raw, T::find_by_ref, |row: &T| visible(actor, row))?;
    match (right, row.home()) {
        (Right::InHome(action), Home::Product(p)) => actor.require_in(action, p)?,
        // a shared object is read by anyone who sees it, changed by global rights
        (Right::InHome(Action::Read), Home::Shared) => {}
        (Right::InHome(action) | Right::Global(action), _) => actor.require(action, Scope::Global)?,
    }
    Ok(row)
}

pub async fn get<T: CatalogObject>(hub: &Hub, actor: &Actor, id: String) -> Result<T::View> {
    let actor = actor.clone();
    hub.db.run(move |conn| find_for::<T>(conn, &actor, &id, Right::InHome(Action::Read))?.view()).await
}

pub async fn update<T: CatalogObject>(hub: &Hub, actor: &Actor, id: String, input: T::Update) -> Result<T::View> {
    T::check(&input)?;
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let row = find_for::<T>(conn, &actor, &id, T::WRITE)?;
                T::change(conn, &row, &input)?;
                T::find(conn, row.id())?.ok_or_else(|| Error::not_found(T::KIND))?.view()
            })
        })
        .await
}

pub async fn delete<T: CatalogObject>(hub: &Hub, actor: &Actor, id: String) -> Result<()> {
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let row = find_for::<T>(conn, &actor, &id, T::DELETE)?;
            T::remove(conn, row.id()).map_err(in_use(T::KIND, T::DEPENDENTS))?;
            Ok(())
        })
        .await
}

/// A foreign-key refusal on delete, explained.
fn in_use(kind: &'static str, what: &'static str) -> impl FnOnce(diesel::result::Error) -> Error {
    move |e| match Error::from(e) {
        Error::Conflict { code: "in_use", .. } => {
            Error::conflict("in_use", format!("the {kind} is still in use; delete or move {what} first"))
        }
        other => other,
    }
}

/// A unique-handle violation on insert or update, explained.
fn handle_taken(kind: &'static str, tid: Option<&str>) -> impl FnOnce(diesel::result::Error) -> Error {
    let tid = tid.unwrap_or_default().to_owned();
    move |e| duplicate(kind, "tid", &tid)(Error::from(e))
}
