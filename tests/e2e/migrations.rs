//! migrations/ and schema.sql describe the same database: each is applied by wrangler to a fresh
//! local D1 of its own, and the two schemas, read back from SQLite's catalogue, must be equal.

use crate::harness::*;
use crate::trials;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

pub fn tests() -> Vec<libtest_mimic::Trial> {
    trials!("migrations":
        the_migrations_build_exactly_the_schema_of_schema_sql,
    )
}

/// Tables that are wrangler's or SQLite's own, not the project's.
const NOT_OURS: &str = "('sqlite_schema', 'sqlite_master', 'sqlite_sequence', 'd1_migrations')";

/// One row per schema fact, as (kind, table, name, detail, sql), from SQLite's catalogue:
/// - each table, with WITHOUT ROWID, STRICT and its number of columns;
/// - each column: declared type, NOT NULL, default, position in the primary key, hidden;
/// - each index, automatic ones included: unique, origin (primary key, unique constraint or
///   CREATE INDEX), partial, and its key columns in order with direction and collation; a
///   partial index also gives its SQL, for its WHERE clause;
/// - each foreign key; each view and trigger with its SQL.
///
/// Columns are compared by name, not by position, so a column added by ALTER TABLE (which
/// appends) matches the same column written in the middle of schema.sql.
fn describe_schema() -> String {
    let ours = |column: &str| {
        format!("{column} NOT IN {NOT_OURS} AND {column} NOT LIKE '\\_cf\\_%' ESCAPE '\\'")
    };
    format!(
        "SELECT 'table' AS kind, t.name AS tbl, '' AS name,
                json_object('withoutRowid', t.wr, 'strict', t.strict, 'columns', t.ncol) AS detail,
                NULL AS sql
           FROM pragma_table_list AS t
          WHERE t.schema = 'main' AND t.type = 'table' AND {tables}
         UNION ALL
         SELECT 'column', m.name, c.name,
                json_object('type', c.type, 'notnull', c.\"notnull\", 'default', c.dflt_value,
                            'pk', c.pk, 'hidden', c.hidden),
                NULL
           FROM sqlite_master AS m JOIN pragma_table_xinfo(m.name) AS c
          WHERE m.type = 'table' AND {masters}
         UNION ALL
         SELECT 'index', m.name, i.name,
                json_object('unique', i.\"unique\", 'origin', i.origin, 'partial', i.partial,
                            'columns', (SELECT json_group_array(json_array(k.name, k.\"desc\", k.coll))
                                          FROM (SELECT * FROM pragma_index_xinfo(i.name)
                                                 WHERE key = 1 ORDER BY seqno) AS k)),
                CASE WHEN i.partial THEN (SELECT x.sql FROM sqlite_master AS x WHERE x.name = i.name) END
           FROM sqlite_master AS m JOIN pragma_index_list(m.name) AS i
          WHERE m.type = 'table' AND {masters}
         UNION ALL
         SELECT 'foreign key', m.name, f.id || '.' || f.seq,
                json_object('from', f.\"from\", 'table', f.\"table\", 'to', f.\"to\",
                            'onUpdate', f.on_update, 'onDelete', f.on_delete, 'match', f.match),
                NULL
           FROM sqlite_master AS m JOIN pragma_foreign_key_list(m.name) AS f
          WHERE m.type = 'table' AND {masters}
         UNION ALL
         SELECT m.type, m.tbl_name, m.name, NULL, m.sql
           FROM sqlite_master AS m
          WHERE m.type IN ('view', 'trigger')
         ORDER BY 1, 2, 3",
        tables = ours("t.name"),
        masters = ours("m.name"),
    )
}

/// The rows of the statements' result sets, from `wrangler d1 execute --json`.
fn query(database: &Instance, sql: &str) -> Vec<Vec<Value>> {
    let output = database.wrangler(
        &["d1", "execute", "DB", "--local", "--json", "--command", sql],
        "query",
    );
    let json: Value = serde_json::from_str(&output)
        .unwrap_or_else(|e| panic!("wrangler's --json output ({e}): {output}"));
    json.as_array()
        .expect("one entry per statement")
        .iter()
        .map(|set| set["results"].as_array().unwrap().clone())
        .collect()
}

/// Each fact as one comparable line. SQL text is compared with its whitespace collapsed, and of
/// a partial index only its WHERE clause (SQLite keeps the CREATE INDEX as written).
fn schema_of(database: &Instance) -> BTreeSet<String> {
    query(database, &describe_schema())
        .concat()
        .iter()
        .map(|row| {
            let text = |name: &str| match &row[name] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            let mut sql = text("sql").split_whitespace().collect::<Vec<_>>().join(" ");
            if text("kind") == "index" {
                if let Some(at) = sql.to_ascii_uppercase().find(" WHERE ") {
                    sql = sql[at + 1..].to_string();
                }
            }
            let (table, name) = (text("tbl"), text("name"));
            let what = if name.is_empty() {
                table
            } else {
                format!("{table}.{name}")
            };
            format!("{} {what} {} {sql}", text("kind"), text("detail"))
                .trim_end()
                .to_string()
        })
        .collect()
}

fn the_migrations_build_exactly_the_schema_of_schema_sql() {
    let dir = run_dir().join("schema-check");
    // Two fresh D1s, built at the same time: one by `wrangler d1 migrations apply`, one from
    // schema.sql as a whole.
    let migrated = Instance::unstarted(&dir, "from-migrations");
    let from_schema = Instance::unstarted(&dir, "from-schema-sql");
    std::thread::scope(|scope| {
        scope.spawn(|| migrated.apply_migrations());
        from_schema.wrangler(
            &["d1", "execute", "DB", "--local", "--file", "schema.sql"],
            "schema.sql",
        );
    });

    // wrangler recorded every file of migrations/ as applied, in order.
    let mut files: Vec<String> = std::fs::read_dir(project_root().join("migrations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| Path::new(name).extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let applied: Vec<String> = query(&migrated, "SELECT name FROM d1_migrations ORDER BY id")[0]
        .iter()
        .map(|row| row["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(applied, files, "migrations applied, against migrations/");

    let by_migrations = schema_of(&migrated);
    let by_schema_sql = schema_of(&from_schema);
    assert!(
        by_schema_sql.iter().any(|fact| fact.starts_with("table ")),
        "schema.sql made no table: {by_schema_sql:?}"
    );
    let only_in = |a: &BTreeSet<String>, b: &BTreeSet<String>| -> Vec<String> {
        a.difference(b).cloned().collect()
    };
    let only_migrations = only_in(&by_migrations, &by_schema_sql);
    let only_schema_sql = only_in(&by_schema_sql, &by_migrations);
    assert!(
        only_migrations.is_empty() && only_schema_sql.is_empty(),
        "migrations/ and schema.sql make different schemas\n  only from schema.sql:\n    {}\n  only from migrations/:\n    {}",
        only_schema_sql.join("\n    "),
        only_migrations.join("\n    ")
    );
}
