//! Users, API tokens and grants.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::{Actor, ListParams, Listing, auth, find_path_seen};
use crate::db::{self, AnyConnection, write_transaction};
use crate::domain::ids::{ObjectRef, validate_name, validate_username};
use crate::domain::rights::{Action, Role, Scope};
use crate::error::{Error, Result};
use crate::service::Hub;
use crate::service::catalog::{self, named};
use crate::time;

// ---- users -------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    #[serde(default = "yes")]
    pub active: bool,
    /// For signing in to the web UI; automation users may have none (they use tokens).
    pub password: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    pub username: Option<String>,
    pub active: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub active: bool,
    #[serde(serialize_with = "time::rfc3339")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "time::rfc3339")]
    pub updated_at: NaiveDateTime,
}

impl From<db::user::User> for UserView {
    fn from(u: db::user::User) -> Self {
        UserView {
            id: u.id,
            username: u.username,
            active: u.active,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

pub fn insert_user(conn: &mut AnyConnection, username: &str) -> Result<db::user::User> {
    validate_username(username)?;
    let now = time::now();
    let row = db::user::User {
        id: uuid::Uuid::new_v4().to_string(),
        username: username.to_owned(),
        active: true,
        created_at: now,
        updated_at: now,
    };
    db::user::insert(conn, &row).map_err(Error::from).map_err(super::duplicate("user", "username", username))?;
    Ok(row)
}

/// A user by id or username.
fn find_user(conn: &mut AnyConnection, raw: &str) -> Result<db::user::User> {
    let found = match uuid::Uuid::parse_str(raw) {
        Ok(id) => db::user::find(conn, &id.to_string())?,
        Err(_) => db::user::find_by_username(conn, raw)?,
    };
    found.ok_or_else(|| Error::not_found(format!("user {raw:?}")))
}

/// A user the URL names, if the actor may see them: themselves, or anyone for a global
/// admin. Others are not found, with the very answer of a user that does not exist.
fn find_visible_user(conn: &mut AnyConnection, actor: &Actor, raw: &str) -> Result<db::user::User> {
    let user = find_user(conn, raw)?;
    if user.id != actor.user_id && !actor.can(Action::Manage, Scope::Global) {
        return Err(Error::not_found(format!("user {raw:?}")));
    }
    Ok(user)
}

fn product_id(p: &db::product::Product) -> &str {
    &p.id
}

fn user_ref(conn: &mut AnyConnection, field: &str, raw: &str) -> Result<db::user::User> {
    find_user(conn, raw)
        .map_err(|_| Error::unprocessable("unknown_reference", format!("{field}: user {raw:?} not found")))
}

pub async fn create_user(hub: &Hub, actor: &Actor, input: NewUser) -> Result<UserView> {
    actor.require(Action::Manage, Scope::Global)?;
    validate_username(&input.username)?;
    let hash = match &input.password {
        Some(p) => {
            auth::validate_password("password", p)?;
            Some(auth::hash_password_async(p.clone()).await?)
        }
        None => None,
    };
    hub.db
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let mut user = insert_user(conn, &input.username)?;
                if let Some(hash) = &hash {
                    db::web::set_password(conn, &user.id, hash, time::now())?;
                }
                if !input.active {
                    db::user::update(
                        conn,
                        &user.id,
                        &db::user::UserChanges { active: Some(false), ..Default::default() },
                    )?;
                    user.active = false;
                }
                Ok(user.into())
            })
        })
        .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    pub password: String,
    /// Needed to change one's own password once one is set.
    pub current_password: Option<String>,
}

/// Sets a user's password: one's own (with the current one, once set), or anyone's for a
/// global admin. The user's browser sessions end, except `keep` (the one asking).
pub async fn set_password(
    hub: &Hub,
    actor: &Actor,
    id: String,
    input: NewPassword,
    keep: Option<String>,
) -> Result<()> {
    auth::validate_password("password", &input.password)?;
    let a = actor.clone();
    let (user, current) = hub
        .db
        .run(move |conn| {
            let user = find_visible_user(conn, &a, &id)?;
            let current = db::web::password_of(conn, &user.id)?;
            Ok((user, current))
        })
        .await?;
    if user.id == actor.user_id {
        if let Some(hash) = current {
            let given = input.current_password.clone().unwrap_or_default();
            if !auth::verify_password_async(given, Some(hash)).await {
                return Err(Error::forbidden("current_password: that is not your current password"));
            }
        }
    } else {
        actor.require(Action::Manage, Scope::Global)?;
    }
    let hash = auth::hash_password_async(input.password).await?;
    hub.db
        .run(move |conn| {
            write_transaction(conn, |conn| {
                db::web::set_password(conn, &user.id, &hash, time::now())?;
                db::web::delete_sessions_of(conn, &user.id, keep.as_deref())?;
                Ok(())
            })
        })
        .await
}

/// Whether a user has a password (their page says so).
pub async fn has_password(hub: &Hub, actor: &Actor, id: String) -> Result<bool> {
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let user = find_visible_user(conn, &actor, &id)?;
            Ok(db::web::password_of(conn, &user.id)?.is_some())
        })
        .await
}

pub async fn list_users(hub: &Hub, actor: &Actor, params: ListParams) -> Result<Listing<UserView>> {
    actor.require(Action::Manage, Scope::Global)?;
    let page = params.page()?;
    hub.db
        .run(move |conn| {
            let (rows, total) = db::user::list(conn, page)?;
            Ok(Listing::new(rows.into_iter().map(UserView::from).collect(), total, page))
        })
        .await
}

/// Users may read themselves; admins everyone.
pub async fn get_user(hub: &Hub, actor: &Actor, id: String) -> Result<UserView> {
    let actor = actor.clone();
    hub.db.run(move |conn| Ok(find_visible_user(conn, &actor, &id)?.into())).await
}

pub async fn update_user(hub: &Hub, actor: &Actor, id: String, input: UserUpdate) -> Result<UserView> {
    if let Some(name) = &input.username {
        validate_username(name)?;
    }
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let user = find_visible_user(conn, &actor, &id)?;
                actor.require(Action::Manage, Scope::Global)?;
                if input.active == Some(false) {
                    ensure_not_last_admin(conn, &user.id, None)?;
                }
                let changes = db::user::UserChanges {
                    username: input.username.clone(),
                    active: input.active,
                    updated_at: Some(time::now()),
                };
                db::user::update(conn, &user.id, &changes).map_err(Error::from).map_err(super::duplicate(
                    "user",
                    "username",
                    input.username.as_deref().unwrap_or_default(),
                ))?;
                Ok(find_user(conn, &user.id)?.into())
            })
        })
        .await
}

pub async fn delete_user(hub: &Hub, actor: &Actor, id: String) -> Result<()> {
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let user = find_visible_user(conn, &actor, &id)?;
                actor.require(Action::Manage, Scope::Global)?;
                if user.id == actor.user_id {
                    return Err(Error::conflict("cannot_delete_self", "you cannot delete your own user"));
                }
                ensure_not_last_admin(conn, &user.id, None)?;
                db::user::delete(conn, &user.id)?;
                Ok(())
            })
        })
        .await
}

/// Refuses a change that would leave no active user with a global admin grant, which
/// would lock everyone out of managing people. `grant_id`: the grant about to go, if only
/// one grant (not the whole user) is being removed.
fn ensure_not_last_admin(conn: &mut AnyConnection, user_id: &str, grant_id: Option<&str>) -> Result<()> {
    let admins = db::grant::active_global(conn, Role::Admin.as_str())?;
    let remaining = admins
        .iter()
        .filter(|(gid, uid)| match grant_id {
            Some(g) => gid != g,
            None => uid != user_id,
        })
        .count();
    let affected = admins.iter().any(|(gid, uid)| grant_id.map_or(uid == user_id, |g| gid == g));
    if affected && remaining == 0 {
        return Err(Error::conflict("last_admin", "this would remove the last active global admin"));
    }
    Ok(())
}

// ---- tokens ------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    /// RFC 3339; the token stops working then.
    pub expires_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TokenView {
    pub id: String,
    pub user: String,
    pub name: String,
    /// The first characters, to tell tokens apart.
    pub hint: String,
    #[serde(serialize_with = "time::rfc3339")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "time::rfc3339_opt")]
    pub expires_at: Option<NaiveDateTime>,
    #[serde(serialize_with = "time::rfc3339_opt")]
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked: bool,
    #[serde(serialize_with = "time::rfc3339_opt")]
    pub revoked_at: Option<NaiveDateTime>,
    /// The secret itself: present only in the answer that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl From<db::token::ApiToken> for TokenView {
    fn from(t: db::token::ApiToken) -> Self {
        TokenView {
            id: t.id,
            user: t.user_id,
            name: t.name,
            hint: t.hint,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            revoked: t.revoked_at.is_some(),
            revoked_at: t.revoked_at,
            token: None,
        }
    }
}

/// A user's own tokens are theirs to manage; others' need a global admin (the only one who
/// sees other users).
fn token_owner(conn: &mut AnyConnection, actor: &Actor, user: &str) -> Result<db::user::User> {
    find_visible_user(conn, actor, user)
}

pub async fn create_token(hub: &Hub, actor: &Actor, user: String, input: NewToken) -> Result<TokenView> {
    validate_name("name", &input.name)?;
    let expires_at = input.expires_at.as_deref().map(|t| time::parse_rfc3339("expires_at", t)).transpose()?;
    if expires_at.is_some_and(|t| t <= time::now()) {
        return Err(Error::invalid("expires_at: must be in the future"));
    }
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let user = token_owner(conn, &actor, &user)?;
            let secret = auth::generate_token();
            let row = auth::insert_token(conn, &user.id, &input.name, &secret, expires_at)?;
            let mut view = TokenView::from(row);
            view.token = Some(secret);
            Ok(view)
        })
        .await
}

pub async fn list_tokens(hub: &Hub, actor: &Actor, user: String, params: ListParams) -> Result<Listing<TokenView>> {
    let page = params.page()?;
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let user = token_owner(conn, &actor, &user)?;
            let (rows, total) = db::token::list_for_user(conn, &user.id, page)?;
            Ok(Listing::new(rows.into_iter().map(TokenView::from).collect(), total, page))
        })
        .await
}

fn find_token(conn: &mut AnyConnection, actor: &Actor, user: &str, id: &str) -> Result<db::token::ApiToken> {
    let user = token_owner(conn, actor, user)?;
    db::token::find(conn, id)?
        .filter(|t| t.user_id == user.id)
        .ok_or_else(|| Error::not_found(format!("token {id:?} of user {:?}", user.username)))
}

pub async fn get_token(hub: &Hub, actor: &Actor, user: String, id: String) -> Result<TokenView> {
    let actor = actor.clone();
    hub.db.run(move |conn| Ok(find_token(conn, &actor, &user, &id)?.into())).await
}

/// Revokes: the row stays (for audit), the token stops working at once.
pub async fn revoke_token(hub: &Hub, actor: &Actor, user: String, id: String) -> Result<()> {
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let token = find_token(conn, &actor, &user, &id)?;
            db::token::revoke(conn, &token.id, time::now())?;
            Ok(())
        })
        .await
}

// ---- grants ------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    pub user: String,
    /// A product id or handle; absent or null: everywhere.
    pub product: Option<String>,
    pub role: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct GrantQuery {
    pub user: Option<String>,
    pub product: Option<String>,
    #[serde(flatten)]
    pub list: ListParams,
}

#[derive(Debug, Serialize)]
pub struct GrantView {
    pub id: String,
    pub user: String,
    pub product: Option<String>,
    pub role: String,
    #[serde(serialize_with = "time::rfc3339")]
    pub created_at: NaiveDateTime,
}

impl From<db::grant::GrantRow> for GrantView {
    fn from(g: db::grant::GrantRow) -> Self {
        GrantView { id: g.id, user: g.user_id, product: g.product_id, role: g.role, created_at: g.created_at }
    }
}

pub fn insert_grant(
    conn: &mut AnyConnection,
    user_id: &str,
    product_id: Option<&str>,
    role: Role,
) -> Result<db::grant::GrantRow> {
    if db::grant::exists(conn, user_id, product_id, role.as_str())? {
        return Err(Error::conflict("already_exists", "the user already holds this role here"));
    }
    let row = db::grant::GrantRow {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user_id.to_owned(),
        product_id: product_id.map(str::to_owned),
        role: role.as_str().to_owned(),
        created_at: time::now(),
    };
    db::grant::insert(conn, &row)?;
    Ok(row)
}

fn grant_scope(product_id: Option<&str>) -> Result<Scope> {
    match product_id {
        Some(p) => super::product_scope(p),
        None => Ok(Scope::Global),
    }
}

/// Global grants need a global admin; a product grant needs an admin of that product. The
/// right is checked before the user is looked up, so only those who may grant learn whether
/// a username exists; a product the actor does not see is as unknown as a missing one.
pub async fn create_grant(hub: &Hub, actor: &Actor, input: NewGrant) -> Result<GrantView> {
    let role: Role = input.role.parse()?;
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let product = match &input.product {
                    Some(p) => Some(named::<catalog::Product>(conn, &actor, "product", p)?),
                    None => None,
                };
                let product_id = product.as_ref().map(|p| p.id.as_str());
                actor.require(Action::Manage, grant_scope(product_id)?)?;
                let user = user_ref(conn, "user", &input.user)?;
                Ok(insert_grant(conn, &user.id, product_id, role)?.into())
            })
        })
        .await
}

pub async fn list_grants(hub: &Hub, actor: &Actor, query: GrantQuery) -> Result<Listing<GrantView>> {
    let page = query.list.page()?;
    let managed = actor.products_allowing(Action::Manage);
    if managed.as_ref().is_some_and(Vec::is_empty) {
        return Err(Error::forbidden(format!("user '{}' may not manage grants", actor.username)));
    }
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let user = query.user.as_deref().map(|u| find_user(conn, u)).transpose()?;
            let product = query
                .product
                .as_deref()
                .map(|p| find_path_seen(conn, &actor, "product", p, db::product::find_by_ref, product_id))
                .transpose()?;
            let filter =
                db::grant::Filter { user: user.map(|u| u.id), product: product.map(|p| p.id), products: managed };
            let (rows, total) = db::grant::list(conn, &filter, page)?;
            Ok(Listing::new(rows.into_iter().map(GrantView::from).collect(), total, page))
        })
        .await
}

/// A grant, for those who manage its scope; for anyone else it does not exist (the same 404).
fn find_grant(conn: &mut AnyConnection, actor: &Actor, id: &str) -> Result<db::grant::GrantRow> {
    db::grant::find(conn, id)?
        .filter(|g| grant_scope(g.product_id.as_deref()).is_ok_and(|scope| actor.can(Action::Manage, scope)))
        .ok_or_else(|| Error::not_found(format!("grant {id:?}")))
}

pub async fn get_grant(hub: &Hub, actor: &Actor, id: String) -> Result<GrantView> {
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            let grant = find_grant(conn, &actor, &id)?;
            Ok(grant.into())
        })
        .await
}

pub async fn delete_grant(hub: &Hub, actor: &Actor, id: String) -> Result<()> {
    let actor = actor.clone();
    hub.db
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let grant = find_grant(conn, &actor, &id)?;
                ensure_not_last_admin(conn, &grant.user_id, Some(&grant.id))?;
                db::grant::delete(conn, &grant.id)?;
                Ok(())
            })
        })
        .await
}

/// Used by the CLI: a new API token for a user, printed once.
pub fn create_token_for(conn: &mut AnyConnection, username: &str, name: &str) -> Result<String> {
    let user =
        db::user::find_by_username(conn, username)?.ok_or_else(|| Error::not_found(format!("user {username:?}")))?;
    let secret = auth::generate_token();
    auth::insert_token(conn, &user.id, name, &secret, None)?;
    Ok(secret)
}

/// Used by the CLI: a user by name, created if missing, with an optional grant and an
/// optional password (set or replaced).
pub fn ensure_user_with_grant(
    conn: &mut AnyConnection,
    username: &str,
    grant: Option<(Role, Option<&str>)>,
    password: Option<&str>,
) -> Result<db::user::User> {
    let hash = match password {
        Some(p) => {
            auth::validate_password("password", p)?;
            Some(auth::hash_password(p)?)
        }
        None => None,
    };
    write_transaction(conn, |conn| {
        let user = match db::user::find_by_username(conn, username)? {
            Some(u) => u,
            None => insert_user(conn, username)?,
        };
        if let Some(hash) = &hash {
            db::web::set_password(conn, &user.id, hash, time::now())?;
        }
        if let Some((role, product)) = grant {
            let product_id = match product {
                Some(p) => Some(
                    db::product::find_by_ref(conn, &ObjectRef::parse("product", p)?)?
                        .ok_or_else(|| Error::not_found(format!("product {p:?}")))?
                        .id,
                ),
                None => None,
            };
            if !db::grant::exists(conn, &user.id, product_id.as_deref(), role.as_str())? {
                insert_grant(conn, &user.id, product_id.as_deref(), role)?;
            }
        }
        Ok(user)
    })
}

/// The result of the first start.
pub enum Bootstrap {
    /// Users already exist; nothing was done.
    AlreadyDone,
    /// The admin was created with the configured `DEVICEHUB_ADMIN_TOKEN`.
    CreatedWithConfiguredToken,
    /// The admin was created with a random token that must be shown once.
    CreatedWithNewToken(String),
}

pub const BOOTSTRAP_ADMIN: &str = "admin";

/// On an empty database: creates the user `admin` with a global admin grant and a token.
pub fn bootstrap_admin(conn: &mut AnyConnection, configured: Option<&str>) -> Result<Bootstrap> {
    write_transaction(conn, |conn| {
        // two instances starting at once on an empty database: one creates, one finds
        db::lock_for_first_start(conn)?;
        if db::user::count(conn)? > 0 {
            return Ok(Bootstrap::AlreadyDone);
        }
        let user = insert_user(conn, BOOTSTRAP_ADMIN)?;
        insert_grant(conn, &user.id, None, Role::Admin)?;
        match configured {
            Some(token) => {
                auth::insert_token(conn, &user.id, "bootstrap", token, None)?;
                Ok(Bootstrap::CreatedWithConfiguredToken)
            }
            None => {
                let token = auth::generate_token();
                auth::insert_token(conn, &user.id, "bootstrap", &token, None)?;
                Ok(Bootstrap::CreatedWithNewToken(token))
            }
        }
    })
}
