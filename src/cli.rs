//! The command line. Settings come from the config file and the environment (see
//! `settings`); the command line only picks what to do.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::domain::rights::Role;

pub const CONFIG_HELP: &str = "\
Configuration (built-in defaults < config file < environment):
  DEVICEHUB_LISTEN          address to listen on            [default: 127.0.0.1:8080]
  DEVICEHUB_DATA_DIR        data directory                  [default: ./data]
  DATABASE_URL              sqlite://<file> or postgres://… [default: sqlite://<data dir>/devicehub.sqlite3]
  DEVICEHUB_PUBLIC_URL      base URL of links handed out    [default: http://<listen address>/]
  DEVICEHUB_ADMIN_TOKEN     token of the first admin        [default: random, printed once]
  DEVICEHUB_OBJECT_STORE    object store directory or URL   [default: <data dir>/objects]
  DEVICEHUB_MAX_IMAGE_SIZE  largest firmware image, bytes   [default: 2147483648]
  DEVICEHUB_DB_POOL_SIZE    database connections            [default: 8]
  DEVICEHUB_HTTP_WORKERS    HTTP worker threads             [default: number of CPUs]
  DEVICEHUB_LOG_FORMAT      pretty or json                  [default: pretty]
  DEVICEHUB_WORKERS         pipeline workers in `serve`     [default: 2]
  DEVICEHUB_JOB_LEASE_SECS  a crashed worker's job is retried after this    [default: 30]
  DEVICEHUB_JOB_MAX_ATTEMPTS  pipeline attempts before a session fails     [default: 3]
  DEVICEHUB_QUEUE_LIMIT     queued jobs before new ones fail               [default: 10000]
  DEVICEHUB_POLL_INTERVAL_MS  how often workers and timers look for work   [default: 1000]
  DEVICEHUB_LINK_TTL_SECS   lifetime of a download link                    [default: 3600]
  DEVICEHUB_DDI_DEFAULT_PRODUCT  product (handle) hawkBit's tenant DEFAULT stands for [default: none]
  DEVICEHUB_DDI_BODY_TIMEOUT_SECS  time a hawkBit device's request body may take  [default: 30]
  DEVICEHUB_ORPHAN_GRACE_SECS  staging files and unreferenced objects are removed once this old [default: 86400]
  DEVICEHUB_ORPHAN_SWEEP_INTERVAL_SECS  how often orphans are swept (and at start-up) [default: 3600]
  DEVICEHUB_SCRUB_INTERVAL_SECS  every stored object is re-hashed this often (0: never) [default: 86400]
  DEVICEHUB_SCRUB_BYTES_PER_SEC  how fast the scrub reads, per instance (0: unlimited) [default: 16777216]
  DEVICEHUB_UI_IDLE_SECS    web UI session ends after this long idle       [default: 1800]
  DEVICEHUB_UI_SESSION_MAX_SECS  and this long after signing in at the latest [default: 43200]
  DEVICEHUB_UI_TRUST_FORWARDED_FOR  count failed sign-ins per X-Forwarded-For address [default: false]
  DEVICEHUB_TIMEOUT_<STATE> session lifetime per state, seconds (READY, UP_TO_DATE, QUEUED,
                            PROCESSING, CREATED, SUCCESS, FAIL, UNCONFIRMED) [ready: 900]
  RUST_LOG                  log filter                      [default: info]
The config file (TOML) uses the same names in lower case without the prefix,
e.g. listen = \"0.0.0.0:8080\".";

#[derive(Debug, Parser)]
#[command(
    name = "devicehub",
    version,
    about = "Firmware delivery server: firmware-update sessions, hawkBit DDI, object storage",
    long_about = "devicehub serves firmware to devices. Devices ask for an update (REST or hawkBit DDI), \
                  the hub picks the image, prepares it, and serves it with range requests. \
                  Without a command it serves.",
    after_long_help = CONFIG_HELP
)]
pub struct Cli {
    /// Config file (TOML) [default: ./devicehub.toml when it exists]
    #[arg(long, short, env = "DEVICEHUB_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default): HTTP API, workers and timers.
    Serve,
    /// Apply database migrations, then exit.
    Migrate,
    /// Manage people from the command line (works without a running server).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Run only the pipeline workers and the session timers (no HTTP).
    Worker,
    /// Exit 0 if the server on the configured address answers /healthz (for container health checks).
    Healthcheck,
    /// Re-hash every stored firmware image and pipeline output now and quarantine those that
    /// changed; exits 1 when any object is quarantined.
    Scrub,
    /// Make the configured object store this database's (after a lost store was replaced, or a
    /// store restored without its database); `serve` refuses a store that is not.
    AdoptStore,
    /// Seal every secret the database keeps again under the first sealing key (after putting
    /// a new key first in DEVICEHUB_SEALING_KEY / the key file); then the old keys can go.
    Reseal,
    /// Check a signed deliverable as a device would and rebuild the exact target image:
    /// verifies the signature and the manifest, decrypts, decompresses, applies the delta.
    /// Exits 1 naming the check that failed. Needs no server, database or configuration.
    Verify(VerifyArgs),
}

/// See `docs/deliverable-format.md`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The file the device downloaded.
    pub deliverable: PathBuf,
    /// Its minisign signature [default: <deliverable>.minisig]
    #[arg(long)]
    pub signature: Option<PathBuf>,
    /// Its manifest [default: <deliverable>.manifest.json]
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// The signing key's minisign public key: a `.pub` file, or its base64 line itself.
    #[arg(long, short = 'P', value_name = "FILE|KEY")]
    pub public_key: String,
    /// The device's age identity file (for an encrypted deliverable).
    #[arg(long, short = 'i')]
    pub identity: Option<PathBuf>,
    /// The image of the version the device runs (for a delta).
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// Where to write the target image.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user (if missing) and optionally grant a role.
    CreateUser {
        username: String,
        /// Role to grant: admin, maintainer, viewer or device.
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        /// Product (id or handle) the role applies to; everywhere if absent.
        #[arg(long, requires = "role")]
        product: Option<String>,
        /// Read a password for the web UI from the first line of standard input (set or
        /// replaced; 10 to 256 characters). Not an argument, so it stays out of `ps` and
        /// shell histories.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Create an API token for a user and print it (shown only this once).
    CreateToken {
        username: String,
        /// A name to tell the token apart.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse::<Role>().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_is_the_default_and_roles_parse() -> Result<(), clap::Error> {
        assert!(Cli::try_parse_from(["devicehub"])?.command.is_none());
        let cli = Cli::try_parse_from([
            "devicehub",
            "admin",
            "create-user",
            "ci",
            "--role",
            "maintainer",
            "--product",
            "P1",
        ])?;
        assert!(matches!(
            cli.command,
            Some(Command::Admin(AdminCommand::CreateUser { role: Some(Role::Maintainer), .. }))
        ));
        assert!(Cli::try_parse_from(["devicehub", "admin", "create-user", "x", "--role", "root"]).is_err());
        let cli = Cli::try_parse_from(["devicehub", "admin", "create-user", "alice", "--password-stdin"])?;
        assert!(matches!(cli.command, Some(Command::Admin(AdminCommand::CreateUser { password_stdin: true, .. }))));
        Ok(())
    }
}
