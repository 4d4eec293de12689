//! Every route of every door, declared once. Each module lists its routes as a table of
//! [`Route`]s; [`mount`] turns a table into actix scopes and resources, and
//! [`super::routes`] exports all of them (method, path pattern, family), so a test can
//! walk the real routes: one that is mounted but not expected there fails it.
//!
//! Each family keeps its own static scope (`/firmware-update`, `/devices`, …), so a request
//! is matched only against the few patterns of its family (actix matches `{id}` routes with a
//! regex each; see `api/mod.rs`). Scopes and, inside a scope, paths are mounted in the order
//! they first appear in the table: a literal path (`/request`) must come before a pattern
//! that would also match it (`/{id}`).

use actix_web::http::Method;
use actix_web::web;

/// A route as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: Method,
    /// The full path pattern, in actix's syntax: `/api/v1/products/{id}`.
    pub pattern: String,
    /// What it is about (`products`, `tokens`, `ddi`, `public`, …).
    pub family: &'static str,
}

/// Attaches a handler to a route: `|r| r.to(handler)`.
pub type Handler = fn(actix_web::Route) -> actix_web::Route;

/// One route of a table.
pub struct Route {
    family: &'static str,
    /// The family's static prefix; `""` mounts the path at the top of its parent.
    scope: &'static str,
    path: &'static str,
    method: Method,
    handler: Handler,
}

impl Route {
    pub fn new(
        family: &'static str,
        scope: &'static str,
        method: Method,
        path: &'static str,
        handler: Handler,
    ) -> Route {
        Route { family, scope, path, method, handler }
    }

    /// How clients see it when the table is mounted under `prefix` (`/api/v1`).
    pub fn info(&self, prefix: &str) -> RouteInfo {
        RouteInfo {
            method: self.method.clone(),
            pattern: format!("{prefix}{}{}", self.scope, self.path),
            family: self.family,
        }
    }
}

/// Distinct values in the order they first appear.
fn in_order<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = Vec::new();
    for item in items {
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    seen
}

/// The pattern of the route a request matched, as [`RouteInfo::pattern`] writes it: the
/// label of its latency in `/metrics`. Each resource carries its own, so the edge
/// middleware reads it back instead of matching the path again.
#[derive(Debug, Clone, Copy)]
pub struct MatchedRoute(pub &'static str);

/// Mounts a table (whose paths clients see under `prefix`, e.g. `/api/v1`): one scope per
/// distinct `scope`, inside it one resource per distinct path, with one route per method.
pub fn mount(cfg: &mut web::ServiceConfig, prefix: &str, routes: &[Route]) {
    for scope in in_order(routes.iter().map(|r| r.scope)) {
        let in_scope: Vec<&Route> = routes.iter().filter(|r| r.scope == scope).collect();
        let resources = in_order(in_scope.iter().map(|r| r.path)).into_iter().map(|path| {
            let pattern = MatchedRoute(crate::metrics::intern(format!("{prefix}{scope}{path}")));
            in_scope.iter().filter(|r| r.path == path).fold(web::resource(path).app_data(pattern), |res, r| {
                res.route((r.handler)(web::route().method(r.method.clone())))
            })
        });
        if scope.is_empty() {
            // A scope with an empty prefix would swallow every request; mount at the top.
            resources.for_each(|res| {
                cfg.service(res);
            });
        } else {
            cfg.service(resources.fold(web::scope(scope), |s, res| s.service(res)));
        }
    }
}
