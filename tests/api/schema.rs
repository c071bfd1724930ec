//! The SQLite and PostgreSQL migrations are written twice; they must yield the same tables, columns
//! (with their nullability), primary keys and indexes, not merely the same folder names. The one
//! thing each engine does its own way is the index of ticket search: an FTS5 table with its
//! triggers on SQLite (`ticket_search*`), a trigram index on PostgreSQL (`tickets_search_trgm`).

use std::collections::BTreeSet;

use diesel::sql_types::{Integer, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl, SqliteConnection};
use repairdesk::db::{self, DatabaseUrl, DbConn};

/// One fact about the schema, in a form both engines can be read into.
type Fact = String;

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct SqliteColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Integer)]
    notnull: i32,
    #[diesel(sql_type = Integer)]
    pk: i32,
}

#[derive(QueryableByName)]
struct SqliteIndex {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Integer)]
    unique: i32,
    #[diesel(sql_type = Text)]
    origin: String,
}

#[derive(QueryableByName)]
struct PgColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    is_nullable: String,
}

#[derive(QueryableByName)]
struct PgIndex {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    index_name: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    is_unique: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    is_primary: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    is_constraint: bool,
    #[diesel(sql_type = Text)]
    columns: String,
}

fn migrated(url: &str) -> DbConn {
    let url = DatabaseUrl::parse(url).expect("database url");
    let mut conn = db::connect_once(&url).expect("connect");
    db::migrate_connection(&mut conn).expect("migrate");
    conn
}

fn sqlite_facts(conn: &mut SqliteConnection) -> BTreeSet<Fact> {
    let mut facts = BTreeSet::new();
    let tables: Vec<Name> = diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '__diesel_schema_migrations' \
         AND name NOT LIKE 'ticket_search%'",
    )
    .load(conn)
    .unwrap();
    for table in tables.iter().map(|t| &t.name) {
        facts.insert(format!("table {table}"));
        let columns: Vec<SqliteColumn> =
            diesel::sql_query(format!("SELECT name, \"notnull\", pk FROM pragma_table_xinfo('{table}')"))
                .load(conn)
                .unwrap();
        let mut key: Vec<(i32, String)> = Vec::new();
        for c in &columns {
            // SQLite lets a primary key column be NULL unless it says otherwise; PostgreSQL never does
            let not_null = c.notnull != 0 || c.pk > 0;
            facts.insert(format!("column {table}.{} not_null={not_null}", c.name));
            if c.pk > 0 {
                key.push((c.pk, c.name.clone()));
            }
        }
        key.sort();
        if !key.is_empty() {
            let names: Vec<_> = key.into_iter().map(|(_, n)| n).collect();
            facts.insert(format!("primary key {table} ({})", names.join(", ")));
        }
        let indexes: Vec<SqliteIndex> =
            diesel::sql_query(format!("SELECT name, \"unique\", origin FROM pragma_index_list('{table}')"))
                .load(conn)
                .unwrap();
        for index in indexes {
            let columns: Vec<Name> =
                diesel::sql_query(format!("SELECT name FROM pragma_index_info('{}') ORDER BY seqno", index.name))
                    .load(conn)
                    .unwrap();
            let columns: Vec<_> = columns.into_iter().map(|c| c.name).collect();
            match index.origin.as_str() {
                // the primary key is already a fact of its own
                "pk" => {}
                // a UNIQUE constraint: SQLite names it itself, so it is compared by its columns
                "u" => {
                    facts.insert(format!("unique {table} ({})", columns.join(", ")));
                }
                _ => {
                    let kind = if index.unique != 0 { "unique index" } else { "index" };
                    facts.insert(format!("{kind} {} on {table} ({})", index.name, columns.join(", ")));
                }
            }
        }
    }
    facts
}

fn postgres_facts(conn: &mut PgConnection) -> BTreeSet<Fact> {
    let mut facts = BTreeSet::new();
    let columns: Vec<PgColumn> = diesel::sql_query(
        "SELECT table_name::text, column_name::text, is_nullable::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'",
    )
    .load(conn)
    .unwrap();
    for c in columns {
        facts.insert(format!("table {}", c.table_name));
        facts.insert(format!("column {}.{} not_null={}", c.table_name, c.column_name, c.is_nullable == "NO"));
    }
    let indexes: Vec<PgIndex> = diesel::sql_query(
        "SELECT t.relname::text AS table_name, i.relname::text AS index_name, x.indisunique AS is_unique, \
                x.indisprimary AS is_primary, \
                EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) AS is_constraint, \
                (SELECT string_agg(a.attname, ', ' ORDER BY k.ord) \
                   FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord) \
                   JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum) AS columns \
           FROM pg_index x \
           JOIN pg_class i ON i.oid = x.indexrelid \
           JOIN pg_class t ON t.oid = x.indrelid \
           JOIN pg_namespace n ON n.oid = t.relnamespace \
          WHERE n.nspname = 'public' AND t.relname <> '__diesel_schema_migrations' \
            AND i.relname <> 'tickets_search_trgm'",
    )
    .load(conn)
    .unwrap();
    for index in indexes {
        let (table, columns) = (&index.table_name, &index.columns);
        if index.is_primary {
            facts.insert(format!("primary key {table} ({columns})"));
        } else if index.is_constraint {
            facts.insert(format!("unique {table} ({columns})"));
        } else {
            let kind = if index.is_unique { "unique index" } else { "index" };
            facts.insert(format!("{kind} {} on {table} ({columns})", index.index_name));
        }
    }
    facts
}

#[test]
fn sqlite_and_postgres_migrations_yield_the_same_schema() {
    // needs a PostgreSQL server: runs in the PostgreSQL pass of the suite
    let Some(server) = std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
        eprintln!("schema parity: TEST_DATABASE_URL unset, compared in the PostgreSQL pass");
        return;
    };
    let pg_db = crate::helpers::TestDb::new();
    assert!(server.starts_with("postgres"));
    let pg = match migrated(&pg_db.url()) {
        DbConn::Postgres(c) => c,
        DbConn::Sqlite(_) => unreachable!(),
    };
    let dir = tempfile::tempdir().unwrap();
    let lite = match migrated(&format!("sqlite://{}", dir.path().join("schema.db").display())) {
        DbConn::Sqlite(c) => c,
        DbConn::Postgres(_) => unreachable!(),
    };
    let (mut pg, mut lite) = (pg, lite);
    let (on_pg, on_sqlite) = (postgres_facts(&mut pg), sqlite_facts(&mut lite));
    drop(pg);
    let only_pg: Vec<_> = on_pg.difference(&on_sqlite).collect();
    let only_sqlite: Vec<_> = on_sqlite.difference(&on_pg).collect();
    assert!(
        only_pg.is_empty() && only_sqlite.is_empty(),
        "schemas differ\nonly on PostgreSQL: {only_pg:#?}\nonly on SQLite: {only_sqlite:#?}"
    );
    assert!(on_pg.contains("index ticket_events_site_tx on ticket_events (site_id, tx)"));
}

#[test]
fn sqlite_schema_facts_are_read() {
    // the parity test compares sets: make sure the SQLite reader sees what is there
    let dir = tempfile::tempdir().unwrap();
    let mut conn = SqliteConnection::establish(&dir.path().join("t.db").display().to_string()).unwrap();
    diesel::sql_query("CREATE TABLE a (id TEXT PRIMARY KEY, b TEXT NOT NULL, c TEXT, UNIQUE (b, c))")
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query("CREATE INDEX a_c ON a (c, b)").execute(&mut conn).unwrap();
    let facts = sqlite_facts(&mut conn);
    let expected: BTreeSet<Fact> = [
        "table a",
        "column a.id not_null=true",
        "column a.b not_null=true",
        "column a.c not_null=false",
        "primary key a (id)",
        "unique a (b, c)",
        "index a_c on a (c, b)",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(facts, expected);
}
