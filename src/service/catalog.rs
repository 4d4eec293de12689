//! Products, models, channels, delivery methods and delivery procedures.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Actor, ListParams, Listing, duplicate, find_path_if, find_path_seen, resolve, resolve_seen};
use crate::db::{self, AnyConnection, Page, write_transaction};
use crate::domain::ids::{ObjectRef, validate_name, validate_tid};
use crate::domain::procedure::Timeouts;
use crate::domain::rights::{Action, Scope};
use crate::error::{Error, Result};
use crate::pipeline::steps::parse_steps;
use crate::service::Hub;
use crate::time;

/// How products, models, channels and delivery methods look in the API.
#[derive(Debug, Serialize)]
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

#[derive(Debug, Default, Deserialize)]
pub struct ScopedQuery {
    pub product: Option<String>,
    #[serde(flatten)]
    pub list: ListParams,
}

/// A product is in itself (for [`find_path_seen`] and [`resolve_seen`]).
fn product_id(p: &db::product::Product) -> &str {
    &p.id
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---- products ----------------------------------------------------------------------

/// A product, with how its devices may use hawkBit DDI.
#[derive(Debug, Serialize)]
pub struct ProductView {
    pub id: String,
    pub tid: String,
    pub name: String,
    pub ddi: DdiSettings,
    #[serde(serialize_with = "time::rfc3339")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "time::rfc3339")]
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Serialize)]
pub struct DdiSettings {
    /// `Authorization: TargetToken <device token>` (on by default).
    pub target_token_auth: bool,
    /// `Authorization: GatewayToken <API token of a user with the device role here>`.
    pub gateway_token_auth: bool,
    /// The polling interval devices are told (30 to 86399 s).
    pub polling_secs: i32,
    /// New assignments wait for the device's consent (hawkBit confirmation flow).
    pub confirmation_required: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DdiSettingsUpdate {
    pub target_token_auth: Option<bool>,
    pub gateway_token_auth: Option<bool>,
    pub polling_secs: Option<i32>,
    pub confirmation_required: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductUpdate {
    pub tid: Option<String>,
    pub name: Option<String>,
    pub ddi: Option<DdiSettingsUpdate>,
}

fn product_view(p: db::product::Product) -> ProductView {
    ProductView {
        id: p.id,
        tid: p.tid,
        name: p.name,
        ddi: DdiSettings {
            target_token_auth: p.ddi_target_token_auth,
            gateway_token_auth: p.ddi_gateway_token_auth,
            polling_secs: p.ddi_polling_secs,
            confirmation_required: p.ddi_confirmation_required,
        },
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

/// hawkBit's own default polling interval is 5 minutes.
const DEFAULT_POLLING_SECS: i32 = 300;

/// The handle hawkBit devices use as their tenant when they have none of their own; it means
/// the configured default product (`DEVICEHUB_DDI_DEFAULT_PRODUCT`), so no product may take it.
const RESERVED_PRODUCT_HANDLE: &str = "default";

/// A product handle is a hawkBit tenant, and tenants match ignoring case: it must differ from
/// every other product's handle ignoring case, and must not be `default` (the unique index on
/// `lower(tid)` backs this up against a concurrent writer). `except`: the product being renamed.
fn check_product_handle(conn: &mut AnyConnection, tid: &str, except: Option<&str>) -> Result<()> {
    if tid.eq_ignore_ascii_case(RESERVED_PRODUCT_HANDLE) {
        return Err(Error::conflict(
            "reserved_handle",
            format!("tid: {tid:?} is reserved (hawkBit's DEFAULT tenant names the default product)"),
        ));
    }
    if let Some(other) = db::product::find_by_tid_ignoring_case(conn, tid)?
        && Some(other.id.as_str()) != except
    {
        return Err(Error::conflict(
            "already_exists",
            format!("a product with tid {:?} already exists (handles are unique ignoring case)", other.tid),
        ));
    }
    Ok(())
}

pub async fn create_product(hub: &Hub, actor: &Actor, input: NewHandle) -> Result<ProductView> {
    actor.require(Action::Manage, Scope::Global)?;
    validate_tid("tid", &input.tid)?;
    validate_name("name", &input.name)?;
    hub.db
        .run(move |conn| {
            check_product_handle(conn, &input.tid, None)?;
            let now = time::now();
            let row = db::product::Product {
                id: new_id(),
                tid: input.tid,
                name: input.name,
                created_at: now,
                updated_at: now,
                // The same defaults as the migration: target tokens on, gateway tokens off.
                ddi_target_token_auth: true,
                ddi_gateway_token_auth: false,
                ddi_polling_secs: DEFAULT_POLLING_SECS,
                ddi_confirmation_required: false,
            };
            db::product::insert(conn, &row).map_err(Error::from).map_err(duplicate("product", "tid", &row.tid))?;
            Ok(product_view(row))
        })
        .await
}

pub async fn list_products(hub: &Hub, actor: &Actor, params: ListParams) -> Result<Listing<ProductView>> {
    let page = params.page()?;
    let only = actor.products_allowing(Action::Read);
    hub.db
        .run(move |conn| {
            let (rows, total) = db::product::list(conn, only.as_deref(), page)?;
            Ok(Listing::new(rows.into_iter().map(product_view).collect(), total, page))
        })
        .await
}

pub async fn get_product(hub: &Hub, actor: &Actor, id: String) -> Result<ProductView> {
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let p = find_path_seen(conn, &actor, "product", &id, db::product::find_by_ref, product_id)?;
            actor.require_in(Action::Read, &p.id)?;
            Ok(product_view(p))
        })
        .await
}

pub async fn update_product(hub: &Hub, actor: &Actor, id: String, input: ProductUpdate) -> Result<ProductView> {
    HandleUpdate { tid: input.tid.clone(), name: input.name.clone() }.validate()?;
    let ddi = input.ddi.unwrap_or_default();
    if let Some(secs) = ddi.polling_secs
        && !(30..=86_399).contains(&secs)
    {
        return Err(Error::invalid(
            "ddi.polling_secs: 30 to 86399 seconds (hawkBit clients cannot read a day or more)",
        ));
    }
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let p = find_path_seen(conn, &actor, "product", &id, db::product::find_by_ref, product_id)?;
            actor.require_in(Action::Manage, &p.id)?;
            if let Some(tid) = &input.tid {
                check_product_handle(conn, tid, Some(&p.id))?;
            }
            let changes = db::product::ProductChanges {
                tid: input.tid.clone(),
                name: input.name,
                updated_at: Some(time::now()),
                ddi_target_token_auth: ddi.target_token_auth,
                ddi_gateway_token_auth: ddi.gateway_token_auth,
                ddi_polling_secs: ddi.polling_secs,
                ddi_confirmation_required: ddi.confirmation_required,
            };
            db::product::update(conn, &p.id, &changes).map_err(Error::from).map_err(duplicate(
                "product",
                "tid",
                input.tid.as_deref().unwrap_or_default(),
            ))?;
            Ok(product_view(db::product::find(conn, &p.id)?.ok_or_else(|| Error::not_found("product"))?))
        })
        .await
}

pub async fn delete_product(hub: &Hub, actor: &Actor, id: String) -> Result<()> {
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let p = find_path_seen(conn, &actor, "product", &id, db::product::find_by_ref, product_id)?;
            actor.require(Action::Manage, Scope::Global)?;
            db::product::delete(conn, &p.id).map_err(in_use("product", "its models, channels and devices"))?;
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

// ---- models and channels: handles inside a product -----------------------------------

/// Models and channels have the same shape and rules; this trait lets one set of service
/// functions serve both, over their own tables.
pub trait ProductScoped: Sized + Send + 'static {
    const KIND: &'static str;
    /// What must go before the object can be deleted (for the 409 message).
    const DEPENDENTS: &'static str;
    fn new_row(tid: String, name: String, product_id: String) -> Self;
    fn product_id(&self) -> &str;
    fn id(&self) -> &str;
    fn find(conn: &mut AnyConnection, id: &str) -> diesel::QueryResult<Option<Self>>;
    fn find_by_ref(conn: &mut AnyConnection, r: &ObjectRef) -> diesel::QueryResult<Option<Self>>;
    fn insert(&self, conn: &mut AnyConnection) -> diesel::QueryResult<()>;
    fn update(conn: &mut AnyConnection, id: &str, input: &HandleUpdate, now: NaiveDateTime) -> diesel::QueryResult<()>;
    fn delete(conn: &mut AnyConnection, id: &str) -> diesel::QueryResult<usize>;
    fn list(
        conn: &mut AnyConnection,
        product: Option<&str>,
        only: Option<&[String]>,
        page: Page,
    ) -> diesel::QueryResult<(Vec<Self>, i64)>;
    fn view(self) -> HandleView;
}

macro_rules! product_scoped {
    ($row:ty, $module:ident, $changes:ident, $kind:literal, $dependents:literal) => {
        impl ProductScoped for $row {
            const KIND: &'static str = $kind;
            const DEPENDENTS: &'static str = $dependents;
            fn new_row(tid: String, name: String, product_id: String) -> Self {
                let now = time::now();
                Self { id: new_id(), tid, name, product_id, created_at: now, updated_at: now }
            }
            fn product_id(&self) -> &str {
                &self.product_id
            }
            fn id(&self) -> &str {
                &self.id
            }
            fn find(conn: &mut AnyConnection, id: &str) -> diesel::QueryResult<Option<Self>> {
                db::$module::find(conn, id)
            }
            fn find_by_ref(conn: &mut AnyConnection, r: &ObjectRef) -> diesel::QueryResult<Option<Self>> {
                db::$module::find_by_ref(conn, r)
            }
            fn insert(&self, conn: &mut AnyConnection) -> diesel::QueryResult<()> {
                db::$module::insert(conn, self)
            }
            fn update(
                conn: &mut AnyConnection,
                id: &str,
                input: &HandleUpdate,
                now: NaiveDateTime,
            ) -> diesel::QueryResult<()> {
                let changes =
                    db::$module::$changes { tid: input.tid.clone(), name: input.name.clone(), updated_at: Some(now) };
                db::$module::update(conn, id, &changes)
            }
            fn delete(conn: &mut AnyConnection, id: &str) -> diesel::QueryResult<usize> {
                db::$module::delete(conn, id)
            }
            fn list(
                conn: &mut AnyConnection,
                product: Option<&str>,
                only: Option<&[String]>,
                page: Page,
            ) -> diesel::QueryResult<(Vec<Self>, i64)> {
                db::$module::list(conn, product, only, page)
            }
            fn view(self) -> HandleView {
                HandleView {
                    id: self.id,
                    tid: self.tid,
                    name: self.name,
                    product: Some(self.product_id),
                    created_at: self.created_at,
                    updated_at: self.updated_at,
                }
            }
        }
    };
}

product_scoped!(db::model::Model, model, ModelChanges, "model", "its firmware and devices");
product_scoped!(db::channel::Channel, channel, ChannelChanges, "channel", "its firmware and devices");

/// The product-scoped families, as the doors name them.
pub type Models = db::model::Model;
pub type Channels = db::channel::Channel;

pub async fn create_scoped<T: ProductScoped>(hub: &Hub, actor: &Actor, input: NewScoped) -> Result<HandleView> {
    validate_tid("tid", &input.tid)?;
    validate_name("name", &input.name)?;
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let product =
                resolve_seen(conn, &actor, "product", "product", &input.product, db::product::find_by_ref, product_id)?;
            actor.require_in(Action::Write, &product.id)?;
            let row = T::new_row(input.tid.clone(), input.name, product.id);
            row.insert(conn).map_err(Error::from).map_err(duplicate(T::KIND, "tid", &input.tid))?;
            Ok(row.view())
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
            let product = query
                .product
                .as_deref()
                .map(|p| resolve_seen(conn, &actor, "product", "product", p, db::product::find_by_ref, product_id))
                .transpose()?;
            let (rows, total) = T::list(conn, product.as_ref().map(|p| p.id.as_str()), only.as_deref(), page)?;
            Ok(Listing::new(rows.into_iter().map(T::view).collect(), total, page))
        })
        .await
}

pub async fn get_scoped<T: ProductScoped>(hub: &Hub, actor: &Actor, id: String) -> Result<HandleView> {
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let row = find_path_seen(conn, &actor, T::KIND, &id, T::find_by_ref, T::product_id)?;
            actor.require_in(Action::Read, row.product_id())?;
            Ok(row.view())
        })
        .await
}

pub async fn update_scoped<T: ProductScoped>(
    hub: &Hub,
    actor: &Actor,
    id: String,
    input: HandleUpdate,
) -> Result<HandleView> {
    input.validate()?;
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let row = find_path_seen(conn, &actor, T::KIND, &id, T::find_by_ref, T::product_id)?;
            actor.require_in(Action::Write, row.product_id())?;
            T::update(conn, row.id(), &input, time::now()).map_err(Error::from).map_err(duplicate(
                T::KIND,
                "tid",
                input.tid.as_deref().unwrap_or_default(),
            ))?;
            Ok(T::find(conn, row.id())?.ok_or_else(|| Error::not_found(T::KIND))?.view())
        })
        .await
}

pub async fn delete_scoped<T: ProductScoped>(hub: &Hub, actor: &Actor, id: String) -> Result<()> {
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let row = find_path_seen(conn, &actor, T::KIND, &id, T::find_by_ref, T::product_id)?;
            actor.require_in(Action::Write, row.product_id())?;
            T::delete(conn, row.id()).map_err(in_use(T::KIND, T::DEPENDENTS))?;
            Ok(())
        })
        .await
}

// ---- delivery methods --------------------------------------------------------------

/// Delivery methods and procedures are shared by all products: anyone with a grant reads
/// them, a global maintainer or admin changes them.
fn require_global_read(actor: &Actor) -> Result<()> {
    if actor.has_any_grant() {
        Ok(())
    } else {
        Err(Error::forbidden(format!("user '{}' has no rights at all", actor.username)))
    }
}

fn method_view(m: db::delivery::DeliveryMethod) -> HandleView {
    HandleView { id: m.id, tid: m.tid, name: m.name, product: None, created_at: m.created_at, updated_at: m.updated_at }
}

pub async fn create_method(hub: &Hub, actor: &Actor, input: NewHandle) -> Result<HandleView> {
    actor.require(Action::Write, Scope::Global)?;
    validate_tid("tid", &input.tid)?;
    validate_name("name", &input.name)?;
    hub.db
        .run(move |conn| {
            let now = time::now();
            let row = db::delivery::DeliveryMethod {
                id: new_id(),
                tid: input.tid,
                name: input.name,
                created_at: now,
                updated_at: now,
            };
            db::delivery::methods::insert(conn, &row).map_err(Error::from).map_err(duplicate(
                "delivery method",
                "tid",
                &row.tid,
            ))?;
            Ok(method_view(row))
        })
        .await
}

pub async fn list_methods(hub: &Hub, actor: &Actor, params: ListParams) -> Result<Listing<HandleView>> {
    require_global_read(actor)?;
    let page = params.page()?;
    hub.db
        .run(move |conn| {
            let (rows, total) = db::delivery::methods::list(conn, page)?;
            Ok(Listing::new(rows.into_iter().map(method_view).collect(), total, page))
        })
        .await
}

pub async fn get_method(hub: &Hub, actor: &Actor, id: String) -> Result<HandleView> {
    let sees = actor.has_any_grant();
    hub.db
        .run(move |conn| {
            Ok(method_view(find_path_if(conn, "delivery method", &id, db::delivery::methods::find_by_ref, |_| sees)?))
        })
        .await
}

pub async fn update_method(hub: &Hub, actor: &Actor, id: String, input: HandleUpdate) -> Result<HandleView> {
    input.validate()?;
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let sees = actor.has_any_grant();
            let m = find_path_if(conn, "delivery method", &id, db::delivery::methods::find_by_ref, |_| sees)?;
            actor.require(Action::Write, Scope::Global)?;
            let changes = db::delivery::DeliveryMethodChanges {
                tid: input.tid.clone(),
                name: input.name,
                updated_at: Some(time::now()),
            };
            db::delivery::methods::update(conn, &m.id, &changes).map_err(Error::from).map_err(duplicate(
                "delivery method",
                "tid",
                input.tid.as_deref().unwrap_or_default(),
            ))?;
            Ok(method_view(
                db::delivery::methods::find(conn, &m.id)?.ok_or_else(|| Error::not_found("delivery method"))?,
            ))
        })
        .await
}

pub async fn delete_method(hub: &Hub, actor: &Actor, id: String) -> Result<()> {
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let sees = actor.has_any_grant();
            let m = find_path_if(conn, "delivery method", &id, db::delivery::methods::find_by_ref, |_| sees)?;
            actor.require(Action::Write, Scope::Global)?;
            db::delivery::methods::delete(conn, &m.id).map_err(in_use("delivery method", "its delivery procedures"))?;
            Ok(())
        })
        .await
}

// ---- delivery procedures -----------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProcedure {
    pub tid: String,
    pub name: String,
    pub delivery_method: String,
    /// Pipeline steps; empty means "the image as it is".
    #[serde(default = "empty_list")]
    pub steps: Value,
    /// Whether the device must confirm (`created` → `success`/`fail`).
    #[serde(default)]
    pub confirm: bool,
    /// Per-state lifetimes in seconds; unset states use the server defaults.
    #[serde(default = "empty_object")]
    pub timeouts: Value,
}

fn empty_list() -> Value {
    Value::Array(Vec::new())
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcedureUpdate {
    pub tid: Option<String>,
    pub name: Option<String>,
    pub delivery_method: Option<String>,
    pub steps: Option<Value>,
    pub confirm: Option<bool>,
    pub timeouts: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ProcedureQuery {
    pub delivery_method: Option<String>,
    #[serde(flatten)]
    pub list: ListParams,
}

#[derive(Debug, Serialize)]
pub struct ProcedureView {
    pub id: String,
    pub tid: String,
    pub name: String,
    pub delivery_method: String,
    pub steps: Value,
    pub confirm: bool,
    /// What the procedure overrides.
    pub timeouts: Value,
    /// What sessions of this procedure will use (overrides filled from the defaults).
    pub effective_timeouts: Timeouts,
    #[serde(serialize_with = "time::rfc3339")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "time::rfc3339")]
    pub updated_at: NaiveDateTime,
}

fn procedure_view(p: db::delivery::DeliveryProcedure) -> Result<ProcedureView> {
    let steps: Value = serde_json::from_str(&p.steps).map_err(|e| Error::internal(format!("stored steps: {e}")))?;
    let timeouts: Value =
        serde_json::from_str(&p.timeouts).map_err(|e| Error::internal(format!("stored timeouts: {e}")))?;
    let effective = Timeouts::parse(&timeouts)?.or(Timeouts::server_defaults());
    Ok(ProcedureView {
        id: p.id,
        tid: p.tid,
        name: p.name,
        delivery_method: p.delivery_method_id,
        steps,
        confirm: p.confirm,
        timeouts,
        effective_timeouts: effective,
        created_at: p.created_at,
        updated_at: p.updated_at,
    })
}

/// Validates steps and timeouts and returns them as the JSON text to store.
fn procedure_json(steps: &Value, timeouts: &Value) -> Result<(String, String)> {
    let steps = parse_steps(steps)?;
    let timeouts = Timeouts::parse(timeouts)?;
    let steps = serde_json::to_string(&steps).map_err(|e| Error::internal(e.to_string()))?;
    let timeouts = serde_json::to_string(&timeouts).map_err(|e| Error::internal(e.to_string()))?;
    Ok((steps, timeouts))
}

pub async fn create_procedure(hub: &Hub, actor: &Actor, input: NewProcedure) -> Result<ProcedureView> {
    actor.require(Action::Write, Scope::Global)?;
    validate_tid("tid", &input.tid)?;
    validate_name("name", &input.name)?;
    let (steps, timeouts) = procedure_json(&input.steps, &input.timeouts)?;
    hub.db
        .run(move |conn| {
            let method = resolve(
                conn,
                "delivery method",
                "delivery_method",
                &input.delivery_method,
                db::delivery::methods::find_by_ref,
            )?;
            let now = time::now();
            let row = db::delivery::DeliveryProcedure {
                id: new_id(),
                tid: input.tid,
                name: input.name,
                delivery_method_id: method.id,
                steps,
                confirm: input.confirm,
                timeouts,
                created_at: now,
                updated_at: now,
            };
            db::delivery::procedures::insert(conn, &row).map_err(Error::from).map_err(duplicate(
                "delivery procedure",
                "tid",
                &row.tid,
            ))?;
            procedure_view(row)
        })
        .await
}

pub async fn list_procedures(hub: &Hub, actor: &Actor, query: ProcedureQuery) -> Result<Listing<ProcedureView>> {
    require_global_read(actor)?;
    let page = query.list.page()?;
    hub.db
        .run(move |conn| {
            let method = query
                .delivery_method
                .as_deref()
                .map(|m| resolve(conn, "delivery method", "delivery_method", m, db::delivery::methods::find_by_ref))
                .transpose()?;
            let (rows, total) = db::delivery::procedures::list(conn, method.as_ref().map(|m| m.id.as_str()), page)?;
            let items = rows.into_iter().map(procedure_view).collect::<Result<Vec<_>>>()?;
            Ok(Listing::new(items, total, page))
        })
        .await
}

pub async fn get_procedure(hub: &Hub, actor: &Actor, id: String) -> Result<ProcedureView> {
    let sees = actor.has_any_grant();
    hub.db
        .run(move |conn| {
            procedure_view(find_path_if(
                conn,
                "delivery procedure",
                &id,
                db::delivery::procedures::find_by_ref,
                |_| sees,
            )?)
        })
        .await
}

pub async fn update_procedure(hub: &Hub, actor: &Actor, id: String, input: ProcedureUpdate) -> Result<ProcedureView> {
    HandleUpdate { tid: input.tid.clone(), name: input.name.clone() }.validate()?;
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let sees = actor.has_any_grant();
                let p = find_path_if(conn, "delivery procedure", &id, db::delivery::procedures::find_by_ref, |_| sees)?;
                actor.require(Action::Write, Scope::Global)?;
                let method = input
                    .delivery_method
                    .as_deref()
                    .map(|m| resolve(conn, "delivery method", "delivery_method", m, db::delivery::methods::find_by_ref))
                    .transpose()?;
                let current_steps: Value =
                    serde_json::from_str(&p.steps).map_err(|e| Error::internal(e.to_string()))?;
                let current_timeouts: Value =
                    serde_json::from_str(&p.timeouts).map_err(|e| Error::internal(e.to_string()))?;
                let (steps, timeouts) = procedure_json(
                    input.steps.as_ref().unwrap_or(&current_steps),
                    input.timeouts.as_ref().unwrap_or(&current_timeouts),
                )?;
                let changes = db::delivery::DeliveryProcedureChanges {
                    tid: input.tid.clone(),
                    name: input.name.clone(),
                    delivery_method_id: method.map(|m| m.id),
                    steps: Some(steps),
                    confirm: input.confirm,
                    timeouts: Some(timeouts),
                    updated_at: Some(time::now()),
                };
                db::delivery::procedures::update(conn, &p.id, &changes).map_err(Error::from).map_err(duplicate(
                    "delivery procedure",
                    "tid",
                    input.tid.as_deref().unwrap_or_default(),
                ))?;
                procedure_view(
                    db::delivery::procedures::find(conn, &p.id)?
                        .ok_or_else(|| Error::not_found("delivery procedure"))?,
                )
            })
        })
        .await
}

pub async fn delete_procedure(hub: &Hub, actor: &Actor, id: String) -> Result<()> {
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let sees = actor.has_any_grant();
            let p = find_path_if(conn, "delivery procedure", &id, db::delivery::procedures::find_by_ref, |_| sees)?;
            actor.require(Action::Write, Scope::Global)?;
            db::delivery::procedures::delete(conn, &p.id).map_err(in_use("delivery procedure", "its sessions"))?;
            Ok(())
        })
        .await
}
