//! One installation, one database and one object store: the store holds a marker object
//! ([`keys::STORE_ID`]) with an id that the database records too (`server_secrets`). An
//! instance whose store and database disagree refuses to start, saying what is wrong and
//! what to do: instances that share a database but not its store would otherwise run side by
//! side while most downloads fail with "object not found" (issue 9, defect 10), and a new
//! database pointed at a store full of objects would let the orphan sweep delete them.
//!
//! | database | store marker | start-up |
//! |---|---|---|
//! | none | none | a new installation (or one from before markers): the marker is created (only once, even when instances start together) and recorded |
//! | X | X | the right pair |
//! | X | Y | refused: the store is another installation's |
//! | X | none | refused: the store is not the one the other instances use (or it was lost) |
//! | none | Y, the store holds no objects | the store is taken over (e.g. a first start that stopped in between) |
//! | none | Y, the store holds objects; or none, the store holds objects the database does not record | refused: a new or another database on an installation's store (a store restored without its database, a wrong `DATABASE_URL`) |
//! | none | none, the database records objects the store does not hold | refused: not the store they are in |
//!
//! `devicehub adopt-store` makes the configured store the database's when that is really
//! meant (a lost store replaced by an empty one, a store restored without its database).

use anyhow::bail;

use crate::db::{self, Db};
use crate::settings::{Settings, redact_url};
use crate::storage::{Storage, keys};

/// The `server_secrets` row holding the id of the database's object store.
pub const SECRET_NAME: &str = "object_store_id";

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn recorded(db: &Db) -> anyhow::Result<Option<String>> {
    Ok(db.run(|conn| Ok(db::secret::find(conn, SECRET_NAME)?)).await?)
}

/// Records `id` unless the database has one already; answers the one it keeps.
async fn record(db: &Db, id: &str) -> anyhow::Result<String> {
    let id = id.to_owned();
    Ok(db.run(move |conn| Ok(db::secret::get_or_create(conn, SECRET_NAME, || id)?)).await?)
}

async fn marker(storage: &Storage) -> anyhow::Result<Option<String>> {
    let bytes = storage.get_bytes(keys::STORE_ID).await?;
    Ok(bytes.map(|b| String::from_utf8_lossy(&b).trim().to_owned()))
}

/// (firmware images, pipeline outputs) the database records.
async fn objects_recorded(db: &Db) -> anyhow::Result<(i64, i64)> {
    Ok(db.run(|conn| Ok((db::firmware::count_with_image(conn)?, db::artifact::count(conn)?))).await?)
}

/// Checks that the object store is the database's (marking a new one); refuses otherwise.
pub async fn check(db: &Db, storage: &Storage, settings: &Settings) -> anyhow::Result<()> {
    let store = storage.describe();
    let database = redact_url(&settings.database_url);
    let same_store = "Every instance of one installation must use the same database and the same object store";
    match (recorded(db).await?, marker(storage).await?) {
        (Some(ours), Some(theirs)) if ours == theirs => Ok(()),
        (Some(ours), Some(theirs)) => bail!(
            "the object store {store} belongs to another devicehub installation: its marker {} holds the id \
             {theirs}, but this database ({database}) uses the object store with the id {ours}. {same_store}: \
             point DEVICEHUB_OBJECT_STORE at the store whose {} holds {ours}, or DATABASE_URL at this store's \
             database. If this store really is meant to replace the database's own, run `devicehub adopt-store` once.",
            keys::STORE_ID,
            keys::STORE_ID
        ),
        (Some(ours), None) => {
            let (images, outputs) = objects_recorded(db).await?;
            bail!(
                "the object store {store} is not this database's: it has no marker {}, while this database \
                 ({database}) uses the object store with the id {ours} and records {images} firmware images and \
                 {outputs} pipeline outputs in it. {same_store}: point DEVICEHUB_OBJECT_STORE at the store the \
                 other instances use (its {} holds {ours}). If that store is lost and this one replaces it, run \
                 `devicehub adopt-store` once (downloads of the objects it lacks then fail, and the integrity \
                 scrub quarantines them).",
                keys::STORE_ID,
                keys::STORE_ID
            )
        }
        (None, theirs) => {
            let holds_objects = storage.holds_objects().await?;
            let (images, outputs) = objects_recorded(db).await?;
            let records_objects = images + outputs > 0;
            if holds_objects && (theirs.is_some() || !records_objects) {
                bail!(
                    "the object store {store} already holds objects of a devicehub installation{}, but this \
                     database ({database}) has never used it (a new database, or another one?). Point DATABASE_URL \
                     at that installation's database. A new installation needs an empty object store. To use this \
                     store with this database anyway, run `devicehub adopt-store` once: the objects no row of this \
                     database refers to are then deleted by the orphan sweep.",
                    theirs.as_deref().map(|id| format!(" (store id {id})")).unwrap_or_default()
                );
            }
            if !holds_objects && records_objects {
                bail!(
                    "the object store {store} holds no objects, but this database ({database}) records \
                     {images} firmware images and {outputs} pipeline outputs: it is not the store they are in. \
                     {same_store}: point DEVICEHUB_OBJECT_STORE at it. If that store is lost and this one replaces \
                     it, run `devicehub adopt-store` once (downloads of the objects it lacks then fail, and the \
                     integrity scrub quarantines them)."
                );
            }
            let id = match theirs {
                Some(id) => id,
                None => mark_new(storage).await?,
            };
            let kept = record(db, &id).await?;
            if kept != id {
                bail!(
                    "another instance started at the same time with another object store: this database now uses \
                     the object store with the id {kept}, but this instance's store {store} holds {id}. {same_store}: \
                     point DEVICEHUB_OBJECT_STORE at the store the other instance uses (its {} holds {kept}).",
                    keys::STORE_ID
                );
            }
            tracing::info!(store_id = %id, object_store = store, "the object store is this database's");
            Ok(())
        }
    }
}

/// Marks an unmarked store with a new id; when another instance sharing it marked it first,
/// answers that instance's id.
async fn mark_new(storage: &Storage) -> anyhow::Result<String> {
    let id = new_id();
    if storage.put_new(keys::STORE_ID, id.clone().into_bytes()).await? {
        return Ok(id);
    }
    marker(storage).await?.ok_or_else(|| anyhow::anyhow!("the store's marker {} vanished", keys::STORE_ID))
}

/// `devicehub adopt-store`: makes the configured store the database's, whatever either held.
/// Returns the id they now share.
pub async fn adopt(db: &Db, storage: &Storage) -> anyhow::Result<String> {
    let id = match (recorded(db).await?, marker(storage).await?) {
        (Some(ours), _) => ours,
        (None, Some(theirs)) => record(db, &theirs).await?,
        (None, None) => record(db, &new_id()).await?,
    };
    storage.put_bytes(keys::STORE_ID, id.clone().into_bytes()).await?;
    Ok(id)
}
