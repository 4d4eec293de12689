//! Builds and runs the server: open the database and migrate, open the object store,
//! create the first admin, bind, serve. `build` binds before it returns, so tests can
//! listen on port 0 and read the port.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{App, HttpServer, dev::Server};
use anyhow::Context;
use url::Url;

use crate::db::Db;
use crate::service::Hub;
use crate::service::links::{self, LinkSigner};
use crate::service::people::{self, Bootstrap};
use crate::service::sealing::Sealer;
use crate::service::store_identity;
use crate::settings::{Settings, parse_public_url};
use crate::storage::{Storage, keys};

pub struct Application {
    port: u16,
    server: Server,
    hub: Hub,
    /// Pipeline workers and timers; they stop when the server does.
    background: tokio::task::JoinSet<()>,
}

/// Opens the database (migrating it) and the object store: what every role of the binary needs.
/// The roles that read and write objects (`serve`, `worker`) then check that the store is the
/// database's (`service::store_identity`).
pub async fn open(settings: &Settings) -> anyhow::Result<(Db, Storage)> {
    let url = settings.database_url.clone();
    let pool_size = settings.db_pool_size;
    let db = tokio::task::spawn_blocking(move || -> anyhow::Result<Db> {
        let db = Db::connect(&url, pool_size)?;
        let applied = db.migrate()?;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "applied database migrations");
        }
        Ok(db)
    })
    .await
    .context("database start-up task failed")??;
    let storage = Storage::open(&settings.object_store, &settings.object_store_options)?
        .with_redirect(settings.download_redirect.clone())?;
    let mib = |n: u64| usize::try_from(n.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    let kib = |n: u64| usize::try_from(n.saturating_mul(1 << 10)).unwrap_or(usize::MAX);
    storage.tune_downloads(mib(settings.download_map_mib), kib(settings.download_chunk_kib));
    // Instances starting together all write this object at once, and a store may refuse
    // one of several concurrent writes of a key (s3s-fs does); a few tries with a pause
    // tell that from a store that is really unwritable.
    let mut attempt = 1;
    loop {
        match storage.put_bytes(keys::READY_MARKER, b"devicehub object store\n".to_vec()).await {
            Ok(_) => break,
            Err(e) if attempt < 5 => {
                tracing::warn!(attempt, error = %e, "writing to the object store failed; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(anyhow::Error::from(e).context("writing to the object store")),
        }
    }
    Ok((db, storage))
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let (db, storage) = open(&settings).await?;
        store_identity::check(&db, &storage, &settings).await?;
        tracing::info!(database = db.backend().name(), object_store = storage.describe(), "storage ready");

        let configured = settings.admin_token.as_ref().map(|t| t.expose().to_owned());
        let bootstrap = db.run(move |conn| people::bootstrap_admin(conn, configured.as_deref())).await?;
        announce_bootstrap(&bootstrap);

        let listener = TcpListener::bind(&settings.listen).with_context(|| format!("binding {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let public_url = match &settings.public_url {
            Some(url) => url.clone(),
            None => default_public_url(addr)?,
        };
        let hub = shared_hub(db, storage, settings, public_url).await?;
        let mut background = crate::jobs::spawn(&hub, hub.settings.workers);
        crate::amqp::spawn(&hub, &mut background);
        background.spawn(crate::service::tally::run(hub.clone()));

        let shared = hub.clone();
        let server = HttpServer::new(move || {
            let hub = shared.clone();
            App::new().wrap_fn(crate::http::edge).configure(move |cfg| crate::http::configure(cfg, hub))
        })
        .workers(hub.settings.http_workers)
        .listen(listener)?
        .run();

        tracing::info!(address = %addr, public_url = %hub.public_url, "listening");
        Ok(Application { port: addr.port(), server, hub, background })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or a stop through the handle), then drains.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let _background = self.background;
        let served = self.server.await;
        // what range requests counted since the last flush
        if let Err(e) = crate::service::tally::flush(&self.hub).await {
            tracing::warn!(error = %e, "writing the bytes served by range requests failed at shutdown");
        }
        served
    }
}

/// The hub every door and worker shares, with the link-signing key every instance agrees on.
pub async fn shared_hub(db: Db, storage: Storage, settings: Settings, public_url: Url) -> anyhow::Result<Hub> {
    let secret = db
        .run(|conn| Ok(crate::db::secret::get_or_create(conn, links::SECRET_NAME, LinkSigner::generate_secret)?))
        .await?;
    let key = hex::decode(&secret).context("the stored download-link key is not hex")?;
    let sealer = Arc::new(Sealer::load(&settings)?);
    sealer.check_against(&db).await?;
    Ok(Hub {
        db,
        storage,
        settings: Arc::new(settings),
        public_url,
        links: LinkSigner::new(&key),
        jobs_ready: Arc::new(tokio::sync::Notify::new()),
        couriers: Default::default(),
        broker: Default::default(),
        sealer,
        recent_downloads: Default::default(),
        recent_artifacts: Default::default(),
        tally: Default::default(),
    })
}

/// Runs only the workers and timers, until SIGINT/SIGTERM (`devicehub worker`).
pub async fn run_workers(settings: Settings) -> anyhow::Result<()> {
    let (db, storage) = open(&settings).await?;
    store_identity::check(&db, &storage, &settings).await?;
    let public_url = match &settings.public_url {
        Some(url) => url.clone(),
        None => parse_public_url(&format!("http://{}/", settings.listen))?,
    };
    let workers = settings.workers.max(1);
    let hub = shared_hub(db, storage, settings, public_url).await?;
    let mut _background = crate::jobs::spawn(&hub, workers);
    // the workers deliver the outbox: the DMF courier must be here too
    crate::amqp::spawn(&hub, &mut _background);
    shutdown_signal().await;
    tracing::info!("stopping workers");
    Ok(())
}

/// `devicehub scrub`: re-hashes every stored object now (`service::scrub`).
pub async fn scrub(settings: Settings) -> anyhow::Result<crate::service::scrub::Report> {
    let (db, storage) = open(&settings).await?;
    store_identity::check(&db, &storage, &settings).await?;
    let public_url = match &settings.public_url {
        Some(url) => url.clone(),
        None => parse_public_url(&format!("http://{}/", settings.listen))?,
    };
    let hub = shared_hub(db, storage, settings, public_url).await?;
    Ok(crate::service::scrub::everything(&hub).await?)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// `http://<bound address>/`; a wildcard address becomes `localhost`.
fn default_public_url(addr: std::net::SocketAddr) -> anyhow::Result<Url> {
    let host = if addr.ip().is_unspecified() { "localhost".to_owned() } else { addr.ip().to_string() };
    let host = if addr.is_ipv6() && host != "localhost" { format!("[{host}]") } else { host };
    parse_public_url(&format!("http://{host}:{}/", addr.port()))
}

fn announce_bootstrap(bootstrap: &Bootstrap) {
    match bootstrap {
        Bootstrap::AlreadyDone => {}
        Bootstrap::CreatedWithConfiguredToken => {
            tracing::info!(
                user = people::BOOTSTRAP_ADMIN,
                "created the first admin with the token from DEVICEHUB_ADMIN_TOKEN"
            );
        }
        Bootstrap::CreatedWithNewToken(token) => {
            tracing::info!(
                user = people::BOOTSTRAP_ADMIN,
                "created the first admin; its token is printed once on stdout"
            );
            // stdout, not the log: a token must not end up in a log collector.
            println!(
                "\n  devicehub: created the admin user '{}'. Its API token, shown only this once:\n\n      {token}\n\n  Use it as 'Authorization: Token {token}'.\n",
                people::BOOTSTRAP_ADMIN
            );
        }
    }
}

/// `devicehub reseal`: every sealed value sealed again under the first sealing key.
pub async fn reseal(settings: Settings) -> anyhow::Result<crate::service::sealing::Resealed> {
    let (db, _) = open(&settings).await?;
    let sealer = Arc::new(Sealer::load(&settings)?);
    Ok(crate::service::sealing::reseal_everything(&db, sealer).await?)
}
