//! The SQLite and PostgreSQL migration folders describe the same schema: the same migrations,
//! tables, columns (with nullability and primary keys) and named indexes. Both are applied to a
//! fresh database and read back; the PostgreSQL side needs `TEST_POSTGRES_URL` (`.ci/test`
//! sets it for its second run), without which only the file lists are compared.

use std::collections::BTreeSet;

use seglab::server::db::Db;
use sqlx::Row;

/// `table.column` with `null` / `not null` and `pk`, and `index name`, one line each.
type Schema = BTreeSet<String>;

fn migration_names(engine: &str) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(engine);
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

async fn sqlite_schema() -> Schema {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("schema.db").display()), 1).await.unwrap();
    let tables: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'
           AND name NOT LIKE 'cases_name_search%'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get("name"))
    .collect();
    let mut schema = Schema::new();
    for table in tables {
        let columns =
            sqlx::query(&format!("SELECT name, \"notnull\" AS not_null, pk FROM pragma_table_info('{table}')"))
                .fetch_all(&db.pool)
                .await
                .unwrap();
        for column in columns {
            let (name, not_null, pk): (String, i64, i64) =
                (column.get("name"), column.get("not_null"), column.get("pk"));
            // SQLite lets a primary key column hold NULL unless told otherwise; PostgreSQL never does.
            let nullable = if not_null == 1 || pk > 0 { "not null" } else { "null" };
            schema.insert(format!("{table}.{name} {nullable}{}", if pk > 0 { " pk" } else { "" }));
        }
    }
    for index in sqlx::query("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        .fetch_all(&db.pool)
        .await
        .unwrap()
    {
        schema.insert(format!("index {}", index.get::<String, _>("name")));
    }
    schema
}

async fn postgres_schema(admin_url: &str) -> Schema {
    let db = Db::connect(&crate::common::fresh_postgres_database(admin_url).await, 1).await.unwrap();
    let mut schema = Schema::new();
    let columns = sqlx::query(
        "SELECT c.table_name::text AS table_name, c.column_name::text AS column_name, c.is_nullable::text AS is_nullable,
                EXISTS (SELECT 1 FROM information_schema.key_column_usage k
                        JOIN information_schema.table_constraints t ON t.constraint_name = k.constraint_name AND t.table_name = k.table_name
                        WHERE t.constraint_type = 'PRIMARY KEY' AND k.table_name = c.table_name AND k.column_name = c.column_name) AS pk
         FROM information_schema.columns c
         WHERE c.table_schema = 'public' AND c.table_name NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    for column in columns {
        let (table, name, nullable, pk): (String, String, String, bool) =
            (column.get("table_name"), column.get("column_name"), column.get("is_nullable"), column.get("pk"));
        let nullable = if nullable == "YES" { "null" } else { "not null" };
        schema.insert(format!("{table}.{name} {nullable}{}", if pk { " pk" } else { "" }));
    }
    // Indexes the migrations name; PostgreSQL's own for keys and UNIQUE end in _pkey / _key.
    let indexes = sqlx::query("SELECT indexname::text AS indexname FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key'")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    for index in indexes {
        schema.insert(format!("index {}", index.get::<String, _>("indexname")));
    }
    schema
}

#[tokio::test]
async fn sqlite_and_postgres_migrations_describe_the_same_schema() {
    assert_eq!(migration_names("sqlite"), migration_names("postgres"), "the two folders hold different migrations");
    // Left out: SQLite's trigram index of case names (an FTS5 table and its shadow tables),
    // which PostgreSQL does without.
    let sqlite = sqlite_schema().await;
    assert!(sqlite.contains("labels.new_mask_ref not null") && sqlite.contains("index labels_case"), "{sqlite:#?}");
    let Some(admin_url) = crate::common::postgres_admin_url() else {
        eprintln!("TEST_POSTGRES_URL is unset: compared the migration lists only; `.ci/test` compares the schemas too");
        return;
    };
    let postgres = postgres_schema(&admin_url).await;
    let only_sqlite: Vec<_> = sqlite.difference(&postgres).collect();
    let only_postgres: Vec<_> = postgres.difference(&sqlite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "the schemas differ\nonly in SQLite: {only_sqlite:#?}\nonly in PostgreSQL: {only_postgres:#?}"
    );
}

/// Migration 0011 recovers the pre-labels committed before 0010 recorded them, from their
/// audit rows; on SQLite it also indexes the names of the cases already there.
#[tokio::test]
async fn migrating_an_older_database_recovers_its_prelabels() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    upgrade_with_an_old_prelabel(&url, sqlx::migrate!("migrations/sqlite"), sqlx::migrate!("migrations/sqlite")).await;
    let db = Db::connect(&url, 1).await.unwrap();
    let found: String =
        sqlx::query("SELECT case_id FROM cases_name_search WHERE cases_name_search MATCH '\"old liv\"'")
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .get(0);
    assert_eq!(found, "case-1");
    if let Some(admin_url) = crate::common::postgres_admin_url() {
        let url = crate::common::fresh_postgres_database(&admin_url).await;
        upgrade_with_an_old_prelabel(
            &url,
            sqlx::migrate!("migrations/postgres"),
            sqlx::migrate!("migrations/postgres"),
        )
        .await;
    }
}

async fn upgrade_with_an_old_prelabel(url: &str, mut before: sqlx::migrate::Migrator, all: sqlx::migrate::Migrator) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(url).await.unwrap();
    before.migrations = before.migrations.iter().filter(|m| m.version <= 10).cloned().collect::<Vec<_>>().into();
    before.run(&pool).await.unwrap();
    for statement in [
        "INSERT INTO users (id, username, roles, created_at) VALUES ('u', 'ada', 'ml_engineer', 0)",
        "INSERT INTO cases (id, name, search_name, labels_json, image_ref, head_mask_ref, created_at)
         VALUES ('case-1', 'Old Liver', 'old liver', '[]', 'img', 'cases/case-1/masks/m1.nii.gz', 0)",
        "INSERT INTO models (id, name, version, state, card, artifact_ref, sha256, created_by, created_at, updated_at)
         VALUES ('model-1', 'seg', '1', 'production', '{}', 'a', 's', 'u', 0, 0)",
        "INSERT INTO audit_log (seq, at, action, user_id, case_id, details, prev_hash, hash)
         VALUES (1, 42, 'prelabel', NULL, 'case-1', '{\"job_id\":\"j\",\"model_id\":\"model-1\",\"mask_ref\":\"cases/case-1/masks/m1.nii.gz\"}', '', 'h1')",
        // A model that no longer exists is skipped rather than breaking the migration.
        "INSERT INTO audit_log (seq, at, action, user_id, case_id, details, prev_hash, hash)
         VALUES (2, 43, 'prelabel', NULL, 'case-1', '{\"job_id\":\"k\",\"model_id\":\"gone\",\"mask_ref\":\"cases/case-1/masks/m2.nii.gz\"}', 'h1', 'h2')",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    all.run(&pool).await.unwrap();
    let rows =
        sqlx::query("SELECT mask_ref, case_id, model_id, created_at FROM prelabels").fetch_all(&pool).await.unwrap();
    let recovered: Vec<(String, String, String, i64)> =
        rows.iter().map(|r| (r.get("mask_ref"), r.get("case_id"), r.get("model_id"), r.get("created_at"))).collect();
    assert_eq!(
        recovered,
        [("cases/case-1/masks/m1.nii.gz".to_string(), "case-1".to_string(), "model-1".to_string(), 42)]
    );
    pool.close().await;
}
