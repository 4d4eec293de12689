//! Products: device families, the unit of access rights, and hawkBit's tenants.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::{CatalogObject, HandleUpdate, Home, NewHandle, Right, handle_taken, new_id};
use crate::db::{self, AnyConnection};
use crate::domain::ids::{ObjectRef, validate_name, validate_tid};
use crate::domain::rights::{Action, Scope};
use crate::error::{Error, Result};
use crate::service::{Actor, Hub, ListParams, Listing};
use crate::time;

/// The product family, as the doors name it.
pub type Product = db::product::Product;

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

fn product_view(p: Product) -> ProductView {
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

impl CatalogObject for Product {
    const KIND: &'static str = "product";
    const DEPENDENTS: &'static str = "its models, channels and devices";
    const WRITE: Right = Right::InHome(Action::Manage);
    const DELETE: Right = Right::Global(Action::Manage);
    type View = ProductView;
    type Update = ProductUpdate;

    fn find(conn: &mut AnyConnection, id: &str) -> diesel::QueryResult<Option<Self>> {
        db::product::find(conn, id)
    }
    fn find_by_ref(conn: &mut AnyConnection, r: &ObjectRef) -> diesel::QueryResult<Option<Self>> {
        db::product::find_by_ref(conn, r)
    }
    fn remove(conn: &mut AnyConnection, id: &str) -> diesel::QueryResult<usize> {
        db::product::delete(conn, id)
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn home(&self) -> Home<'_> {
        Home::Product(&self.id)
    }
    fn view(self) -> Result<ProductView> {
        Ok(product_view(self))
    }

    fn check(input: &ProductUpdate) -> Result<()> {
        HandleUpdate { tid: input.tid.clone(), name: input.name.clone() }.validate()?;
        if let Some(secs) = input.ddi.as_ref().and_then(|d| d.polling_secs)
            && !(30..=86_399).contains(&secs)
        {
            return Err(Error::invalid(
                "ddi.polling_secs: 30 to 86399 seconds (hawkBit clients cannot read a day or more)",
            ));
        }
        Ok(())
    }

    fn change(conn: &mut AnyConnection, p: &Self, input: &ProductUpdate) -> Result<()> {
        if let Some(tid) = &input.tid {
            check_product_handle(conn, tid, Some(&p.id))?;
        }
        let ddi = input.ddi.as_ref();
        let changes = db::product::ProductChanges {
            tid: input.tid.clone(),
            name: input.name.clone(),
            updated_at: Some(time::now()),
            ddi_target_token_auth: ddi.and_then(|d| d.target_token_auth),
            ddi_gateway_token_auth: ddi.and_then(|d| d.gateway_token_auth),
            ddi_polling_secs: ddi.and_then(|d| d.polling_secs),
            ddi_confirmation_required: ddi.and_then(|d| d.confirmation_required),
        };
        db::product::update(conn, &p.id, &changes).map_err(handle_taken(Self::KIND, input.tid.as_deref()))
    }
}

pub async fn create_product(hub: &Hub, actor: &Actor, input: NewHandle) -> Result<ProductView> {
    actor.require(Action::Manage, Scope::Global)?;
    validate_tid("tid", &input.tid)?;
    validate_name("name", &input.name)?;
    hub.db
        .run(move |conn| {
            check_product_handle(conn, &input.tid, None)?;
            let now = time::now();
            let row = Product {
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
            db::product::insert(conn, &row).map_err(handle_taken(Product::KIND, Some(&row.tid)))?;
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
