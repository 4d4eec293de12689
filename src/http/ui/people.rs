//! Users (and one's own account), passwords, API tokens (the secret shown once) and grants.

use std::collections::HashMap;

use actix_web::http::Method;
use actix_web::web;
use askama::Template;

use super::{
    Chrome, Echo, Form, HubData, Me, Names, NoticeQuery, OrPage, OrProblem, Page, Posted, global, render_echo,
    see_other,
};
use crate::domain::rights::{Action, Role};
use crate::http::routes::Route;
use crate::service::people::{
    self as svc, GrantQuery, GrantView, NewGrant, NewPassword, NewToken, NewUser, TokenView, UserUpdate, UserView,
};
use crate::service::{Actor, Hub, ListParams};

pub(super) fn routes() -> Vec<Route> {
    let r = super::route;
    vec![
        r(Method::GET, "/users", |r| r.to(users)),
        r(Method::POST, "/users", |r| r.to(create_user)),
        r(Method::GET, "/users/{id}", |r| r.to(user)),
        r(Method::POST, "/users/{id}", |r| r.to(update_user)),
        r(Method::POST, "/users/{id}/delete", |r| r.to(delete_user)),
        r(Method::POST, "/users/{id}/password", |r| r.to(set_password)),
        r(Method::POST, "/users/{id}/tokens", |r| r.to(create_token)),
        r(Method::POST, "/users/{id}/tokens/{token}/revoke", |r| r.to(revoke_token)),
        r(Method::GET, "/grants", |r| r.to(grants)),
        r(Method::POST, "/grants", |r| r.to(create_grant)),
        r(Method::POST, "/grants/{id}/delete", |r| r.to(delete_grant)),
    ]
}

type Id = web::Path<String>;

/// `me` names the signed-in user, as in the API.
fn user_ref(actor: &Actor, raw: String) -> String {
    if raw == "me" { actor.user_id.clone() } else { raw }
}

const MANY: ListParams = ListParams { limit: Some(1000), offset: None };

// ---- users -------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "ui/users.html")]
struct UsersPage {
    chrome: Chrome,
    rows: Vec<UserView>,
    form: Form,
}

async fn users_page(hub: &Hub, me: &Me, echo: Echo) -> Page {
    let s = &me.0;
    let rows = svc::list_users(hub, &s.actor, MANY).await.or_page(s)?.items;
    let page = UsersPage { chrome: Chrome::new(s, "people").with(&echo), rows, form: echo.form.clone() };
    Ok(render_echo(&echo, &page))
}

async fn users(hub: HubData, me: Me, q: web::Query<NoticeQuery>) -> Page {
    users_page(&hub, &me, q.echo()).await
}

async fn create_user(hub: HubData, p: Posted) -> Page {
    let f = &p.form;
    let input = f.flag("active").map(|active| NewUser {
        username: f.text("username"),
        active: active.unwrap_or(true),
        password: f.opt("password"),
    });
    let result = async { svc::create_user(&hub, &p.signed.actor, input?).await }.await;
    match result {
        Ok(u) => Ok(see_other(&format!("/ui/users/{}?notice=created", u.id))),
        Err(e) => users_page(&hub, &p.me(), Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

/// A grant as a page shows it.
pub struct GrantRow {
    pub id: Option<String>,
    pub user: String,
    pub product: String,
    pub role: String,
}

#[derive(Template)]
#[template(path = "ui/user.html")]
struct UserPage {
    chrome: Chrome,
    u: UserView,
    myself: bool,
    admin: bool,
    has_password: bool,
    tokens: Vec<TokenView>,
    new_token: Option<String>,
    grants: Vec<GrantRow>,
    manages_grants: bool,
    form: Form,
}

async fn user_page(hub: &Hub, me: &Me, id: String, new_token: Option<String>, echo: Echo) -> Page {
    let s = &me.0;
    let id = user_ref(&s.actor, id);
    let u = svc::get_user(hub, &s.actor, id.clone()).await.or_page(s)?;
    let has_password = svc::has_password(hub, &s.actor, u.id.clone()).await.or_page(s)?;
    let tokens = svc::list_tokens(hub, &s.actor, u.id.clone(), MANY).await.or_page(s)?.items;
    let admin = global(&s.actor, Action::Manage);
    let myself = u.id == s.actor.user_id;
    let names = Names::load(hub, &s.actor).await.or_page(s)?;
    let grants = if admin {
        let q = GrantQuery { user: Some(u.id.clone()), product: None, list: MANY };
        let rows = svc::list_grants(hub, &s.actor, q).await.or_page(s)?.items;
        rows.into_iter().map(|g| grant_row(g, &names, &HashMap::new())).collect()
    } else {
        // one's own grants, as the session knows them
        s.actor
            .grants
            .iter()
            .map(|g| GrantRow {
                id: None,
                user: u.username.clone(),
                product: g.product.map_or_else(|| "everywhere".into(), |p| names.of(&p.to_string())),
                role: g.role.to_string(),
            })
            .collect()
    };
    let page = UserPage {
        chrome: Chrome::new(s, "people").with(&echo),
        myself,
        admin,
        has_password,
        tokens,
        new_token,
        grants,
        manages_grants: s.actor.products_allowing(Action::Manage).is_none_or(|p| !p.is_empty()),
        form: echo.form.clone(),
        u,
    };
    Ok(render_echo(&echo, &page))
}

async fn user(hub: HubData, me: Me, id: Id, q: web::Query<NoticeQuery>) -> Page {
    user_page(&hub, &me, id.into_inner(), None, q.echo()).await
}

async fn update_user(hub: HubData, p: Posted, id: Id) -> Page {
    let id = user_ref(&p.signed.actor, id.into_inner());
    let input = p.form.flag("active").map(|active| UserUpdate { username: p.form.opt("username"), active });
    let result = async { svc::update_user(&hub, &p.signed.actor, id.clone(), input?).await }.await;
    match result {
        Ok(u) => Ok(see_other(&format!("/ui/users/{}?notice=saved", u.id))),
        Err(e) => user_page(&hub, &p.me(), id, None, Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

async fn delete_user(hub: HubData, p: Posted, id: Id) -> Page {
    let id = user_ref(&p.signed.actor, id.into_inner());
    match svc::delete_user(&hub, &p.signed.actor, id.clone()).await {
        Ok(()) => Ok(see_other("/ui/users?notice=deleted")),
        Err(e) => user_page(&hub, &p.me(), id, None, Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

async fn set_password(hub: HubData, p: Posted, id: Id) -> Page {
    let id = user_ref(&p.signed.actor, id.into_inner());
    let input =
        NewPassword { password: p.form.get("password").to_owned(), current_password: p.form.opt("current_password") };
    let keep = Some(p.signed.session_id.clone());
    match svc::set_password(&hub, &p.signed.actor, id.clone(), input, keep).await {
        Ok(()) => Ok(see_other(&format!("/ui/users/{id}?notice=password"))),
        // the typed passwords are not shown again
        Err(e) => user_page(&hub, &p.me(), id, None, Echo::failed(&e, Form::default())).await.or_problem(e, &p.signed),
    }
}

async fn create_token(hub: HubData, p: Posted, id: Id) -> Page {
    let id = user_ref(&p.signed.actor, id.into_inner());
    let input = NewToken { name: p.form.text("name"), expires_at: p.form.opt("expires_at") };
    match svc::create_token(&hub, &p.signed.actor, id.clone(), input).await {
        // the secret is shown on this answer only
        Ok(t) => user_page(&hub, &p.me(), id, t.token, Echo::default()).await,
        Err(e) => user_page(&hub, &p.me(), id, None, Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

async fn revoke_token(hub: HubData, p: Posted, path: web::Path<(String, String)>) -> Page {
    let (user, token) = path.into_inner();
    let user = user_ref(&p.signed.actor, user);
    match svc::revoke_token(&hub, &p.signed.actor, user.clone(), token).await {
        Ok(()) => Ok(see_other(&format!("/ui/users/{user}?notice=revoked"))),
        Err(e) => user_page(&hub, &p.me(), user, None, Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

// ---- grants --------------------------------------------------------------------------------

fn grant_row(g: GrantView, names: &Names, users: &HashMap<String, String>) -> GrantRow {
    GrantRow {
        user: users.get(&g.user).cloned().unwrap_or(g.user),
        product: g.product.as_deref().map_or_else(|| "everywhere".into(), |p| names.of(p)),
        role: g.role,
        id: Some(g.id),
    }
}

#[derive(Template)]
#[template(path = "ui/grants.html")]
struct GrantsPage {
    chrome: Chrome,
    rows: Vec<GrantRow>,
    products: Vec<crate::service::catalog::HandleView>,
    everywhere: bool,
    roles: [Role; 4],
    form: Form,
}

async fn grants_page(hub: &Hub, me: &Me, echo: Echo) -> Page {
    let s = &me.0;
    let rows =
        svc::list_grants(hub, &s.actor, GrantQuery { user: None, product: None, list: MANY }).await.or_page(s)?;
    let names = Names::load(hub, &s.actor).await.or_page(s)?;
    let everywhere = global(&s.actor, Action::Manage);
    let users: HashMap<String, String> = if everywhere {
        svc::list_users(hub, &s.actor, MANY).await.or_page(s)?.items.into_iter().map(|u| (u.id, u.username)).collect()
    } else {
        HashMap::new()
    };
    let managed = s.actor.products_allowing(Action::Manage);
    let products =
        names.products.iter().filter(|p| managed.as_ref().is_none_or(|ids| ids.contains(&p.id))).cloned().collect();
    let page = GrantsPage {
        chrome: Chrome::new(s, "people").with(&echo),
        rows: rows.items.into_iter().map(|g| grant_row(g, &names, &users)).collect(),
        products,
        everywhere,
        roles: Role::ALL,
        form: echo.form.clone(),
    };
    Ok(render_echo(&echo, &page))
}

async fn grants(hub: HubData, me: Me, q: web::Query<NoticeQuery>) -> Page {
    grants_page(&hub, &me, q.echo()).await
}

async fn create_grant(hub: HubData, p: Posted) -> Page {
    let f = &p.form;
    let input = NewGrant { user: f.text("user"), product: f.opt("product"), role: f.text("role") };
    match svc::create_grant(&hub, &p.signed.actor, input).await {
        Ok(_) => Ok(see_other("/ui/grants?notice=created")),
        Err(e) => grants_page(&hub, &p.me(), Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

async fn delete_grant(hub: HubData, p: Posted, id: Id) -> Page {
    match svc::delete_grant(&hub, &p.signed.actor, id.into_inner()).await {
        Ok(()) => Ok(see_other("/ui/grants?notice=deleted")),
        Err(e) => grants_page(&hub, &p.me(), Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}
