//! The SQLite and PostgreSQL migration folders describe the same schema: the same migrations,
//! tables, columns (with nullability and primary keys) and named indexes. Both are applied to a
//! fresh database and read back; the PostgreSQL side needs `TEST_POSTGRES_URL` (`.ci/test`
//! sets it for its second run), without which only the file lists are compared.

mod common;

use std::collections::BTreeSet;

use seglab::server::db::Db;
use sqlx::Row;

/// `table.column` with `null` / `not null` and `pk`, and `index name`, one line each.
type Schema = BTreeSet<String>;

fn migration_names(engine: &str) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(engine);
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

async fn sqlite_schema() -> Schema {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("schema.db").display()), 1).await.unwrap();
    let tables: Vec<String> = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'")
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("name"))
        .collect();
    let mut schema = Schema::new();
    for table in tables {
        let columns = sqlx::query(&format!("SELECT name, \"notnull\" AS not_null, pk FROM pragma_table_info('{table}')"))
            .fetch_all(&db.pool)
            .await
            .unwrap();
        for column in columns {
            let (name, not_null, pk): (String, i64, i64) = (column.get("name"), column.get("not_null"), column.get("pk"));
            // SQLite lets a primary key column hold NULL unless told otherwise; PostgreSQL never does.
            let nullable = if not_null == 1 || pk > 0 { "not null" } else { "null" };
            schema.insert(format!("{table}.{name} {nullable}{}", if pk > 0 { " pk" } else { "" }));
        }
    }
    for index in sqlx::query("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").fetch_all(&db.pool).await.unwrap() {
        schema.insert(format!("index {}", index.get::<String, _>("name")));
    }
    schema
}

async fn postgres_schema(admin_url: &str) -> Schema {
    let db = Db::connect(&common::fresh_postgres_database(admin_url).await, 1).await.unwrap();
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
    let sqlite = sqlite_schema().await;
    assert!(sqlite.contains("labels.new_mask_ref not null") && sqlite.contains("index labels_case"), "{sqlite:#?}");
    let Ok(admin_url) = std::env::var("TEST_POSTGRES_URL") else {
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
