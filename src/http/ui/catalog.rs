//! Products, models, channels, delivery methods and procedures. Reading, changing and
//! deleting one object goes through the catalog's generic `get`, `update` and `delete`, as in
//! the API; models, channels and delivery methods share their pages.

use actix_web::http::Method;
use actix_web::web;
use askama::Template;
use serde::Deserialize;
use serde_json::Value;

use super::{
    Chrome, Echo, Form, HubData, Me, NoticeQuery, OrPage, OrProblem, Page, Posted, global, render_echo, see_other,
    writes_in, writes_somewhere,
};
use crate::domain::rights::Action;
use crate::error::{Error, Result};
use crate::http::routes::{Handler, Route};
use crate::service::catalog::{
    self as svc, CatalogObject, DeliveryMethod, DeliveryProcedure, HandleUpdate, HandleView, NewHandle, NewProcedure,
    NewScoped, ProcedureQuery, ProcedureUpdate, ProcedureView, Product, ProductScoped, ProductUpdate, ProductView,
    ScopedQuery,
};
use crate::service::{Actor, Hub, ListParams};

pub(super) fn routes() -> Vec<Route> {
    let r = super::route;
    let mut all = vec![
        r(Method::GET, "/products", |r| r.to(products)),
        r(Method::POST, "/products", |r| r.to(create_product)),
        r(Method::GET, "/products/{id}", |r| r.to(product)),
        r(Method::POST, "/products/{id}", |r| r.to(update_product)),
        r(Method::POST, "/products/{id}/delete", |r| r.to(delete_product)),
    ];
    all.extend(handles::<svc::Models>("/models"));
    all.extend(handles::<svc::Channels>("/channels"));
    all.extend([
        r(Method::GET, "/delivery-methods", |r| r.to(handle_list::<DeliveryMethod>)),
        r(Method::POST, "/delivery-methods", |r| r.to(create_handle::<DeliveryMethod>)),
        r(Method::GET, "/delivery-methods/{id}", |r| r.to(handle::<DeliveryMethod>)),
        r(Method::POST, "/delivery-methods/{id}", |r| r.to(update_handle::<DeliveryMethod>)),
        r(Method::POST, "/delivery-methods/{id}/delete", |r| r.to(delete_handle::<DeliveryMethod>)),
        r(Method::GET, "/delivery-procedures", |r| r.to(procedures)),
        r(Method::POST, "/delivery-procedures", |r| r.to(create_procedure)),
        r(Method::GET, "/delivery-procedures/{id}", |r| r.to(procedure)),
        r(Method::POST, "/delivery-procedures/{id}", |r| r.to(update_procedure)),
        r(Method::POST, "/delivery-procedures/{id}/delete", |r| r.to(delete_procedure)),
    ]);
    all
}

type Id = web::Path<String>;

fn changed(base: &str, id: &str) -> actix_web::HttpResponse {
    see_other(&format!("{base}/{id}?notice=saved"))
}

// ---- products ----------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "ui/products.html")]
struct ProductsPage {
    chrome: Chrome,
    rows: Vec<ProductView>,
    form: Form,
    can_create: bool,
}

async fn products_page(hub: &Hub, me: &Me, echo: Echo) -> Page {
    let s = &me.0;
    let many = ListParams { limit: Some(1000), offset: None };
    let rows = svc::list_products(hub, &s.actor, many).await.or_page(s)?.items;
    let page = ProductsPage {
        chrome: Chrome::new(s, "catalog").with(&echo),
        rows,
        form: echo.form.clone(),
        can_create: global(&s.actor, Action::Manage),
    };
    Ok(render_echo(&echo, &page))
}

async fn products(hub: HubData, me: Me, q: web::Query<NoticeQuery>) -> Page {
    products_page(&hub, &me, q.echo()).await
}

async fn create_product(hub: HubData, p: Posted) -> Page {
    let input = NewHandle { tid: p.form.text("tid"), name: p.form.text("name") };
    match svc::create_product(&hub, &p.signed.actor, input).await {
        Ok(v) => Ok(see_other(&format!("/ui/products/{}?notice=created", v.id))),
        Err(e) => products_page(&hub, &p.me(), Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

#[derive(Template)]
#[template(path = "ui/product.html")]
struct ProductPage {
    chrome: Chrome,
    p: ProductView,
    models: Vec<HandleView>,
    channels: Vec<HandleView>,
    can_manage: bool,
    can_write: bool,
}

async fn product_page(hub: &Hub, me: &Me, id: String, echo: Echo) -> Page {
    let s = &me.0;
    let p = svc::get::<Product>(hub, &s.actor, id).await.or_page(s)?;
    let query = || ScopedQuery { product: Some(p.id.clone()), list: ListParams { limit: Some(1000), offset: None } };
    let models = svc::list_scoped::<svc::Models>(hub, &s.actor, query()).await.or_page(s)?.items;
    let channels = svc::list_scoped::<svc::Channels>(hub, &s.actor, query()).await.or_page(s)?.items;
    let manages = crate::service::product_scope(&p.id).is_ok_and(|scope| s.actor.can(Action::Manage, scope));
    let page = ProductPage {
        chrome: Chrome::new(s, "catalog").with(&echo),
        can_write: writes_in(&s.actor, &p.id),
        can_manage: manages,
        p,
        models,
        channels,
    };
    Ok(render_echo(&echo, &page))
}

async fn product(hub: HubData, me: Me, id: Id, q: web::Query<NoticeQuery>) -> Page {
    product_page(&hub, &me, id.into_inner(), q.echo()).await
}

fn product_update(f: &Form) -> Result<ProductUpdate> {
    let polling_secs = f
        .opt("polling_secs")
        .map(|v| v.parse::<i32>().map_err(|_| Error::invalid("polling_secs: a whole number of seconds")))
        .transpose()?;
    let ddi = svc::DdiSettingsUpdate {
        target_token_auth: f.flag("target_token_auth")?,
        gateway_token_auth: f.flag("gateway_token_auth")?,
        polling_secs,
        confirmation_required: f.flag("confirmation_required")?,
    };
    let any_ddi = ddi.target_token_auth.is_some()
        || ddi.gateway_token_auth.is_some()
        || ddi.polling_secs.is_some()
        || ddi.confirmation_required.is_some();
    Ok(ProductUpdate { tid: f.opt("tid"), name: f.opt("name"), ddi: any_ddi.then_some(ddi) })
}

async fn update_product(hub: HubData, p: Posted, id: Id) -> Page {
    let id = id.into_inner();
    let result =
        async { svc::update::<Product>(&hub, &p.signed.actor, id.clone(), product_update(&p.form)?).await }.await;
    match result {
        Ok(v) => Ok(changed("/ui/products", &v.id)),
        Err(e) => product_page(&hub, &p.me(), id, Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

async fn delete_product(hub: HubData, p: Posted, id: Id) -> Page {
    let id = id.into_inner();
    match svc::delete::<Product>(&hub, &p.signed.actor, id.clone()).await {
        Ok(()) => Ok(see_other("/ui/products?notice=deleted")),
        Err(e) => product_page(&hub, &p.me(), id, Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

// ---- models, channels and delivery methods -------------------------------------------------

/// What the shared handle pages need to know of a family.
trait HandleFamily: CatalogObject<View = HandleView, Update = HandleUpdate> {
    /// Where its pages are, and what the page calls it.
    const BASE: &'static str;
    const TITLE: &'static str;
    /// Whether objects belong to a product.
    const SCOPED: bool;
    async fn list(hub: &Hub, actor: &Actor, product: Option<String>) -> Result<Vec<HandleView>>;
    async fn create(hub: &Hub, actor: &Actor, form: &Form) -> Result<HandleView>;
    /// Whether the actor may create one (to show the form).
    fn may_create(actor: &Actor) -> bool;
}

fn handles<T: HandleFamily + ProductScoped>(base: &'static str) -> Vec<Route> {
    let r = |method, path: &'static str, handler: Handler| Route::new("ui", base, method, path, handler);
    vec![
        r(Method::GET, "", |r| r.to(handle_list::<T>)),
        r(Method::POST, "", |r| r.to(create_handle::<T>)),
        r(Method::GET, "/{id}", |r| r.to(handle::<T>)),
        r(Method::POST, "/{id}", |r| r.to(update_handle::<T>)),
        r(Method::POST, "/{id}/delete", |r| r.to(delete_handle::<T>)),
    ]
}

macro_rules! scoped_family {
    ($t:ty, $base:literal, $title:literal) => {
        impl HandleFamily for $t {
            const BASE: &'static str = $base;
            const TITLE: &'static str = $title;
            const SCOPED: bool = true;
            async fn list(hub: &Hub, actor: &Actor, product: Option<String>) -> Result<Vec<HandleView>> {
                let query = ScopedQuery { product, list: ListParams { limit: Some(1000), offset: None } };
                Ok(svc::list_scoped::<$t>(hub, actor, query).await?.items)
            }
            async fn create(hub: &Hub, actor: &Actor, f: &Form) -> Result<HandleView> {
                let input = NewScoped { tid: f.text("tid"), name: f.text("name"), product: f.text("product") };
                svc::create_scoped::<$t>(hub, actor, input).await
            }
            fn may_create(actor: &Actor) -> bool {
                writes_somewhere(actor)
            }
        }
    };
}

scoped_family!(svc::Models, "/ui/models", "Models");
scoped_family!(svc::Channels, "/ui/channels", "Channels");

impl HandleFamily for DeliveryMethod {
    const BASE: &'static str = "/ui/delivery-methods";
    const TITLE: &'static str = "Delivery methods";
    const SCOPED: bool = false;
    async fn list(hub: &Hub, actor: &Actor, _: Option<String>) -> Result<Vec<HandleView>> {
        Ok(svc::list_methods(hub, actor, ListParams { limit: Some(1000), offset: None }).await?.items)
    }
    async fn create(hub: &Hub, actor: &Actor, f: &Form) -> Result<HandleView> {
        svc::create_method(hub, actor, NewHandle { tid: f.text("tid"), name: f.text("name") }).await
    }
    fn may_create(actor: &Actor) -> bool {
        global(actor, Action::Write)
    }
}

#[derive(Template)]
#[template(path = "ui/handles.html")]
struct HandlesPage {
    chrome: Chrome,
    title: &'static str,
    kind: &'static str,
    base: &'static str,
    scoped: bool,
    rows: Vec<HandleView>,
    products: Vec<ProductView>,
    product: Option<String>,
    form: Form,
    can_create: bool,
}

impl HandlesPage {
    fn product_tid(&self, id: &Option<String>) -> String {
        let id = id.as_deref().unwrap_or_default();
        self.products.iter().find(|p| p.id == id).map_or_else(|| id.to_owned(), |p| p.tid.clone())
    }
}

#[derive(Debug, Default, Deserialize)]
struct HandleQuery {
    product: Option<String>,
    notice: Option<String>,
}

async fn handle_list_page<T: HandleFamily>(hub: &Hub, me: &Me, product: Option<String>, echo: Echo) -> Page {
    let s = &me.0;
    let product = product.filter(|p| !p.is_empty());
    let rows = T::list(hub, &s.actor, product.clone()).await.or_page(s)?;
    let products = if T::SCOPED {
        svc::list_products(hub, &s.actor, ListParams { limit: Some(1000), offset: None }).await.or_page(s)?.items
    } else {
        Vec::new()
    };
    let page = HandlesPage {
        chrome: Chrome::new(s, "catalog").with(&echo),
        title: T::TITLE,
        kind: T::KIND,
        base: T::BASE,
        scoped: T::SCOPED,
        rows,
        products,
        product,
        form: echo.form.clone(),
        can_create: T::may_create(&s.actor),
    };
    Ok(render_echo(&echo, &page))
}

async fn handle_list<T: HandleFamily>(hub: HubData, me: Me, q: web::Query<HandleQuery>) -> Page {
    let q = q.into_inner();
    let echo = NoticeQuery { notice: q.notice }.echo();
    handle_list_page::<T>(&hub, &me, q.product, echo).await
}

async fn create_handle<T: HandleFamily>(hub: HubData, p: Posted) -> Page {
    match T::create(&hub, &p.signed.actor, &p.form).await {
        Ok(v) => Ok(see_other(&format!("{}/{}?notice=created", T::BASE, v.id))),
        Err(e) => handle_list_page::<T>(&hub, &p.me(), None, Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

#[derive(Template)]
#[template(path = "ui/handle.html")]
struct HandlePage {
    chrome: Chrome,
    title: &'static str,
    kind: &'static str,
    base: &'static str,
    h: HandleView,
    product: String,
    can_write: bool,
}

async fn handle_page<T: HandleFamily>(hub: &Hub, me: &Me, id: String, echo: Echo) -> Page {
    let s = &me.0;
    let h = svc::get::<T>(hub, &s.actor, id).await.or_page(s)?;
    let (product, can_write) = match &h.product {
        Some(p) => {
            let product = svc::get::<Product>(hub, &s.actor, p.clone()).await.or_page(s)?;
            (product.tid, writes_in(&s.actor, p))
        }
        None => (String::new(), global(&s.actor, Action::Write)),
    };
    let page = HandlePage {
        chrome: Chrome::new(s, "catalog").with(&echo),
        title: T::TITLE,
        kind: T::KIND,
        base: T::BASE,
        h,
        product,
        can_write,
    };
    Ok(render_echo(&echo, &page))
}

async fn handle<T: HandleFamily>(hub: HubData, me: Me, id: Id, q: web::Query<NoticeQuery>) -> Page {
    handle_page::<T>(&hub, &me, id.into_inner(), q.echo()).await
}

async fn update_handle<T: HandleFamily>(hub: HubData, p: Posted, id: Id) -> Page {
    let id = id.into_inner();
    let input = HandleUpdate { tid: p.form.opt("tid"), name: p.form.opt("name") };
    match svc::update::<T>(&hub, &p.signed.actor, id.clone(), input).await {
        Ok(v) => Ok(changed(T::BASE, &v.id)),
        Err(e) => handle_page::<T>(&hub, &p.me(), id, Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

async fn delete_handle<T: HandleFamily>(hub: HubData, p: Posted, id: Id) -> Page {
    let id = id.into_inner();
    match svc::delete::<T>(&hub, &p.signed.actor, id.clone()).await {
        Ok(()) => Ok(see_other(&format!("{}?notice=deleted", T::BASE))),
        Err(e) => handle_page::<T>(&hub, &p.me(), id, Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

// ---- delivery procedures -----------------------------------------------------------------

#[derive(Template)]
#[template(path = "ui/procedures.html")]
struct ProceduresPage {
    chrome: Chrome,
    rows: Vec<ProcedureView>,
    methods: Vec<HandleView>,
    form: Form,
    can_create: bool,
}

impl ProceduresPage {
    fn method_tid(&self, id: &str) -> String {
        self.methods.iter().find(|m| m.id == id).map_or_else(|| id.to_owned(), |m| m.tid.clone())
    }
}

/// A procedure's steps as the page shows them: compact JSON.
pub fn steps_text(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

async fn procedures_page(hub: &Hub, me: &Me, echo: Echo) -> Page {
    let s = &me.0;
    let many = ListParams { limit: Some(1000), offset: None };
    let rows =
        svc::list_procedures(hub, &s.actor, ProcedureQuery { delivery_method: None, list: many }).await.or_page(s)?;
    let methods = svc::list_methods(hub, &s.actor, many).await.or_page(s)?.items;
    let page = ProceduresPage {
        chrome: Chrome::new(s, "catalog").with(&echo),
        rows: rows.items,
        methods,
        form: echo.form.clone(),
        can_create: global(&s.actor, Action::Write),
    };
    Ok(render_echo(&echo, &page))
}

async fn procedures(hub: HubData, me: Me, q: web::Query<NoticeQuery>) -> Page {
    procedures_page(&hub, &me, q.echo()).await
}

/// A JSON field of the form (steps, timeouts); `None` when absent or blank.
fn json_field(f: &Form, name: &str) -> Result<Option<Value>> {
    f.opt(name)
        .map(|text| serde_json::from_str(&text).map_err(|e| Error::invalid(format!("{name}: not valid JSON: {e}"))))
        .transpose()
}

async fn create_procedure(hub: HubData, p: Posted) -> Page {
    let f = &p.form;
    let input = (|| -> Result<NewProcedure> {
        Ok(NewProcedure {
            tid: f.text("tid"),
            name: f.text("name"),
            delivery_method: f.text("delivery_method"),
            steps: json_field(f, "steps")?.unwrap_or_else(|| Value::Array(Vec::new())),
            confirm: f.flag("confirm")?.unwrap_or(false),
            timeouts: json_field(f, "timeouts")?.unwrap_or_else(|| Value::Object(serde_json::Map::new())),
        })
    })();
    let result = async { svc::create_procedure(&hub, &p.signed.actor, input?).await }.await;
    match result {
        Ok(v) => Ok(see_other(&format!("/ui/delivery-procedures/{}?notice=created", v.id))),
        Err(e) => procedures_page(&hub, &p.me(), Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

#[derive(Template)]
#[template(path = "ui/procedure.html")]
struct ProcedurePage {
    chrome: Chrome,
    p: ProcedureView,
    methods: Vec<HandleView>,
    form: Form,
    /// The form shows what was typed when a change was refused, else what is stored.
    retyped: bool,
    can_write: bool,
}

impl ProcedurePage {
    fn field(&self, name: &str, stored: String) -> String {
        if self.retyped { self.form.get(name).to_owned() } else { stored }
    }
}

async fn procedure_page(hub: &Hub, me: &Me, id: String, echo: Echo) -> Page {
    let s = &me.0;
    let p = svc::get::<DeliveryProcedure>(hub, &s.actor, id).await.or_page(s)?;
    let methods =
        svc::list_methods(hub, &s.actor, ListParams { limit: Some(1000), offset: None }).await.or_page(s)?.items;
    let page = ProcedurePage {
        chrome: Chrome::new(s, "catalog").with(&echo),
        p,
        methods,
        retyped: echo.problem.is_some(),
        form: echo.form.clone(),
        can_write: global(&s.actor, Action::Write),
    };
    Ok(render_echo(&echo, &page))
}

async fn procedure(hub: HubData, me: Me, id: Id, q: web::Query<NoticeQuery>) -> Page {
    procedure_page(&hub, &me, id.into_inner(), q.echo()).await
}

async fn update_procedure(hub: HubData, p: Posted, id: Id) -> Page {
    let f = &p.form;
    let input = (|| -> Result<ProcedureUpdate> {
        Ok(ProcedureUpdate {
            tid: f.opt("tid"),
            name: f.opt("name"),
            delivery_method: f.opt("delivery_method"),
            steps: json_field(f, "steps")?,
            confirm: f.flag("confirm")?,
            timeouts: json_field(f, "timeouts")?,
        })
    })();
    let id = id.into_inner();
    let result = async { svc::update::<DeliveryProcedure>(&hub, &p.signed.actor, id.clone(), input?).await }.await;
    match result {
        Ok(v) => Ok(changed("/ui/delivery-procedures", &v.id)),
        Err(e) => procedure_page(&hub, &p.me(), id, Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}

async fn delete_procedure(hub: HubData, p: Posted, id: Id) -> Page {
    let id = id.into_inner();
    match svc::delete::<DeliveryProcedure>(&hub, &p.signed.actor, id.clone()).await {
        Ok(()) => Ok(see_other("/ui/delivery-procedures?notice=deleted")),
        Err(e) => procedure_page(&hub, &p.me(), id, Echo::failed(&e, p.form)).await.or_problem(e, &p.signed),
    }
}
