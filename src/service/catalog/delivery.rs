//! Delivery methods and procedures: shared by all products. Anyone holding a grant reads
//! them; a global maintainer or admin changes them.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CatalogObject, HandleUpdate, HandleView, Home, NewHandle, Right, handle_taken, new_id};
use crate::db::{self, AnyConnection};
use crate::domain::ids::{ObjectRef, validate_name, validate_tid};
use crate::domain::procedure::Timeouts;
use crate::domain::rights::{Action, Scope};
use crate::error::{Error, Result};
use crate::pipeline::steps::{parse_steps, signing_keys};
use crate::service::{Actor, Hub, ListParams, Listing, resolve};
use crate::time;

/// The shared families, as the doors name them.
pub type DeliveryMethod = db::delivery::DeliveryMethod;
pub type DeliveryProcedure = db::delivery::DeliveryProcedure;

fn require_global_read(actor: &Actor) -> Result<()> {
    if actor.has_any_grant() {
        Ok(())
    } else {
        Err(Error::forbidden(format!("user '{}' has no rights at all", actor.username)))
    }
}

// ---- delivery methods ----------------------------------------------------------------

impl CatalogObject for DeliveryMethod {
    const KIND: &'static str = "delivery method";
    const DEPENDENTS: &'static str = "its delivery procedures";
    const WRITE: Right = Right::Global(Action::Write);
    const DELETE: Right = Right::Global(Action::Write);
    type View = HandleView;
    type Update = HandleUpdate;

    fn find(conn: &mut AnyConnection, id: &str) -> diesel::QueryResult<Option<Self>> {
        db::delivery::methods::find(conn, id)
    }
    fn find_by_ref(conn: &mut AnyConnection, r: &ObjectRef) -> diesel::QueryResult<Option<Self>> {
        db::delivery::methods::find_by_ref(conn, r)
    }
    fn remove(conn: &mut AnyConnection, id: &str) -> diesel::QueryResult<usize> {
        db::delivery::methods::delete(conn, id)
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn home(&self) -> Home<'_> {
        Home::Shared
    }
    fn view(self) -> Result<HandleView> {
        Ok(HandleView {
            id: self.id,
            tid: self.tid,
            name: self.name,
            product: None,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
    fn check(input: &HandleUpdate) -> Result<()> {
        input.validate()
    }
    fn change(conn: &mut AnyConnection, m: &Self, input: &HandleUpdate) -> Result<()> {
        let changes = db::delivery::DeliveryMethodChanges {
            tid: input.tid.clone(),
            name: input.name.clone(),
            updated_at: Some(time::now()),
        };
        db::delivery::methods::update(conn, &m.id, &changes).map_err(handle_taken(Self::KIND, input.tid.as_deref()))
    }
}

pub async fn create_method(hub: &Hub, actor: &Actor, input: NewHandle) -> Result<HandleView> {
    actor.require(Action::Write, Scope::Global)?;
    validate_tid("tid", &input.tid)?;
    validate_name("name", &input.name)?;
    hub.db
        .run(move |conn| {
            let now = time::now();
            let row =
                DeliveryMethod { id: new_id(), tid: input.tid, name: input.name, created_at: now, updated_at: now };
            db::delivery::methods::insert(conn, &row).map_err(handle_taken(DeliveryMethod::KIND, Some(&row.tid)))?;
            row.view()
        })
        .await
}

pub async fn list_methods(hub: &Hub, actor: &Actor, params: ListParams) -> Result<Listing<HandleView>> {
    require_global_read(actor)?;
    let page = params.page()?;
    hub.db
        .run(move |conn| {
            let (rows, total) = db::delivery::methods::list(conn, page)?;
            let items = rows.into_iter().map(CatalogObject::view).collect::<Result<Vec<_>>>()?;
            Ok(Listing::new(items, total, page))
        })
        .await
}

// ---- delivery procedures -------------------------------------------------------------

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

/// Validates steps and timeouts (and that the signing keys they name exist) and returns
/// them as the JSON text to store.
fn procedure_json(conn: &mut AnyConnection, steps: &Value, timeouts: &Value) -> Result<(String, String)> {
    let steps = parse_steps(steps)?;
    crate::service::signing_keys::check_exist(conn, &signing_keys(&steps))?;
    let timeouts = Timeouts::parse(timeouts)?;
    let steps = serde_json::to_string(&steps).map_err(|e| Error::internal(e.to_string()))?;
    let timeouts = serde_json::to_string(&timeouts).map_err(|e| Error::internal(e.to_string()))?;
    Ok((steps, timeouts))
}

fn stored_json(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| Error::internal(format!("stored {what}: {e}")))
}

fn find_method(conn: &mut AnyConnection, raw: &str) -> Result<DeliveryMethod> {
    resolve(conn, "delivery method", "delivery_method", raw, db::delivery::methods::find_by_ref)
}

impl CatalogObject for DeliveryProcedure {
    const KIND: &'static str = "delivery procedure";
    const DEPENDENTS: &'static str = "its sessions";
    const WRITE: Right = Right::Global(Action::Write);
    const DELETE: Right = Right::Global(Action::Write);
    type View = ProcedureView;
    type Update = ProcedureUpdate;

    fn find(conn: &mut AnyConnection, id: &str) -> diesel::QueryResult<Option<Self>> {
        db::delivery::procedures::find(conn, id)
    }
    fn find_by_ref(conn: &mut AnyConnection, r: &ObjectRef) -> diesel::QueryResult<Option<Self>> {
        db::delivery::procedures::find_by_ref(conn, r)
    }
    fn remove(conn: &mut AnyConnection, id: &str) -> diesel::QueryResult<usize> {
        db::delivery::procedures::delete(conn, id)
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn home(&self) -> Home<'_> {
        Home::Shared
    }
    fn view(self) -> Result<ProcedureView> {
        let steps = stored_json(&self.steps, "steps")?;
        let timeouts = stored_json(&self.timeouts, "timeouts")?;
        let effective = Timeouts::parse(&timeouts)?.or(Timeouts::server_defaults());
        Ok(ProcedureView {
            id: self.id,
            tid: self.tid,
            name: self.name,
            delivery_method: self.delivery_method_id,
            steps,
            confirm: self.confirm,
            timeouts,
            effective_timeouts: effective,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
    fn check(input: &ProcedureUpdate) -> Result<()> {
        HandleUpdate { tid: input.tid.clone(), name: input.name.clone() }.validate()
    }
    fn change(conn: &mut AnyConnection, p: &Self, input: &ProcedureUpdate) -> Result<()> {
        let method = input.delivery_method.as_deref().map(|m| find_method(conn, m)).transpose()?;
        let (steps, timeouts) = procedure_json(
            conn,
            input.steps.as_ref().unwrap_or(&stored_json(&p.steps, "steps")?),
            input.timeouts.as_ref().unwrap_or(&stored_json(&p.timeouts, "timeouts")?),
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
        db::delivery::procedures::update(conn, &p.id, &changes).map_err(handle_taken(Self::KIND, input.tid.as_deref()))
    }
}

pub async fn create_procedure(hub: &Hub, actor: &Actor, input: NewProcedure) -> Result<ProcedureView> {
    actor.require(Action::Write, Scope::Global)?;
    validate_tid("tid", &input.tid)?;
    validate_name("name", &input.name)?;
    hub.db
        .run(move |conn| {
            let (steps, timeouts) = procedure_json(conn, &input.steps, &input.timeouts)?;
            let method = find_method(conn, &input.delivery_method)?;
            let now = time::now();
            let row = DeliveryProcedure {
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
            db::delivery::procedures::insert(conn, &row)
                .map_err(handle_taken(DeliveryProcedure::KIND, Some(&row.tid)))?;
            row.view()
        })
        .await
}

pub async fn list_procedures(hub: &Hub, actor: &Actor, query: ProcedureQuery) -> Result<Listing<ProcedureView>> {
    require_global_read(actor)?;
    let page = query.list.page()?;
    hub.db
        .run(move |conn| {
            let method = query.delivery_method.as_deref().map(|m| find_method(conn, m)).transpose()?;
            let (rows, total) = db::delivery::procedures::list(conn, method.as_ref().map(|m| m.id.as_str()), page)?;
            let items = rows.into_iter().map(CatalogObject::view).collect::<Result<Vec<_>>>()?;
            Ok(Listing::new(items, total, page))
        })
        .await
}
