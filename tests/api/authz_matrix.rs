//! The authorization matrix, generated from the server's own route table
//! (`devicehub::http::routes()`): every route × every role × an object in the caller's own
//! product and in another, plus no token and a wrong one. Every route must have an entry in
//! [`RULES`] (and every entry a route), so a new route cannot be forgotten.
//!
//! The expectations come from README's rights table, written out here on their own
//! ([`may`], [`sees`]) rather than taken from the server's code:
//! - `admin` may do everything, `maintainer` read and change the catalog and ask for updates,
//!   `viewer` read, `device` ask for updates; a grant holds on one product or everywhere.
//! - products, people and global grants need a global admin; delivery methods and
//!   procedures are read by anyone holding a grant and changed by global maintainers.
//! - what a caller may not see answers like what does not exist (404 for the URL, 422 for a
//!   body); 403 is for what it sees but may not do. A caller sees a product (and what is in
//!   it) when it holds any grant there or everywhere.
//! - hawkBit DDI routes take target and gateway tokens only: an API token in the `Token`
//!   scheme is no DDI credential (401 with an empty body).
//! - The web UI's routes (`/ui/...`) are classed by the API route they stand for
//!   ([`Rule::Ui`]): the same object, the same input as a form, and so the same answer, as a
//!   page: success is a page or a redirect to one, 403/404/422 are error pages with the code
//!   in `X-Devicehub-Error`, and without a session (no cookie, a wrong one) every page
//!   redirects to sign-in. Each role signs in to the UI with its API token.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, Backend, TestApp};

crate::on_both_backends!(every_route_every_role_every_product);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Role {
    GlobalAdmin,
    ProductAdmin,
    Maintainer,
    Viewer,
    Device,
    NoGrants,
    OtherMaintainer,
}

const ROLES: [Role; 7] = [
    Role::GlobalAdmin,
    Role::ProductAdmin,
    Role::Maintainer,
    Role::Viewer,
    Role::Device,
    Role::NoGrants,
    Role::OtherMaintainer,
];

/// Where the object a request is about lies: the product the P1 roles hold grants on, or
/// the other one (where only `OtherMaintainer` does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Own,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Read,
    Write,
    Manage,
    RequestUpdate,
}

/// README's rights table.
fn may(role: Role, act: Act, side: Side) -> bool {
    use Role::*;
    match role {
        GlobalAdmin => true,
        ProductAdmin => side == Side::Own,
        Maintainer => side == Side::Own && act != Act::Manage,
        Viewer => side == Side::Own && act == Act::Read,
        Device => side == Side::Own && act == Act::RequestUpdate,
        NoGrants => false,
        OtherMaintainer => side == Side::Other && act != Act::Manage,
    }
}

/// Whether a role holds any grant covering the product on `side`.
fn sees(role: Role, side: Side) -> bool {
    match role {
        Role::GlobalAdmin => true,
        Role::NoGrants => false,
        Role::OtherMaintainer => side == Side::Other,
        _ => side == Side::Own,
    }
}

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Anyone, even without a token.
    Public,
    /// Any authenticated caller (lists show only what it may read).
    AnyUser,
    /// Global admins only; nothing is named (lists and creations of global things).
    GlobalAdmin,
    /// Anyone holding a grant (the shared delivery methods and procedures, listed).
    AnyGrant,
    /// A shared delivery method or procedure named by the URL; `change`: needs a global writer.
    Shared { change: bool },
    /// An object of the side's product named by the URL.
    InProduct(Act),
    /// Deleting a product: a global admin's business, once the product is seen.
    ProductDelete,
    /// A creation whose body names the side's product (or a model of it).
    CreateIn(Act),
    /// A firmware-update session of the side's product, made by the global admin: for
    /// anyone else like `InProduct` (a session of a product not seen is not found).
    Session(Act),
    /// Asking for an update with a model of the side's product (an unseen model is 422).
    SessionRequest,
    /// A user: `Own` the caller, `Other` someone else. `change`: needs a global admin.
    User { change: bool },
    /// Deleting a user (a global admin cannot delete itself: 409).
    UserDelete,
    /// A user's tokens: the caller's own, or anyone's for a global admin.
    Tokens,
    /// Listing grants: for those who manage something.
    GrantList,
    /// Granting a role on the side's product.
    GrantCreate,
    /// A grant on the side's product.
    Grant,
    /// hawkBit DDI: target and gateway tokens only.
    Ddi,
    /// Setting a password: one's own (`Own`), or anyone's for a global admin.
    Password,
    /// A web UI route standing for this API route (method, pattern): it must answer alike.
    Ui(&'static str, &'static str),
    /// A web UI page that needs no session (the stylesheet, the sign-in form).
    UiPublic,
    /// A web UI page any signed-in user may open (the overview).
    UiAnyUser,
    /// Posting the sign-in form: only with the cookie its page set (403 without).
    UiSignIn,
    /// Signing out (each role with a session of its own for it).
    UiSignOut,
}

/// Every route, by method and pattern, and what it asks.
const RULES: &[(&str, &str, Rule)] = {
    use Act::*;
    use Rule::*;
    &[
        ("GET", "/healthz", Public),
        ("GET", "/readyz", Public),
        ("GET", "/", Public),
        ("GET", "/metrics", Public),
        ("GET", "/api/v1/openapi.json", Public),
        ("GET", "/api/v1/docs{tail:.*}", Public),
        // sessions
        ("GET", "/api/v1/firmware-update", AnyUser),
        ("POST", "/api/v1/firmware-update/request", SessionRequest),
        ("GET", "/api/v1/firmware-update/{id}", Session(Read)),
        ("POST", "/api/v1/firmware-update/{id}/start", Session(RequestUpdate)),
        ("POST", "/api/v1/firmware-update/{id}/confirm", Session(RequestUpdate)),
        ("GET", "/api/v1/firmware-update/{id}/events", Session(Read)),
        ("POST", "/api/v1/firmware-update/{id}/cancel", Session(Write)),
        ("GET", "/api/v1/firmware-update/{id}/download", Session(Read)),
        ("HEAD", "/api/v1/firmware-update/{id}/download", Session(Read)),
        // firmware
        ("GET", "/api/v1/firmware", AnyUser),
        ("POST", "/api/v1/firmware", CreateIn(Write)),
        ("GET", "/api/v1/firmware/{id}", InProduct(Read)),
        ("PATCH", "/api/v1/firmware/{id}", InProduct(Write)),
        ("PUT", "/api/v1/firmware/{id}", InProduct(Write)),
        ("DELETE", "/api/v1/firmware/{id}", InProduct(Write)),
        ("PUT", "/api/v1/firmware/{id}/image", InProduct(Write)),
        ("GET", "/api/v1/firmware/{id}/image", InProduct(Read)),
        ("HEAD", "/api/v1/firmware/{id}/image", InProduct(Read)),
        ("POST", "/api/v1/firmware/{id}/release", InProduct(Write)),
        ("POST", "/api/v1/firmware/{id}/assign", InProduct(Write)),
        // devices
        ("GET", "/api/v1/devices", AnyUser),
        ("POST", "/api/v1/devices", CreateIn(Write)),
        ("GET", "/api/v1/devices/{id}", InProduct(Read)),
        ("PATCH", "/api/v1/devices/{id}", InProduct(Write)),
        ("PUT", "/api/v1/devices/{id}", InProduct(Write)),
        ("DELETE", "/api/v1/devices/{id}", InProduct(Write)),
        ("GET", "/api/v1/devices/{id}/sessions", InProduct(Read)),
        ("POST", "/api/v1/devices/{id}/target-token", InProduct(Write)),
        ("POST", "/api/v1/devices/{id}/request-attributes", InProduct(Write)),
        // catalog
        ("GET", "/api/v1/products", AnyUser),
        ("POST", "/api/v1/products", GlobalAdmin),
        ("GET", "/api/v1/products/{id}", InProduct(Read)),
        ("PATCH", "/api/v1/products/{id}", InProduct(Manage)),
        ("PUT", "/api/v1/products/{id}", InProduct(Manage)),
        ("DELETE", "/api/v1/products/{id}", ProductDelete),
        ("GET", "/api/v1/models", AnyUser),
        ("POST", "/api/v1/models", CreateIn(Write)),
        ("GET", "/api/v1/models/{id}", InProduct(Read)),
        ("PATCH", "/api/v1/models/{id}", InProduct(Write)),
        ("PUT", "/api/v1/models/{id}", InProduct(Write)),
        ("DELETE", "/api/v1/models/{id}", InProduct(Write)),
        ("GET", "/api/v1/channels", AnyUser),
        ("POST", "/api/v1/channels", CreateIn(Write)),
        ("GET", "/api/v1/channels/{id}", InProduct(Read)),
        ("PATCH", "/api/v1/channels/{id}", InProduct(Write)),
        ("PUT", "/api/v1/channels/{id}", InProduct(Write)),
        ("DELETE", "/api/v1/channels/{id}", InProduct(Write)),
        ("GET", "/api/v1/delivery-methods", AnyGrant),
        ("POST", "/api/v1/delivery-methods", GlobalAdmin),
        ("GET", "/api/v1/delivery-methods/{id}", Shared { change: false }),
        ("PATCH", "/api/v1/delivery-methods/{id}", Shared { change: true }),
        ("PUT", "/api/v1/delivery-methods/{id}", Shared { change: true }),
        ("DELETE", "/api/v1/delivery-methods/{id}", Shared { change: true }),
        ("GET", "/api/v1/delivery-procedures", AnyGrant),
        ("POST", "/api/v1/delivery-procedures", GlobalAdmin),
        ("GET", "/api/v1/delivery-procedures/{id}", Shared { change: false }),
        ("PATCH", "/api/v1/delivery-procedures/{id}", Shared { change: true }),
        ("PUT", "/api/v1/delivery-procedures/{id}", Shared { change: true }),
        ("DELETE", "/api/v1/delivery-procedures/{id}", Shared { change: true }),
        // people
        ("GET", "/api/v1/users", GlobalAdmin),
        ("POST", "/api/v1/users", GlobalAdmin),
        ("GET", "/api/v1/users/{id}", User { change: false }),
        ("PATCH", "/api/v1/users/{id}", User { change: true }),
        ("PUT", "/api/v1/users/{id}", User { change: true }),
        ("DELETE", "/api/v1/users/{id}", UserDelete),
        ("POST", "/api/v1/users/{id}/password", Password),
        ("GET", "/api/v1/users/{id}/tokens", Tokens),
        ("POST", "/api/v1/users/{id}/tokens", Tokens),
        ("GET", "/api/v1/users/{id}/tokens/{token}", Tokens),
        ("DELETE", "/api/v1/users/{id}/tokens/{token}", Tokens),
        ("GET", "/api/v1/grants", GrantList),
        ("POST", "/api/v1/grants", GrantCreate),
        ("GET", "/api/v1/grants/{id}", Grant),
        ("DELETE", "/api/v1/grants/{id}", Grant),
        // signing keys (delivery procedures): admins make them, public keys are public
        ("GET", "/api/v1/signing-keys", AnyGrant),
        ("POST", "/api/v1/signing-keys", GlobalAdmin),
        ("GET", "/api/v1/public-keys", Public),
        ("GET", "/api/v1/public-keys/{id}", Public),
        // the web UI: each route answers like the API route it stands for
        ("GET", "/ui/static/{file}", UiPublic),
        ("GET", "/ui/sign-in", UiPublic),
        ("POST", "/ui/sign-in", UiSignIn),
        ("POST", "/ui/sign-out", UiSignOut),
        ("GET", "/ui", UiAnyUser),
        ("GET", "/ui/products", Ui("GET", "/api/v1/products")),
        ("POST", "/ui/products", Ui("POST", "/api/v1/products")),
        ("GET", "/ui/products/{id}", Ui("GET", "/api/v1/products/{id}")),
        ("POST", "/ui/products/{id}", Ui("PATCH", "/api/v1/products/{id}")),
        ("POST", "/ui/products/{id}/delete", Ui("DELETE", "/api/v1/products/{id}")),
        ("GET", "/ui/models", Ui("GET", "/api/v1/models")),
        ("POST", "/ui/models", Ui("POST", "/api/v1/models")),
        ("GET", "/ui/models/{id}", Ui("GET", "/api/v1/models/{id}")),
        ("POST", "/ui/models/{id}", Ui("PATCH", "/api/v1/models/{id}")),
        ("POST", "/ui/models/{id}/delete", Ui("DELETE", "/api/v1/models/{id}")),
        ("GET", "/ui/channels", Ui("GET", "/api/v1/channels")),
        ("POST", "/ui/channels", Ui("POST", "/api/v1/channels")),
        ("GET", "/ui/channels/{id}", Ui("GET", "/api/v1/channels/{id}")),
        ("POST", "/ui/channels/{id}", Ui("PATCH", "/api/v1/channels/{id}")),
        ("POST", "/ui/channels/{id}/delete", Ui("DELETE", "/api/v1/channels/{id}")),
        ("GET", "/ui/delivery-methods", Ui("GET", "/api/v1/delivery-methods")),
        ("POST", "/ui/delivery-methods", Ui("POST", "/api/v1/delivery-methods")),
        ("GET", "/ui/delivery-methods/{id}", Ui("GET", "/api/v1/delivery-methods/{id}")),
        ("POST", "/ui/delivery-methods/{id}", Ui("PATCH", "/api/v1/delivery-methods/{id}")),
        ("POST", "/ui/delivery-methods/{id}/delete", Ui("DELETE", "/api/v1/delivery-methods/{id}")),
        ("GET", "/ui/delivery-procedures", Ui("GET", "/api/v1/delivery-procedures")),
        ("POST", "/ui/delivery-procedures", Ui("POST", "/api/v1/delivery-procedures")),
        ("GET", "/ui/delivery-procedures/{id}", Ui("GET", "/api/v1/delivery-procedures/{id}")),
        ("POST", "/ui/delivery-procedures/{id}", Ui("PATCH", "/api/v1/delivery-procedures/{id}")),
        ("POST", "/ui/delivery-procedures/{id}/delete", Ui("DELETE", "/api/v1/delivery-procedures/{id}")),
        ("GET", "/ui/firmware", Ui("GET", "/api/v1/firmware")),
        ("POST", "/ui/firmware", Ui("POST", "/api/v1/firmware")),
        ("GET", "/ui/firmware/{id}", Ui("GET", "/api/v1/firmware/{id}")),
        ("POST", "/ui/firmware/{id}", Ui("PATCH", "/api/v1/firmware/{id}")),
        ("POST", "/ui/firmware/{id}/delete", Ui("DELETE", "/api/v1/firmware/{id}")),
        ("PUT", "/ui/firmware/{id}/image", Ui("PUT", "/api/v1/firmware/{id}/image")),
        ("POST", "/ui/firmware/{id}/release", Ui("POST", "/api/v1/firmware/{id}/release")),
        ("POST", "/ui/firmware/{id}/assign", Ui("POST", "/api/v1/firmware/{id}/assign")),
        ("GET", "/ui/devices", Ui("GET", "/api/v1/devices")),
        ("POST", "/ui/devices", Ui("POST", "/api/v1/devices")),
        ("GET", "/ui/devices/{id}", Ui("GET", "/api/v1/devices/{id}")),
        ("POST", "/ui/devices/{id}", Ui("PATCH", "/api/v1/devices/{id}")),
        ("POST", "/ui/devices/{id}/delete", Ui("DELETE", "/api/v1/devices/{id}")),
        ("POST", "/ui/devices/{id}/target-token", Ui("POST", "/api/v1/devices/{id}/target-token")),
        ("GET", "/ui/sessions", Ui("GET", "/api/v1/firmware-update")),
        ("GET", "/ui/sessions/rows", Ui("GET", "/api/v1/firmware-update")),
        ("GET", "/ui/sessions/{id}", Ui("GET", "/api/v1/firmware-update/{id}")),
        ("POST", "/ui/sessions/{id}/cancel", Ui("POST", "/api/v1/firmware-update/{id}/cancel")),
        ("GET", "/ui/users", Ui("GET", "/api/v1/users")),
        ("POST", "/ui/users", Ui("POST", "/api/v1/users")),
        ("GET", "/ui/users/{id}", Ui("GET", "/api/v1/users/{id}")),
        ("POST", "/ui/users/{id}", Ui("PATCH", "/api/v1/users/{id}")),
        ("POST", "/ui/users/{id}/delete", Ui("DELETE", "/api/v1/users/{id}")),
        ("POST", "/ui/users/{id}/password", Ui("POST", "/api/v1/users/{id}/password")),
        ("POST", "/ui/users/{id}/tokens", Ui("POST", "/api/v1/users/{id}/tokens")),
        ("POST", "/ui/users/{id}/tokens/{token}/revoke", Ui("DELETE", "/api/v1/users/{id}/tokens/{token}")),
        ("GET", "/ui/grants", Ui("GET", "/api/v1/grants")),
        ("POST", "/ui/grants", Ui("POST", "/api/v1/grants")),
        ("POST", "/ui/grants/{id}/delete", Ui("DELETE", "/api/v1/grants/{id}")),
        // hawkBit DDI
        ("GET", "/{tenant}/controller/v1/{controller}", Ddi),
        ("PUT", "/{tenant}/controller/v1/{controller}/configData", Ddi),
        ("GET", "/{tenant}/controller/v1/{controller}/deploymentBase/{action}", Ddi),
        ("POST", "/{tenant}/controller/v1/{controller}/deploymentBase/{action}/feedback", Ddi),
        ("GET", "/{tenant}/controller/v1/{controller}/cancelAction/{action}", Ddi),
        ("POST", "/{tenant}/controller/v1/{controller}/cancelAction/{action}/feedback", Ddi),
        ("GET", "/{tenant}/controller/v1/{controller}/installedBase/{action}", Ddi),
        ("PUT", "/{tenant}/controller/v1/{controller}/installedBase", Ddi),
        ("GET", "/{tenant}/controller/v1/{controller}/confirmationBase", Ddi),
        ("POST", "/{tenant}/controller/v1/{controller}/confirmationBase/activateAutoConfirm", Ddi),
        ("POST", "/{tenant}/controller/v1/{controller}/confirmationBase/deactivateAutoConfirm", Ddi),
        ("GET", "/{tenant}/controller/v1/{controller}/confirmationBase/{action}", Ddi),
        ("POST", "/{tenant}/controller/v1/{controller}/confirmationBase/{action}/feedback", Ddi),
        ("GET", "/{tenant}/controller/v1/{controller}/softwaremodules/{module}/artifacts", Ddi),
        ("GET", "/{tenant}/controller/v1/{controller}/softwaremodules/{module}/artifacts/{file}", Ddi),
        ("HEAD", "/{tenant}/controller/v1/{controller}/softwaremodules/{module}/artifacts/{file}", Ddi),
    ]
};

/// The answer a caller should get, as a status class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Success,
    /// 401 (API: `unauthorized`; DDI: an empty body).
    Unauthenticated,
    Forbidden,
    NotFound,
    UnknownReference,
    /// A particular status the rights allow but the object's state refuses.
    Exactly(u16),
}

impl Class {
    /// Whether an answer fits; `code`: the JSON error code, `None` where there is no body
    /// to read it from (HEAD).
    fn admits(self, status: u16, code: Option<&str>) -> bool {
        let code_is = |want: &str| code.is_none_or(|c| c == want);
        match self {
            Class::Success => (200..300).contains(&status),
            Class::Unauthenticated => status == 401 && code_is("unauthorized"),
            Class::Forbidden => status == 403 && code_is("forbidden"),
            Class::NotFound => status == 404 && code_is("not_found"),
            Class::UnknownReference => status == 422 && code_is("unknown_reference"),
            Class::Exactly(s) => status == s,
        }
    }
}

/// README's rights table applied to one route, role and side.
fn expected(rule: Rule, role: Role, side: Side) -> Class {
    use Class::*;
    let allow = |ok: bool, otherwise: Class| if ok { Success } else { otherwise };
    let admin = role == Role::GlobalAdmin;
    match rule {
        Rule::Public | Rule::AnyUser => Success,
        Rule::GlobalAdmin => allow(admin, Forbidden),
        Rule::AnyGrant => allow(role != Role::NoGrants, Forbidden),
        Rule::Shared { .. } if role == Role::NoGrants => NotFound,
        Rule::Shared { change } => allow(!change || admin, Forbidden),
        Rule::InProduct(_) | Rule::ProductDelete if !sees(role, side) => NotFound,
        Rule::InProduct(act) => allow(may(role, act, side), Forbidden),
        Rule::ProductDelete => allow(admin, Forbidden),
        Rule::CreateIn(_) if !sees(role, side) => UnknownReference,
        Rule::CreateIn(act) => allow(may(role, act, side), Forbidden),
        // the sessions were all made by the global admin, who may always act on its own
        Rule::Session(_) if !sees(role, side) => NotFound,
        Rule::Session(act) => allow(may(role, act, side), Forbidden),
        Rule::SessionRequest if !sees(role, side) => UnknownReference,
        Rule::SessionRequest => allow(may(role, Act::RequestUpdate, side), Forbidden),
        Rule::User { change } => match side {
            Side::Own => allow(!change || admin, Forbidden),
            Side::Other => allow(admin, NotFound),
        },
        Rule::UserDelete => match side {
            Side::Own if admin => Exactly(409),
            Side::Own => Forbidden,
            Side::Other => allow(admin, NotFound),
        },
        Rule::Tokens => allow(side == Side::Own || admin, NotFound),
        Rule::GrantList => allow(admin || role == Role::ProductAdmin, Forbidden),
        Rule::GrantCreate if !sees(role, side) => UnknownReference,
        Rule::GrantCreate => allow(may(role, Act::Manage, side), Forbidden),
        Rule::Grant => allow(may(role, Act::Manage, side), NotFound),
        Rule::Password => match side {
            Side::Own => Success,
            Side::Other => allow(admin, NotFound),
        },
        Rule::Ui(m, p) => expected(api_rule(m, p), role, side),
        Rule::UiPublic | Rule::UiAnyUser | Rule::UiSignOut => Success,
        Rule::UiSignIn => Exactly(403),
        Rule::Ddi => unreachable!("DDI routes have their own callers"),
    }
}

/// The rule of an API route.
fn api_rule(method: &str, pattern: &str) -> Rule {
    RULES
        .iter()
        .find(|(m, p, _)| *m == method && *p == pattern)
        .map(|(_, _, rule)| *rule)
        .unwrap_or_else(|| panic!("{method} {pattern}: a UI route stands for an API route that is not in RULES"))
}

/// Whether the side matters for a rule (otherwise a route runs once).
fn sided(rule: Rule) -> bool {
    match rule {
        Rule::Ui(m, p) => sided(api_rule(m, p)),
        Rule::UiPublic | Rule::UiAnyUser | Rule::UiSignIn | Rule::UiSignOut => false,
        _ => !matches!(
            rule,
            Rule::Public | Rule::AnyUser | Rule::GlobalAdmin | Rule::AnyGrant | Rule::Shared { .. } | Rule::GrantList
        ),
    }
}

/// Whether a rule is the web UI's (checked by [`ui_matrix`]).
fn is_ui(rule: Rule) -> bool {
    matches!(rule, Rule::Ui(..) | Rule::UiPublic | Rule::UiAnyUser | Rule::UiSignIn | Rule::UiSignOut)
}

/// A product's fixtures.
struct Product {
    id: String,
    tid: String,
    model: String,
    channel: String,
    /// A draft with an image (reads, changes, image upload).
    draft: String,
    /// A draft with an image for the release route.
    to_release: String,
    /// Released, with an image (assignments).
    released: String,
    device: String,
    /// Its target token is rotated by the matrix.
    rotated_device: String,
    /// The device the assign route assigns to.
    assigned_device: String,
    /// Sessions made by the global admin: one in `ready`, one in `created`, one assigned
    /// (for the cancel route, also `created`).
    ready: String,
    created: String,
    assigned: String,
    /// A viewer grant of the bystander here.
    grant: String,
}

struct World {
    sides: [Product; 2],
    tokens: HashMap<Role, String>,
    /// A token id of each role's user (not the one it calls with).
    token_ids: HashMap<Role, String>,
    bystander_token: String,
}

impl World {
    fn side(&self, side: Side) -> &Product {
        &self.sides[if side == Side::Own { 0 } else { 1 }]
    }
}

const BYSTANDER: &str = "bystander";
/// What the password routes set (and give as the current one, once set).
const MATRIX_PASSWORD: &str = "matrix-password-1";

fn username(role: Role) -> &'static str {
    match role {
        Role::GlobalAdmin => "admin",
        Role::ProductAdmin => "padmin",
        Role::Maintainer => "maint",
        Role::Viewer => "viewer",
        Role::Device => "device",
        Role::NoGrants => "nobody",
        Role::OtherMaintainer => "other",
    }
}

/// Makes everything the matrix needs, as the global admin.
async fn world(app: &TestApp) -> World {
    app.seed_catalog().await;
    app.patch("/api/v1/products/P1", json!({"ddi": {"gateway_token_auth": true}})).await.expect(200);
    app.post("/api/v1/products", json!({"tid": "P2", "name": "two"})).await.expect(201);
    app.post("/api/v1/models", json!({"tid": "M2", "name": "m", "product": "P2"})).await.expect(201);
    app.post("/api/v1/channels", json!({"tid": "C2", "name": "c", "product": "P2"})).await.expect(201);
    app.post("/api/v1/users", json!({"username": BYSTANDER})).await.expect(201);
    let bystander_token = app.post(&format!("/api/v1/users/{BYSTANDER}/tokens"), json!({"name": "b"})).await.id();

    let mut sides = Vec::new();
    for (tid, model, channel) in [("P1", "CAFEBABE", "BAADFOOD"), ("P2", "M2", "C2")] {
        let id = app.get(&format!("/api/v1/products/{tid}")).await.expect(200).id();
        let firmware = |version: &str, release: bool| {
            let body = json!({"model": model, "version": version, "channels": [channel]});
            async move {
                let fw = app.post("/api/v1/firmware", body).await.expect(201).id();
                app.upload(&fw, vec![7; 1000], "").await.expect(200);
                if release {
                    app.post(&format!("/api/v1/firmware/{fw}/release"), json!({})).await.expect(200);
                }
                fw
            }
        };
        let released = firmware("1.0.0", true).await;
        let draft = firmware("2.0.0-draft", false).await;
        let to_release = firmware("2.0.0-release", false).await;
        let device = |name: String| {
            let body = json!({"device_id": name, "model": model, "channel": channel});
            async move { app.post("/api/v1/devices", body).await.expect(201).id() }
        };
        let request = json!({"model": model, "delivery_procedure_tid": "dp-handle", "current_channel": channel, "current_firmware_version": "0.1.0"});
        let ready = app.request_update(request.clone()).await.expect(201).id();
        let created = app.request_update(request).await.expect(201).id();
        app.start_session(&created).await.expect(200);
        app.wait_for_state(&created, &["created"]).await;
        let cancel_device = device(format!("{tid}-cancel")).await;
        let r = app
            .post(
                &format!("/api/v1/firmware/{released}/assign"),
                json!({"devices": [cancel_device], "delivery_procedure": "dp-handle"}),
            )
            .await;
        let assigned = r.expect(201).body["sessions"][0]["id"].as_str().unwrap().to_owned();
        app.wait_for_state(&assigned, &["created"]).await;
        let grant = app.post("/api/v1/grants", json!({"user": BYSTANDER, "product": tid, "role": "viewer"})).await;
        sides.push(Product {
            id,
            tid: tid.into(),
            model: model.into(),
            channel: channel.into(),
            draft,
            to_release,
            released,
            device: device(format!("{tid}-device")).await,
            rotated_device: device(format!("{tid}-rotated")).await,
            assigned_device: device(format!("{tid}-assigned")).await,
            ready,
            created,
            assigned,
            grant: grant.expect(201).id(),
        });
    }
    let [own, other]: [Product; 2] = sides.try_into().ok().unwrap();

    let mut tokens = HashMap::new();
    let mut token_ids = HashMap::new();
    for role in ROLES {
        let name = username(role);
        let token = match role {
            Role::GlobalAdmin => ADMIN_TOKEN.to_owned(),
            Role::ProductAdmin => app.user_with_role(name, Some("admin"), Some(&own.id)).await,
            Role::Maintainer => app.user_with_role(name, Some("maintainer"), Some(&own.id)).await,
            Role::Viewer => app.user_with_role(name, Some("viewer"), Some(&own.id)).await,
            Role::Device => app.user_with_role(name, Some("device"), Some(&own.id)).await,
            Role::NoGrants => app.user_with_role(name, None, None).await,
            Role::OtherMaintainer => app.user_with_role(name, Some("maintainer"), Some(&other.id)).await,
        };
        tokens.insert(role, token);
        token_ids.insert(role, app.post(&format!("/api/v1/users/{name}/tokens"), json!({"name": "spare"})).await.id());
    }
    World { sides: [own, other], tokens, token_ids, bystander_token }
}

enum Body {
    None,
    Json(Value),
    Raw(Vec<u8>),
}

async fn fresh_user(app: &TestApp, n: usize) -> String {
    let name = format!("fresh-user-{n}");
    app.post("/api/v1/users", json!({"username": name})).await.expect(201);
    name
}

/// Something made afresh for a call that is expected to delete (or otherwise use up) it.
async fn fresh(app: &TestApp, kind: &str, p: &Product, n: usize) -> String {
    let made = match kind {
        "firmware" => app.post("/api/v1/firmware", json!({"model": p.model, "version": format!("8.{n}.0")})).await,
        "devices" => app.post("/api/v1/devices", json!({"device_id": format!("fresh-{n}"), "model": p.model})).await,
        "products" => {
            let tid = format!("FRESH{n}");
            app.post("/api/v1/products", json!({"tid": tid, "name": "n"})).await.expect(201);
            return tid;
        }
        "models" | "channels" => {
            let tid = format!("fresh-{kind}-{n}");
            app.post(&format!("/api/v1/{kind}"), json!({"tid": tid, "name": "n", "product": p.tid})).await.expect(201);
            return tid;
        }
        "delivery-methods" => {
            app.post("/api/v1/delivery-methods", json!({"tid": format!("fdm{n}"), "name": "n"})).await
        }
        "delivery-procedures" => {
            let body = json!({"tid": format!("fdp{n}"), "name": "n", "delivery_method": "DEADBEEF"});
            app.post("/api/v1/delivery-procedures", body).await
        }
        "users" => return fresh_user(app, n).await,
        "grants" => {
            let user = fresh_user(app, n).await;
            app.post("/api/v1/grants", json!({"user": user, "product": p.tid, "role": "viewer"})).await
        }
        other => panic!("nothing fresh of kind {other}"),
    };
    made.expect(201).id()
}

/// One call of the matrix: a role (or nobody) sending a route's request about an object on
/// `side`. `use_up`: the call is expected to succeed and deletes what it names, so it gets a
/// fresh object; `n` keeps handles unique.
struct Call<'a> {
    method: &'a Method,
    pattern: &'a str,
    role: Option<Role>,
    side: Side,
    use_up: bool,
    n: usize,
}

/// The path and body of a call.
async fn request(app: &TestApp, w: &World, call: Call<'_>) -> (String, Body) {
    let Call { method, pattern, role, side, use_up, n } = call;
    let p = w.side(side);
    let rest = pattern.trim_start_matches("/api/v1/");
    let family = rest.split('/').next().unwrap_or_default();
    let me = username(role.unwrap_or(Role::GlobalAdmin)).to_owned();
    let deletes = *method == Method::DELETE && use_up;
    let id = match (family, rest) {
        ("firmware-update", r) if r.ends_with("/start") => p.ready.clone(),
        ("firmware-update", r) if r.ends_with("/cancel") => p.assigned.clone(),
        ("firmware-update", _) => p.created.clone(),
        ("firmware", r) if r.ends_with("/release") => p.to_release.clone(),
        ("firmware", r) if r.ends_with("/assign") => p.released.clone(),
        ("devices", r) if r.ends_with("/target-token") => p.rotated_device.clone(),
        ("firmware" | "devices" | "grants" | "models" | "channels" | "products", _) if deletes => {
            fresh(app, family, p, n).await
        }
        ("delivery-methods" | "delivery-procedures", _) if deletes => fresh(app, family, p, n).await,
        ("firmware", _) => p.draft.clone(),
        ("devices", _) => p.device.clone(),
        ("products", _) => p.tid.clone(),
        ("models", _) => p.model.clone(),
        ("channels", _) => p.channel.clone(),
        ("delivery-methods", _) => "DEADBEEF".into(),
        ("delivery-procedures", _) => "dp-handle".into(),
        ("grants", _) => p.grant.clone(),
        ("public-keys", _) => {
            let key = app.post("/api/v1/signing-keys", json!({"name": format!("matrix-{n}")})).await.expect(201);
            key.body["key_id"].as_str().unwrap_or_default().to_owned()
        }
        ("users", r) if r.contains("/tokens") => {
            if side == Side::Own {
                me.clone()
            } else {
                BYSTANDER.into()
            }
        }
        ("users", _) if deletes && side == Side::Other => fresh_user(app, n).await,
        ("users", _) => {
            if side == Side::Own {
                me.clone()
            } else {
                BYSTANDER.into()
            }
        }
        _ => String::new(),
    };
    let token = if !pattern.ends_with("{token}") {
        String::new()
    } else if deletes {
        let owner = if side == Side::Own { me.clone() } else { BYSTANDER.into() };
        app.post(&format!("/api/v1/users/{owner}/tokens"), json!({"name": "doomed"})).await.expect(201).id()
    } else if side == Side::Own {
        role.map_or_else(|| w.token_ids[&Role::GlobalAdmin].clone(), |r| w.token_ids[&r].clone())
    } else {
        w.bystander_token.clone()
    };
    let path = pattern.replace("{id}", &id).replace("{token}", &token).replace("{tail:.*}", "/index.html");

    let body = match (method.as_str(), rest) {
        ("POST", "firmware-update/request") => Body::Json(
            json!({"model": p.model, "delivery_procedure_tid": "dp-handle", "current_channel": p.channel, "current_firmware_version": "0.1.0"}),
        ),
        ("POST", r) if r.ends_with("/confirm") => Body::Json(json!({"success": true})),
        ("POST", "firmware") => Body::Json(json!({"model": p.model, "version": format!("9.{n}.0")})),
        ("PATCH" | "PUT", "firmware/{id}") => Body::Json(json!({"channels": [p.channel]})),
        ("PUT", "firmware/{id}/image") => Body::Raw(vec![n as u8; 100]),
        ("POST", "firmware/{id}/assign") => {
            // A fresh device for each assignment that goes through: a new assignment supersedes
            // the device's open one, and on PostgreSQL superseding one still in the pipeline
            // can deadlock with the worker claiming it (reported with issue 9; not this test's
            // subject).
            let device = if use_up { fresh(app, "devices", p, n).await } else { p.assigned_device.clone() };
            Body::Json(json!({"devices": [device], "delivery_procedure": "dp-handle"}))
        }
        ("POST", "devices") => Body::Json(json!({"device_id": format!("new-{n}"), "product": p.tid})),
        ("PATCH" | "PUT", "devices/{id}") => Body::Json(json!({"name": "a name"})),
        ("POST", "products") => Body::Json(json!({"tid": format!("NEW{n}"), "name": "n"})),
        ("PATCH" | "PUT", "products/{id}") => Body::Json(json!({"name": "a name"})),
        ("POST", "models" | "channels") => {
            Body::Json(json!({"tid": format!("new-{n}"), "name": "n", "product": p.tid}))
        }
        ("PATCH" | "PUT", "models/{id}" | "channels/{id}" | "delivery-methods/{id}" | "delivery-procedures/{id}") => {
            Body::Json(json!({"name": "a name"}))
        }
        ("POST", "delivery-methods") => Body::Json(json!({"tid": format!("dm{n}"), "name": "n"})),
        ("POST", "delivery-procedures") => {
            Body::Json(json!({"tid": format!("dp{n}"), "name": "n", "delivery_method": "DEADBEEF"}))
        }
        ("POST", "users") => Body::Json(json!({"username": format!("new-{n}")})),
        ("POST", "signing-keys") => Body::Json(json!({"name": format!("key-{n}")})),
        ("PATCH" | "PUT", "users/{id}") => Body::Json(json!({"active": true})),
        ("POST", "users/{id}/tokens") => Body::Json(json!({"name": "t"})),
        ("POST", "users/{id}/password") => {
            Body::Json(json!({"password": MATRIX_PASSWORD, "current_password": MATRIX_PASSWORD}))
        }
        ("POST", "grants") => {
            let user = fresh_user(app, n).await;
            Body::Json(json!({"user": user, "product": p.tid, "role": "viewer"}))
        }
        (_, _) => Body::None,
    };
    (path, body)
}

async fn send(app: &TestApp, method: Method, path: &str, authorization: Option<&str>, body: Body) -> (u16, String) {
    let mut req = app.client.request(method, app.url(path));
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    req = match body {
        Body::None => req,
        Body::Json(v) => req.json(&v),
        Body::Raw(bytes) => req.body(bytes),
    };
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let bytes = r.bytes().await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let shown =
        if bytes.is_empty() { String::new() } else { String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into() };
    let code = body["error"].as_str().unwrap_or_default().to_owned();
    (status, if code.is_empty() { shown } else { code })
}

async fn every_route_every_role_every_product(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let routes = devicehub::http::routes();
    let mut failures = Vec::new();

    // the table and the routes agree, both ways
    for route in &routes {
        if !RULES.iter().any(|(m, p, _)| *m == route.method.as_str() && *p == route.pattern) {
            failures.push(format!("{} {} ({}): no expectation in RULES", route.method, route.pattern, route.family));
        }
    }
    for (m, p, _) in RULES {
        if !routes.iter().any(|r| r.method.as_str() == *m && r.pattern == *p) {
            failures.push(format!("{m} {p}: in RULES but not a route"));
        }
    }
    assert!(failures.is_empty(), "the route table and the matrix disagree:\n{}", failures.join("\n"));

    let w = world(&app).await;
    let mut n = 0;
    let mut checked = 0;
    for &(m, pattern, rule) in RULES {
        if matches!(rule, Rule::Ddi) || is_ui(rule) {
            continue;
        }
        let method = Method::from_bytes(m.as_bytes()).unwrap();
        let sides: &[Side] = if sided(rule) { &[Side::Own, Side::Other] } else { &[Side::Own] };
        for &side in sides {
            // no token and a wrong one: 401 everywhere but the public routes
            for auth in [None, Some("Token dh_not_a_real_token")] {
                n += 1;
                let call = Call { method: &method, pattern, role: None, side, use_up: false, n };
                let (path, body) = request(&app, &w, call).await;
                let (status, code) = send(&app, method.clone(), &path, auth, body).await;
                let want = if matches!(rule, Rule::Public) { Class::Success } else { Class::Unauthenticated };
                checked += 1;
                if !want.admits(status, (method != Method::HEAD).then_some(code.as_str())) {
                    failures.push(format!("{m} {path} with {auth:?}: expected {want:?}, got {status} {code}"));
                }
            }
            for role in ROLES {
                n += 1;
                let want = expected(rule, role, side);
                let call = Call { method: &method, pattern, role: Some(role), side, use_up: want == Class::Success, n };
                let (path, body) = request(&app, &w, call).await;
                let auth = format!("Token {}", w.tokens[&role]);
                let (status, code) = send(&app, method.clone(), &path, Some(&auth), body).await;
                checked += 1;
                if !want.admits(status, (method != Method::HEAD).then_some(code.as_str())) {
                    failures.push(format!(
                        "{m} {pattern} ({path}) as {role:?} on the {side:?} product: expected {want:?}, got {status} {code}"
                    ));
                }
            }
        }
    }
    checked += ddi_matrix(&app, &w, &mut failures).await;
    checked += ui_matrix(&app, &w, &mut n, &mut failures).await;
    assert!(
        failures.is_empty(),
        "{} of {checked} calls answered against the rights table:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // lists only show what a caller may read
    let other = Some(w.tokens[&Role::OtherMaintainer].as_str());
    let listed = app.call(Method::GET, "/api/v1/products", other, None).await.expect(200);
    assert_eq!(listed.body["count"], 1);
    assert_eq!(listed.body["results"][0]["tid"], "P2");
    let nobody = Some(w.tokens[&Role::NoGrants].as_str());
    for list in ["/api/v1/products", "/api/v1/firmware", "/api/v1/devices", "/api/v1/firmware-update"] {
        assert_eq!(app.call(Method::GET, list, nobody, None).await.expect(200).body["count"], 0, "{list}");
    }
}

/// A device and what its DDI routes need.
struct DdiDevice {
    controller: String,
    token: String,
    action: String,
}

/// hawkBit DDI: every route with every kind of credential.
async fn ddi_matrix(app: &TestApp, w: &World, failures: &mut Vec<String>) -> usize {
    let p = w.side(Side::Own);
    let device = |name: &'static str| async move {
        let r = app.post("/api/v1/devices", json!({"device_id": name, "model": p.model, "channel": p.channel})).await;
        let token = r.expect(201).body["target_token"].as_str().unwrap().to_owned();
        let r = app
            .post(
                &format!("/api/v1/firmware/{}/assign", p.released),
                json!({"devices": [name], "delivery_procedure": "dp-handle"}),
            )
            .await;
        let session = r.expect(201).body["sessions"][0].clone();
        app.wait_for_state(session["id"].as_str().unwrap(), &["created"]).await;
        let action = session["action"]["id"].as_str().unwrap().to_owned();
        (DdiDevice { controller: name.into(), token, action }, session["id"].as_str().unwrap().to_owned())
    };
    let ddi = |d: &DdiDevice, tail: &str| format!("/P1/controller/v1/{}{tail}", d.controller);
    let (main, _) = device("ddi-main").await;
    let (cancel, cancel_session) = device("ddi-cancel").await;
    app.post(&format!("/api/v1/firmware-update/{cancel_session}/cancel"), json!({})).await.expect(200);
    let (installed, _) = device("ddi-installed").await;
    let closed = json!({"status": {"execution": "closed", "result": {"finished": "success"}}});
    let auth = format!("TargetToken {}", installed.token);
    let feedback = ddi(&installed, &format!("/deploymentBase/{}/feedback", installed.action));
    assert_eq!(send(app, Method::POST, &feedback, Some(&auth), Body::Json(closed)).await.0, 200);
    app.patch("/api/v1/products/P1", json!({"ddi": {"confirmation_required": true}})).await.expect(200);
    let (consent, _) = device("ddi-consent").await;
    app.patch("/api/v1/products/P1", json!({"ddi": {"confirmation_required": false}})).await.expect(200);
    let auth = format!("TargetToken {}", main.token);
    let base = app
        .client
        .get(app.url(&ddi(&main, &format!("/deploymentBase/{}", main.action))))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    let base: Value = base.json().await.unwrap();
    let file = base["deployment"]["chunks"][0]["artifacts"][0]["filename"].as_str().unwrap().to_owned();

    let proceeding = json!({"status": {"execution": "proceeding", "result": {"finished": "none"}}});
    let mut checked = 0;
    for &(m, pattern, rule) in RULES {
        if !matches!(rule, Rule::Ddi) {
            continue;
        }
        let method = Method::from_bytes(m.as_bytes()).unwrap();
        let tail = pattern.trim_start_matches("/{tenant}/controller/v1/{controller}");
        let d = match tail {
            t if t.starts_with("/cancelAction") => &cancel,
            t if t.starts_with("/installedBase") => &installed,
            t if t.starts_with("/confirmationBase/{action}") => &consent,
            _ => &main,
        };
        let stranger = if std::ptr::eq(d, &main) { &cancel } else { &main };
        let path = ddi(d, &tail.replace("{action}", &d.action).replace("{module}", &d.action).replace("{file}", &file));
        let body = || match tail {
            "/configData" => Body::Json(json!({"mode": "merge", "data": {"k": "v"}})),
            t if t.ends_with("/feedback") && t.starts_with("/confirmationBase") => {
                Body::Json(json!({"confirmation": "denied"}))
            }
            t if t.ends_with("/feedback") => Body::Json(proceeding.clone()),
            "/installedBase" => Body::Json(json!({"name": p.model, "version": "1.0.0"})),
            _ => Body::None,
        };
        let mut callers: Vec<(String, Option<String>, bool)> = vec![
            ("no credentials".into(), None, false),
            ("a wrong target token".into(), Some("TargetToken not-the-token".into()), false),
            ("the device's target token".into(), Some(format!("TargetToken {}", d.token)), true),
            ("another device's target token".into(), Some(format!("TargetToken {}", stranger.token)), false),
        ];
        for role in ROLES {
            let token = &w.tokens[&role];
            callers.push((format!("{role:?}'s API token"), Some(format!("Token {token}")), false));
            let gateway = may(role, Act::RequestUpdate, Side::Own);
            callers.push((format!("{role:?}'s gateway token"), Some(format!("GatewayToken {token}")), gateway));
        }
        for (who, authorization, allowed) in callers {
            if tail == "/confirmationBase/activateAutoConfirm" && allowed {
                let reset = ddi(&main, "/confirmationBase/deactivateAutoConfirm");
                let target = format!("TargetToken {}", main.token);
                assert_eq!(send(app, Method::POST, &reset, Some(&target), Body::None).await.0, 200);
            }
            let (status, shown) = send(app, method.clone(), &path, authorization.as_deref(), body()).await;
            checked += 1;
            let ok = if allowed { (200..300).contains(&status) } else { status == 401 && shown.is_empty() };
            if !ok {
                let want = if allowed { "2xx" } else { "401 with an empty body" };
                failures.push(format!("{m} {path} with {who}: expected {want}, got {status} {shown}"));
            }
        }
    }
    checked
}

/// A form's fields from a JSON body the API would get (arrays become repeated fields).
fn form_fields(body: &Value) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    if let Value::Object(map) = body {
        for (k, v) in map {
            let mut push = |v: &Value| match v {
                Value::String(s) => fields.push((k.clone(), s.clone())),
                Value::Number(_) | Value::Bool(_) => fields.push((k.clone(), v.to_string())),
                _ => {}
            };
            match v {
                Value::Array(items) => items.iter().for_each(&mut push),
                other => push(other),
            }
        }
    }
    fields
}

/// The UI path for an API call: the API path's ids put into the UI pattern.
fn ui_path(api_pattern: &str, api_path: &str, ui_pattern: &str) -> String {
    let mut path = ui_pattern.to_owned();
    for (name, value) in api_pattern.split('/').zip(api_path.split('/')) {
        if name.starts_with('{') {
            path = path.replace(name, value);
        }
    }
    path
}

/// A UI request: `cookie` names the session, `csrf` goes with a form (or, for the upload, a
/// header). Returns the status, the error code (header or JSON) and the redirect's target.
async fn send_ui(
    app: &TestApp,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    csrf: &str,
    body: Body,
) -> (u16, String, String) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut req = client.request(method.clone(), app.url(path));
    if let Some(c) = cookie {
        req = req.header("Cookie", c);
    }
    req = match (method.as_str(), body) {
        ("POST", body) => {
            let mut fields = vec![("csrf".to_owned(), csrf.to_owned())];
            if let Body::Json(v) = body {
                fields.extend(form_fields(&v));
            }
            let form = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
            req.header("Content-Type", "application/x-www-form-urlencoded").body(form)
        }
        (_, Body::Raw(bytes)) => req.header("X-CSRF-Token", csrf).body(bytes),
        _ => req,
    };
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (mut code, location) = (header("x-devicehub-error"), header("location"));
    let text = r.text().await.unwrap_or_default();
    if code.is_empty() {
        code = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_default();
    }
    (status, code, location)
}

/// Whether a UI answer fits a class: success is a page or a redirect to one, and without a
/// session a page redirects to sign-in (a script's upload gets 401).
fn ui_admits(want: Class, status: u16, code: &str, location: &str) -> bool {
    let to_sign_in = status == 303 && location.starts_with("/ui/sign-in?next=");
    match want {
        Class::Success => (200..300).contains(&status) || (status == 303 && !to_sign_in),
        Class::Unauthenticated => to_sign_in || status == 401,
        other => other.admits(status, Some(code)),
    }
}

/// The web UI's routes: every route × the API route's expectations, as pages.
async fn ui_matrix(app: &TestApp, w: &World, n: &mut usize, failures: &mut Vec<String>) -> usize {
    // signed in only now: the password routes above end a user's browser sessions
    let mut browsers = HashMap::new();
    for role in ROLES {
        browsers.insert(role, crate::ui::Browser::with_token(app, &w.tokens[&role]).await);
    }
    let mut checked = 0;
    for &(m, pattern, rule) in RULES {
        if !is_ui(rule) {
            continue;
        }
        let method = Method::from_bytes(m.as_bytes()).unwrap();
        let sides: &[Side] = if sided(rule) { &[Side::Own, Side::Other] } else { &[Side::Own] };
        for &side in sides {
            for role in std::iter::once(None).chain(ROLES.map(Some)) {
                *n += 1;
                let want = match role {
                    Some(role) => expected(rule, role, side),
                    None if matches!(rule, Rule::UiPublic) => Class::Success,
                    None if matches!(rule, Rule::UiSignIn) => Class::Exactly(403),
                    None => Class::Unauthenticated,
                };
                let (path, body) = match rule {
                    Rule::Ui(api_method, api_pattern) => {
                        let api = Method::from_bytes(api_method.as_bytes()).unwrap();
                        let use_up = role.is_some() && want == Class::Success;
                        let call = Call { method: &api, pattern: api_pattern, role, side, use_up, n: *n };
                        let (api_path, body) = request(app, w, call).await;
                        (ui_path(api_pattern, &api_path, pattern), body)
                    }
                    _ => (pattern.replace("{file}", "ui.css"), Body::None),
                };
                // signing out ends the session it is sent with: use one of its own
                let throwaway = match (rule, role) {
                    (Rule::UiSignOut, Some(r)) => Some(crate::ui::Browser::with_token(app, &w.tokens[&r]).await),
                    _ => None,
                };
                let browser = throwaway.as_ref().or_else(|| role.map(|r| &browsers[&r]));
                let (cookie, csrf) = match browser {
                    Some(b) => (Some(b.cookie.clone()), b.csrf.clone()),
                    // not signed in; half of these calls bring a cookie that names no session
                    None if n.is_multiple_of(2) => (Some("dh_session=dh_not_a_session".to_owned()), "x".to_owned()),
                    None => (None, String::new()),
                };
                let (status, code, location) =
                    send_ui(app, method.clone(), &path, cookie.as_deref(), &csrf, body).await;
                checked += 1;
                if !ui_admits(want, status, &code, &location) {
                    failures.push(format!(
                        "{m} {pattern} ({path}) as {role:?} on the {side:?} product: expected {want:?}, got {status} {code} {location}"
                    ));
                }
            }
        }
    }
    checked
}
