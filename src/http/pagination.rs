//! Lists answer like Django REST framework's limit/offset pagination:
//! `{"count", "next", "previous", "results"}`, with absolute `next`/`previous` links.

use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

use crate::service::Hub;
use crate::service::Listing;

#[derive(Serialize)]
struct Paginated<T> {
    count: i64,
    next: Option<String>,
    previous: Option<String>,
    results: Vec<T>,
}

pub fn respond<T: Serialize>(hub: &Hub, req: &HttpRequest, listing: Listing<T>) -> HttpResponse {
    let Listing { total, page, items } = listing;
    let link = |offset: i64| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
            if k != "limit" && k != "offset" {
                query.append_pair(&k, &v);
            }
        }
        query.append_pair("limit", &page.limit.to_string());
        query.append_pair("offset", &offset.to_string());
        format!("{}?{}", hub.link(req.path()), query.finish())
    };
    // `ListParams::page` bounds both numbers; the checked arithmetic keeps a link from ever
    // wrapping around should a caller build a page some other way.
    let next = page.offset.checked_add(page.limit).filter(|n| *n < total).map(link);
    let previous = (page.offset > 0).then(|| link(page.offset.saturating_sub(page.limit).max(0)));
    HttpResponse::Ok().json(Paginated { count: total, next, previous, results: items })
}
