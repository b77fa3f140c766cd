//! The store on disk: migrations from an older schema, refusal of newer and foreign files, the
//! single-owner lock, file permissions.

use std::path::PathBuf;

use rusqlite::Connection;

use super::schema::{APPLICATION_ID, latest_version, migrate_to};
use super::*;
use crate::clients::{AuthMethod, Client};
use crate::ids;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "mcp-auth-issuer-store-{tag}-{}-{}",
            std::process::id(),
            ids::random_alnum(8)
        ));
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn version(dir: &Path) -> u32 {
    let conn = Connection::open(dir.join(DB_FILE)).unwrap();
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

/// A state written by schema version 1 (the first release, before users and machines were
/// saved) opens: it is migrated to the latest version and everything it held is still there.
#[test]
fn a_version_1_state_is_migrated_and_keeps_its_records() {
    let dir = TempDir::new("migrate");
    std::fs::create_dir_all(&dir.0).unwrap();
    {
        // Exactly what a version-1 issuer wrote: its schema, and rows in its shape.
        let mut conn = Connection::open(dir.0.join(DB_FILE)).unwrap();
        migrate_to(&mut conn, 1).unwrap();
        conn.execute_batch(
            r#"
            INSERT INTO meta (key, value) VALUES ('secret_key', 'sk_test_from_v1');
            INSERT INTO clients (client_id, secret_hash, auth_method, redirect_uris, grant_types,
                                 client_name, logo_uri, created_at)
            VALUES ('client_v1', NULL, 'none', '["http://127.0.0.1/cb"]',
                    '["authorization_code","refresh_token"]', 'Old Client', NULL, 1);
            INSERT INTO refresh_tokens (hash, client_id, subject, scopes, resource, expires_at,
                                        status, grant_id)
            VALUES ('aa', 'client_v1', 'user_1', '["profile"]', NULL, 9999999999999, 'active',
                    'grant_1');
            INSERT INTO consents (grant_id, client_id, user_id, scopes, resource, granted_at)
            VALUES ('grant_1', 'client_v1', 'user_1', '["profile"]', NULL, 1234000);
            "#,
        )
        .unwrap();
        assert_eq!(version(&dir.0), 1);
    }

    let store = Store::open(&dir.0).expect("a version-1 state opens");
    assert_eq!(version(&dir.0), latest_version());
    let client = store.read(|tx| tx.client("client_v1")).unwrap().unwrap();
    assert_eq!(client.client_name.as_deref(), Some("Old Client"));
    assert_eq!(client.auth_method, AuthMethod::None);
    assert!(client.allows_grant("refresh_token"));
    let refresh = store.read(|tx| tx.refresh("aa")).unwrap().unwrap();
    assert_eq!(refresh.status, RefreshStatus::Active);
    // Version 3 added the issue time: a refresh token from before gets its consent's time.
    assert_eq!(refresh.created_at_ms, 1_234_000);
    assert_eq!(
        store.read(|tx| tx.meta("secret_key")).unwrap().as_deref(),
        Some("sk_test_from_v1")
    );
    // What version 2 added works on the migrated state.
    assert!(store.read(|tx| tx.users()).unwrap().is_empty());
    let users = crate::default_users();
    store.write(|tx| tx.replace_users(&users)).unwrap();
    assert_eq!(store.read(|tx| tx.users()).unwrap(), users);
    // And what version 3 added: machines and their secret keys (by hash).
    let machine = Machine {
        id: "mch_v3".into(),
        name: "worker".into(),
        created_at_ms: 5,
        scoped_machines: vec!["mch_other".into()],
        default_token_ttl: 3600,
    };
    store
        .write(|tx| tx.insert_machine(&machine, &ids::hash("ak_machine_secret")))
        .unwrap();
    assert_eq!(
        store.read(|tx| tx.machine("mch_v3")).unwrap(),
        Some(machine)
    );
    assert_eq!(
        store
            .read(|tx| tx.machine_of_secret(&ids::hash("ak_machine_secret")))
            .unwrap()
            .as_deref(),
        Some("mch_v3")
    );
}

/// A version-3 state (before CIMD) migrates to version 4: its clients stay, and the metadata
/// document cache works: a fresh document is found, an expired one is not and is pruned, a
/// second put replaces the first.
#[test]
fn a_version_3_state_gains_the_metadata_document_cache() {
    let dir = TempDir::new("migrate-v4");
    std::fs::create_dir_all(&dir.0).unwrap();
    {
        let mut conn = Connection::open(dir.0.join(DB_FILE)).unwrap();
        migrate_to(&mut conn, 3).unwrap();
        conn.execute_batch(
            r#"
            INSERT INTO clients (client_id, secret_hash, auth_method, redirect_uris, grant_types,
                                 client_name, logo_uri, created_at)
            VALUES ('client_v3', NULL, 'none', '["http://127.0.0.1/cb"]',
                    '["authorization_code"]', 'V3 Client', NULL, 1);
            "#,
        )
        .unwrap();
        assert_eq!(version(&dir.0), 3);
    }
    let store = Store::open(&dir.0).expect("a version-3 state opens");
    assert_eq!(version(&dir.0), 4);
    assert!(store.read(|tx| tx.client("client_v3")).unwrap().is_some());

    let url = "https://app.example/client.json";
    store
        .write(|tx| tx.put_metadata_document(url, "{\"v\":1}", 1_000, 61_000))
        .unwrap();
    let cached = |now| store.read(|tx| tx.metadata_document(url, now)).unwrap();
    assert_eq!(cached(60_999).as_deref(), Some("{\"v\":1}"));
    assert_eq!(cached(61_000), None, "expired at expires_at");
    store
        .write(|tx| tx.put_metadata_document(url, "{\"v\":2}", 70_000, 130_000))
        .unwrap();
    assert_eq!(cached(71_000).as_deref(), Some("{\"v\":2}"), "replaced");
    assert_eq!(store.write(|tx| tx.prune_expired(130_000)).unwrap(), 1);
    assert_eq!(cached(0), None, "pruned");
}

/// A state from a newer issuer is refused, untouched, with a message naming both versions.
#[test]
fn a_newer_state_is_refused() {
    let dir = TempDir::new("newer");
    std::fs::create_dir_all(&dir.0).unwrap();
    {
        let mut conn = Connection::open(dir.0.join(DB_FILE)).unwrap();
        migrate_to(&mut conn, MIGRATIONS_LEN).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let err = Store::open(&dir.0).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, StoreError::TooNew { found: 99, .. }),
        "{message}"
    );
    assert!(message.contains("newer mcp-auth-issuer"), "{message}");
    assert!(
        message.contains(&format!("up to {}", latest_version())),
        "{message}"
    );
    assert_eq!(version(&dir.0), 99, "left untouched");
}

const MIGRATIONS_LEN: usize = schema::MIGRATIONS.len();

/// Another program's SQLite file is not mistaken for a state.
#[test]
fn a_foreign_database_is_refused() {
    let dir = TempDir::new("foreign");
    std::fs::create_dir_all(&dir.0).unwrap();
    {
        let conn = Connection::open(dir.0.join(DB_FILE)).unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID + 1)
            .unwrap();
        conn.execute_batch("CREATE TABLE other (x INTEGER)")
            .unwrap();
    }
    let err = Store::open(&dir.0).unwrap_err();
    assert!(
        err.to_string()
            .contains("is not an mcp-auth-issuer state database"),
        "{err}"
    );
}

/// One owner at a time: a second open of the same directory is refused, naming the directory
/// and the owner's pid; once the first closes, the directory opens again.
#[test]
fn a_second_owner_is_refused_until_the_first_closes() {
    let dir = TempDir::new("lock");
    let first = Store::open(&dir.0).unwrap();
    let err = Store::open(&dir.0).unwrap_err();
    match &err {
        StoreError::Locked { dir: locked, pid } => {
            assert_eq!(locked, &dir.0);
            assert_eq!(*pid, Some(std::process::id()));
        }
        other => panic!("expected Locked, got {other}"),
    }
    let message = err.to_string();
    assert!(message.contains(&dir.0.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("pid {}", std::process::id())),
        "{message}"
    );
    first.close();
    assert!(matches!(
        first.read(|tx| tx.meta("x")),
        Err(StoreError::Closed)
    ));
    Store::open(&dir.0).expect("reopens after the owner closed it");
}

/// The directory is created 0700 and every file in it is 0600: it holds the private keys and
/// the secret key.
#[cfg(unix)]
#[test]
fn state_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("perms");
    let store = Store::open(&dir.0).unwrap();
    store
        .write(|tx| {
            tx.insert_client(
                &Client {
                    client_id: "c".into(),
                    secret_hash: None,
                    auth_method: AuthMethod::None,
                    redirect_uris: vec!["http://127.0.0.1/cb".into()],
                    grant_types: vec!["authorization_code".into()],
                    client_name: None,
                    logo_uri: None,
                    document: None,
                },
                1,
            )
        })
        .unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.0), 0o700);
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir.0).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    seen.sort();
    assert!(seen.contains(&DB_FILE.to_owned()), "{seen:?}");
    assert!(
        seen.contains(&format!("{DB_FILE}-wal")),
        "WAL mode: {seen:?}"
    );
    assert!(seen.contains(&LOCK_FILE.to_owned()), "{seen:?}");
}

/// A failed operation leaves nothing behind: the transaction is rolled back.
#[test]
fn a_failed_write_is_rolled_back() {
    let store = Store::in_memory().unwrap();
    let result: Result<(), StoreError> = store.write(|tx| {
        tx.set_meta("k", "v")?;
        Err(StoreError::Corrupt("stop".into()))
    });
    assert!(result.is_err());
    assert_eq!(store.read(|tx| tx.meta("k")).unwrap(), None);
}
