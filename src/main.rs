//! The `devicehub` binary: parse the command line, then hand over to the library.

use std::process::ExitCode;

use clap::Parser;
use devicehub::cli::{AdminCommand, Cli, Command, VerifyArgs};
use devicehub::settings::Settings;
use devicehub::{service, startup, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Verify(args)) = cli.command {
        // a device-side check: no settings, no database
        return verify(args);
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("devicehub: configuration error: {e:#}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    match run(cli.command.unwrap_or(Command::Serve), settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("devicehub: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let app = startup::Application::build(settings).await?;
            println!("devicehub listening on {}", app.hub().public_url);
            app.run_until_stopped().await?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Migrate => {
            let (db, _) = startup::open(&settings).await?;
            println!("database is up to date ({})", db.backend().name());
            Ok(())
        }
        Command::Admin(cmd) => {
            let (db, _) = startup::open(&settings).await?;
            admin(db, cmd).await
        }
        Command::Worker => startup::run_workers(settings).await,
        Command::Scrub => {
            let started = std::time::Instant::now();
            let report = startup::scrub(settings).await?;
            println!(
                "checked {} objects ({} bytes) in {:.1} s",
                report.checked,
                report.bytes,
                started.elapsed().as_secs_f64()
            );
            for key in &report.restored {
                println!("restored: {key} matches its recorded digests again; its quarantine is lifted");
            }
            for (key, error) in &report.failed {
                println!("not checked: {key}: {error}");
            }
            for finding in &report.quarantined {
                println!("quarantined: {}: {}", finding.key, finding.digests());
            }
            if !report.quarantined.is_empty() {
                anyhow::bail!("{} stored objects are quarantined", report.quarantined.len());
            }
            Ok(())
        }
        Command::AdoptStore => {
            let (db, storage) = startup::open(&settings).await?;
            let id = service::store_identity::adopt(&db, &storage).await?;
            println!("the object store {} is now this database's (store id {id})", storage.describe());
            Ok(())
        }
        Command::Reseal => {
            let done = startup::reseal(settings).await?;
            println!("sealed {} values again under the first sealing key", done.values);
            Ok(())
        }
        Command::Healthcheck => healthcheck(&settings.listen).await,
        Command::Verify(args) => anyhow::bail!("verify {} runs before settings load", args.deliverable.display()),
    }
}

/// `devicehub verify`: every check, then the target image; or the check that failed.
fn verify(args: VerifyArgs) -> ExitCode {
    use devicehub::pipeline::deliverable;
    let with_suffix = |suffix: &str| {
        let mut path = args.deliverable.clone().into_os_string();
        path.push(suffix);
        std::path::PathBuf::from(path)
    };
    let public_key = match std::fs::read_to_string(&args.public_key) {
        Ok(text) => text,
        Err(_) => args.public_key.clone(), // not a file: the key itself
    };
    let check = deliverable::Check {
        signature: args.signature.clone().unwrap_or_else(|| with_suffix(".minisig")),
        manifest: args.manifest.clone().unwrap_or_else(|| with_suffix(".manifest.json")),
        deliverable: args.deliverable,
        public_key,
        identity: args.identity,
        base: args.base,
        output: args.output,
    };
    match deliverable::verify(&check) {
        Ok(m) => {
            println!(
                "verified: {} {} (firmware {}), signed by key {}; wrote {} ({} bytes, SHA-256 {})",
                m.model,
                m.version,
                m.firmware_id,
                m.key_id,
                check.output.display(),
                m.target.size,
                m.target.sha256
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("devicehub verify: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn admin(db: devicehub::db::Db, cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::CreateUser { username, role, product, password_stdin } => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                Some(line.trim_end_matches(['\r', '\n']).to_owned())
            } else {
                None
            };
            let with_password = password.is_some();
            let user = db
                .run(move |conn| {
                    let grant = role.map(|r| (r, product.as_deref()));
                    service::people::ensure_user_with_grant(conn, &username, grant, password.as_deref())
                })
                .await?;
            let note = if with_password { ", password set" } else { "" };
            println!("user '{}' ({}){note}", user.username, user.id);
        }
        AdminCommand::CreateToken { username, name } => {
            let token = db.run(move |conn| service::people::create_token_for(conn, &username, &name)).await?;
            println!("{token}");
        }
    }
    Ok(())
}

/// A minimal HTTP/1.0 GET of /healthz, so the container image needs no curl.
async fn healthcheck(listen: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = listen.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]");
    let mut stream =
        tokio::time::timeout(std::time::Duration::from_secs(5), tokio::net::TcpStream::connect(&addr)).await??;
    stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n").await?;
    let mut response = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut response)).await??;
    let status_line = String::from_utf8_lossy(&response).lines().next().unwrap_or_default().to_owned();
    anyhow::ensure!(status_line.contains(" 200 "), "unhealthy: {status_line}");
    println!("healthy");
    Ok(())
}
