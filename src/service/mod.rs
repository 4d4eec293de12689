//! Use-cases shared by every door. The only callers of `db::*`; rights are checked here,
//! once, so the REST API, the UI and the device protocols cannot disagree.

pub mod action;
pub mod assignments;
pub mod auth;
pub mod catalog;
pub mod ddi;
pub mod devices;
pub mod dmf;
pub mod firmware;
pub mod hub;
pub mod jobs;
pub mod links;
pub mod metrics;
pub mod orphans;
pub mod outbox;
pub mod overview;
pub mod people;
pub mod pipeline;
pub mod readiness;
pub mod recent;
pub mod scrub;
pub mod sealing;
pub mod session;
pub mod signing_keys;
pub mod store_identity;
pub mod tally;
pub mod twin;
pub mod web_sessions;

pub use hub::Hub;

use serde::{Deserialize, Deserializer, Serialize};

use crate::db::{AnyConnection, Page};
use crate::domain::ids::ObjectRef;
use crate::domain::rights::{self, Action, Grant, Scope};
use crate::error::{Error, Result};

/// Who is calling: an authenticated user and their grants.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: String,
    pub username: String,
    pub grants: Vec<Grant>,
}

impl Actor {
    pub fn can(&self, action: Action, scope: Scope) -> bool {
        rights::allows(&self.grants, action, scope)
    }

    /// `Ok` if allowed, else 403 saying what was missing.
    pub fn require(&self, action: Action, scope: Scope) -> Result<()> {
        if self.can(action, scope) {
            return Ok(());
        }
        let what = match action {
            Action::Read => "read",
            Action::Write => "change",
            Action::Manage => "manage",
            Action::RequestUpdate => "request firmware updates",
            Action::UseDrafts => "use draft firmware",
        };
        let scope = match scope {
            Scope::Global => "everywhere".to_owned(),
            Scope::Product(p) => format!("on product {p}"),
        };
        Err(Error::forbidden(format!("user '{}' may not {what} {scope}", self.username)))
    }

    pub fn require_in(&self, action: Action, product_id: &str) -> Result<()> {
        self.require(action, product_scope(product_id)?)
    }

    /// The product ids this actor may do `action` in; `None` means all.
    pub fn products_allowing(&self, action: Action) -> Option<Vec<String>> {
        rights::products_allowing(&self.grants, action).map(|ids| ids.iter().map(|id| id.to_string()).collect())
    }

    /// Whether the actor holds any grant at all (global objects are visible to anyone who does).
    pub fn has_any_grant(&self) -> bool {
        !self.grants.is_empty()
    }

    /// Whether the actor may know that `product_id` and what is in it exist: it holds a grant
    /// there or everywhere, whatever the role. What an actor does not see answers exactly like
    /// what does not exist (404 for what a URL names, 422 for what a body names), so nobody
    /// learns which handles, names and ids other products use; 403 is for what it sees but
    /// may not change.
    pub fn sees(&self, product_id: &str) -> bool {
        product_scope(product_id).is_ok_and(|scope| self.grants.iter().any(|g| g.covers(scope)))
    }
}

pub fn product_scope(product_id: &str) -> Result<Scope> {
    Ok(Scope::Product(crate::db::parse_id(product_id)?))
}

/// `?limit=&offset=` as clients send them (Django REST framework's limit/offset style).
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct ListParams {
    #[serde(default, deserialize_with = "number_or_string")]
    pub limit: Option<i64>,
    #[serde(default, deserialize_with = "number_or_string")]
    pub offset: Option<i64>,
}

/// Query strings are text, and `#[serde(flatten)]` (used by the filtered list queries)
/// hides the target type from `serde_urlencoded`; accept both forms.
fn number_or_string<'de, D: Deserializer<'de>>(de: D) -> std::result::Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(i64),
        S(String),
    }
    match Option::<Raw>::deserialize(de)? {
        None => Ok(None),
        Some(Raw::N(n)) => Ok(Some(n)),
        Some(Raw::S(s)) => {
            s.trim().parse().map(Some).map_err(|_| serde::de::Error::custom(format!("{s:?} is not a whole number")))
        }
    }
}

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 1000;
/// The largest `offset` a list accepts (far past any real list, far from overflowing when a
/// page's links add or subtract a limit).
pub const MAX_OFFSET: i64 = 1_000_000_000;

impl ListParams {
    pub fn page(&self) -> Result<Page> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        let offset = self.offset.unwrap_or(0);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(Error::bad_request("invalid_query", format!("limit must be 1 to {MAX_PAGE_SIZE}")));
        }
        if !(0..=MAX_OFFSET).contains(&offset) {
            return Err(Error::bad_request("invalid_query", format!("offset must be 0 to {MAX_OFFSET}")));
        }
        Ok(Page { limit, offset })
    }
}

/// One page of a list and the total count; the HTTP door adds `next`/`previous` links.
#[derive(Debug, Serialize)]
pub struct Listing<T> {
    pub total: i64,
    pub page: PageInfo,
    pub items: Vec<T>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct PageInfo {
    pub limit: i64,
    pub offset: i64,
}

impl<T> Listing<T> {
    pub fn new(items: Vec<T>, total: i64, page: Page) -> Self {
        Listing { total, page: PageInfo { limit: page.limit, offset: page.offset }, items }
    }
}

/// Resolves a reference given in a request body: an unknown object is 422, because the
/// request itself was found but names something that does not exist.
pub fn resolve<T>(
    conn: &mut AnyConnection,
    kind: &str,
    field: &str,
    raw: &str,
    lookup: fn(&mut AnyConnection, &ObjectRef) -> diesel::QueryResult<Option<T>>,
) -> Result<T> {
    resolve_if(conn, kind, field, raw, lookup, |_| true)
}

/// [`resolve`] for what the caller may see: an object `visible` refuses is an unknown
/// reference too, with the very same answer.
pub fn resolve_if<T>(
    conn: &mut AnyConnection,
    kind: &str,
    field: &str,
    raw: &str,
    lookup: fn(&mut AnyConnection, &ObjectRef) -> diesel::QueryResult<Option<T>>,
    visible: impl FnOnce(&T) -> bool,
) -> Result<T> {
    let r = ObjectRef::parse(field, raw)?;
    lookup(conn, &r)?
        .filter(visible)
        .ok_or_else(|| Error::unprocessable("unknown_reference", format!("{field}: {kind} {r} not found")))
}

/// Finds the object a URL names: unknown is 404.
pub fn find_path<T>(
    conn: &mut AnyConnection,
    kind: &str,
    raw: &str,
    lookup: fn(&mut AnyConnection, &ObjectRef) -> diesel::QueryResult<Option<T>>,
) -> Result<T> {
    find_path_if(conn, kind, raw, lookup, |_| true)
}

/// [`find_path`] for what the caller may see: an object `visible` refuses is not found
/// either, with the very same answer.
pub fn find_path_if<T>(
    conn: &mut AnyConnection,
    kind: &str,
    raw: &str,
    lookup: fn(&mut AnyConnection, &ObjectRef) -> diesel::QueryResult<Option<T>>,
    visible: impl FnOnce(&T) -> bool,
) -> Result<T> {
    let r = ObjectRef::parse(kind, raw).map_err(|_| Error::not_found(format!("{kind} {raw:?}")))?;
    lookup(conn, &r)?.filter(visible).ok_or_else(|| Error::not_found(format!("{kind} {r}")))
}

/// [`find_path`] for objects inside a product: one in a product the actor does not see is
/// not found either.
pub fn find_path_seen<T>(
    conn: &mut AnyConnection,
    actor: &Actor,
    kind: &str,
    raw: &str,
    lookup: fn(&mut AnyConnection, &ObjectRef) -> diesel::QueryResult<Option<T>>,
    product_of: fn(&T) -> &str,
) -> Result<T> {
    find_path_if(conn, kind, raw, lookup, |found| actor.sees(product_of(found)))
}

/// For PATCH bodies: tells a field that is absent (`None`) from one set to null (`Some(None)`).
pub fn double_option<'de, T, D>(de: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// Maps a unique-constraint violation to a 409 that names the field.
pub fn duplicate(kind: &str, field: &str, value: &str) -> impl FnOnce(Error) -> Error + use<> {
    let detail = format!("a {kind} with {field} {value:?} already exists");
    move |e| match e {
        Error::Conflict { code: "already_exists", .. } => Error::conflict("already_exists", detail),
        other => other,
    }
}
