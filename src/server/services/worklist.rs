//! The worklist: cases filtered by status, assignee, name, and DICOM modality, patient pseudonym and study, sorted, one page at a time, with
//! the counts per status; and the next case a labeler should open. Built for 100,000 cases:
//! who saved last is kept on the case row, the filters and orders have indexes, and the
//! status counts (one grouped query) also give the total.

use std::collections::HashMap;

use sqlx::AnyConnection;

use crate::api::{
    CaseId, CaseStatus, NextCase, RowReadings, StatusCount, UserName, Worklist, WorklistQuery, WorklistRow,
    WorklistSort, MAX_PAGE,
};
use crate::server::db::Backend;
use crate::server::error::AppError;
use crate::server::identity::{Role, User};
use crate::server::rows::Dims;
use crate::server::state::AppState;

/// Longest name search accepted.
const MAX_SEARCH_CHARS: usize = 200;

/// The `WHERE` clause of a query and the text values it binds, in order.
struct Filter {
    conditions: Vec<String>,
    binds: Vec<String>,
}

impl Filter {
    fn condition(&mut self, sql: &str, value: Option<String>) {
        match value {
            Some(value) => {
                self.binds.push(value);
                self.conditions.push(sql.replace('?', &format!("${}", self.binds.len())));
            }
            None => self.conditions.push(sql.to_string()),
        }
    }

    fn sql(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }
}

/// How a name search finds its cases.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NameSearch {
    /// Test every case's name, in the page's order, stopping after a page.
    Scan,
    /// Read the matching cases from SQLite's trigram index.
    TrigramIndex,
}

/// Most cases (a hundredth) a name search may match and still read them from the index: a
/// broader one finds a page's worth of cases sooner by testing names in the page's order.
const INDEXED_SEARCH_SHARE: i64 = 100;

/// The plan of the name search `text` (lower case): PostgreSQL and texts under three
/// characters (the trigram index needs three) scan, as do searches matching many cases.
async fn plan_name_search(conn: &mut AnyConnection, backend: Backend, text: &str) -> Result<NameSearch, AppError> {
    if backend == Backend::Postgres || text.chars().count() < 3 {
        return Ok(NameSearch::Scan);
    }
    // About the number of cases (exact while none is deleted), read from the key alone.
    let cases: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(rowid), 0) FROM cases").fetch_one(&mut *conn).await?;
    let matches: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cases_name_search WHERE cases_name_search MATCH $1")
        .bind(trigram_phrase(text))
        .fetch_one(&mut *conn)
        .await?;
    Ok(if matches * INDEXED_SEARCH_SHARE > cases { NameSearch::Scan } else { NameSearch::TrigramIndex })
}

/// `text` as one phrase of SQLite's full-text query syntax (a `"` doubled inside it), so
/// nothing in it is read as an operator.
fn trigram_phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// The conditions of `query` but its status (its name search, in lower case, planned apart):
/// the counts per status use them as they are.
fn filter(user: &User, query: &WorklistQuery, backend: Backend, search: Option<(String, NameSearch)>) -> Filter {
    let mut filter = Filter { conditions: Vec::new(), binds: Vec::new() };
    // Restricted cases only for those who label or review them (and coordinators).
    filter.binds.push(user.id.clone());
    filter.conditions.push(super::access::readable_condition(user, filter.binds.len()));
    match query.assignee.as_deref() {
        None => {}
        // Their assignments and the cases they read (two indexed lookups, not a scan).
        Some("me") => filter.condition(
            "c.id IN (SELECT id FROM cases WHERE assignee_id = ? UNION SELECT case_id FROM readings WHERE reader_id = ?)",
            Some(user.id.clone()),
        ),
        Some("none") => filter.condition("c.assignee_id IS NULL", None),
        Some(name) => {
            filter.condition("c.assignee_id = (SELECT id FROM users WHERE username = ?)", Some(name.to_string()))
        }
    }
    let given = |value: &Option<String>| value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    if let Some(modality) = given(&query.modality) {
        filter.condition("c.id IN (SELECT case_id FROM case_dicom WHERE modality = ?)", Some(modality.to_uppercase()));
    }
    if let Some(patient) = given(&query.patient) {
        filter.condition("c.id IN (SELECT case_id FROM case_dicom WHERE pseudonym = ?)", Some(patient.to_uppercase()));
    }
    if let Some(study) = given(&query.study) {
        filter.condition("c.id IN (SELECT case_id FROM case_dicom WHERE study_instance_uid = ?)", Some(study));
    }
    if let Some((text, plan)) = search {
        match (plan, backend) {
            (NameSearch::TrigramIndex, _) => filter.condition(
                "c.id IN (SELECT case_id FROM cases_name_search WHERE cases_name_search MATCH ?)",
                Some(trigram_phrase(&text)),
            ),
            // A plain substring test (no pattern, so nothing to escape), cheaper than LIKE per row.
            (NameSearch::Scan, Backend::Sqlite) => filter.condition("instr(c.search_name, ?) > 0", Some(text)),
            (NameSearch::Scan, Backend::Postgres) => filter.condition("strpos(c.search_name, ?) > 0", Some(text)),
        }
    }
    filter
}

/// The name search of `query` in lower case, if it has one.
fn search_text(query: &WorklistQuery) -> Option<String> {
    query.q.as_deref().map(str::trim).filter(|text| !text.is_empty()).map(str::to_lowercase)
}

/// A case's place in the labeling order, as SQL: new, in progress, sent back, submitted,
/// approved. Its literals are the enum's own names, so they cannot drift from what is stored.
fn status_rank() -> String {
    let order = [CaseStatus::New, CaseStatus::InProgress, CaseStatus::ChangesRequested, CaseStatus::Submitted];
    let arms: String =
        order.iter().enumerate().map(|(rank, status)| format!("WHEN '{}' THEN {rank} ", status.as_str())).collect();
    format!("CASE c.status {arms}ELSE {} END", order.len())
}

fn order_by(query: &WorklistQuery) -> String {
    let direction = if query.desc { "DESC" } else { "ASC" };
    let column = match query.sort {
        WorklistSort::Created => "c.created_at".to_string(),
        // In any case, as people read names (the lower-case name is indexed).
        WorklistSort::Name => "c.search_name".to_string(),
        WorklistSort::Status => status_rank(),
        // Never-saved cases hold 0, so both engines order them alike.
        WorklistSort::LastSaved => "c.last_saved_at".to_string(),
    };
    format!("ORDER BY {column} {direction}, c.id {direction}")
}

/// The name search of `query` and how it runs; 422 when it is too long.
async fn planned_search(
    conn: &mut AnyConnection,
    backend: Backend,
    query: &WorklistQuery,
) -> Result<Option<(String, NameSearch)>, AppError> {
    match search_text(query) {
        Some(text) if text.chars().count() > MAX_SEARCH_CHARS => {
            Err(AppError::Unprocessable(format!("a name search holds at most {MAX_SEARCH_CHARS} characters")))
        }
        Some(text) => {
            let plan = plan_name_search(conn, backend, &text).await?;
            Ok(Some((text, plan)))
        }
        None => Ok(None),
    }
}

/// Every case `query`'s filters select for `user` (its status included; its order and page
/// left out), as a `WHERE` clause over `cases c` and the text values it binds from `$1`: for
/// views across the cases a worklist shows.
/// The paging of a query, checked by every listing over a selection (even one showing a
/// single page), so the same query string is refused the same way everywhere.
fn check_paging(query: &WorklistQuery) -> Result<(), AppError> {
    if !(1..=MAX_PAGE).contains(&query.page) || query.per_page == 0 || query.per_page > WorklistQuery::MAX_PER_PAGE {
        return Err(AppError::Unprocessable(format!(
            "page is 1–{MAX_PAGE}, and per_page is 1–{}",
            WorklistQuery::MAX_PER_PAGE
        )));
    }
    Ok(())
}

pub(crate) async fn selection(
    conn: &mut AnyConnection,
    backend: Backend,
    user: &User,
    query: &WorklistQuery,
) -> Result<(String, Vec<String>), AppError> {
    check_paging(query)?;
    let search = planned_search(conn, backend, query).await?;
    let mut filter = filter(user, query, backend, search);
    if let Some(status) = query.status {
        filter.condition("c.status = ?", Some(status.as_str().to_string()));
    }
    Ok((filter.sql(), filter.binds))
}

/// `GET /worklist`: one page of the cases `query` selects.
pub async fn list(state: &AppState, user: &User, query: &WorklistQuery) -> Result<Worklist, AppError> {
    check_paging(query)?;
    let mut conn = state.db.pool.acquire().await?;
    let search = planned_search(&mut conn, state.db.backend, query).await?;
    let mut filter = filter(user, query, state.db.backend, search);

    let count_sql = format!("SELECT c.status, COUNT(*) AS cases FROM cases c {} GROUP BY c.status", filter.sql());
    let mut counting = sqlx::query_as::<_, (CaseStatus, i64)>(&count_sql);
    for value in &filter.binds {
        counting = counting.bind(value);
    }
    let mut counts: Vec<StatusCount> = CaseStatus::ALL.iter().map(|&status| StatusCount { status, cases: 0 }).collect();
    for (status, cases) in counting.fetch_all(&mut *conn).await? {
        if let Some(count) = counts.iter_mut().find(|count| count.status == status) {
            count.cases = cases as u64;
        }
    }
    let total = counts
        .iter()
        .filter(|count| query.status.is_none_or(|status| status == count.status))
        .map(|count| count.cases)
        .sum();

    if let Some(status) = query.status {
        filter.condition("c.status = ?", Some(status.as_str().to_string()));
    }
    let offset = (query.page as u64 - 1) * query.per_page as u64;
    let rows_sql = format!(
        "SELECT c.id, c.name, c.status, c.created_at, c.last_saved_at, c.label_counts_json, c.readings_required,
                a.username AS assignee, r.username AS reviewer,
                s.username AS last_saved_by, o.dim_i, o.dim_j, o.dim_k
         FROM cases c JOIN objects o ON o.object_ref = c.image_ref
         LEFT JOIN users a ON a.id = c.assignee_id LEFT JOIN users r ON r.id = c.reviewer_id
         LEFT JOIN users s ON s.id = c.last_saved_by
         {} {} LIMIT {} OFFSET {offset}",
        filter.sql(),
        order_by(query),
        query.per_page,
    );
    #[derive(sqlx::FromRow)]
    struct Listed {
        id: CaseId,
        name: String,
        status: CaseStatus,
        created_at: i64,
        last_saved_at: i64,
        label_counts_json: String,
        readings_required: i64,
        assignee: Option<UserName>,
        reviewer: Option<UserName>,
        last_saved_by: Option<UserName>,
        #[sqlx(flatten)]
        dims: Dims,
    }
    let mut selecting = sqlx::query_as::<_, Listed>(&rows_sql);
    for value in &filter.binds {
        selecting = selecting.bind(value);
    }
    let listed = selecting.fetch_all(&mut *conn).await?;
    let several: Vec<&CaseId> = listed.iter().filter(|row| row.readings_required > 1).map(|row| &row.id).collect();
    let mut readings = readings_of(&mut conn, user, &several).await?;
    let rows = listed
        .into_iter()
        .map(|row| WorklistRow {
            readings: readings.remove(&row.id).map(|(taken, submitted, mine)| RowReadings {
                required: row.readings_required as u32,
                taken,
                submitted,
                mine,
            }),
            id: row.id,
            name: row.name,
            dims: row.dims.voxels(),
            status: row.status,
            assignee: row.assignee,
            reviewer: row.reviewer,
            last_saved_by: row.last_saved_by,
            last_saved_at_ms: Some(row.last_saved_at).filter(|&at| at > 0),
            created_at_ms: row.created_at,
            label_counts: serde_json::from_str(&row.label_counts_json).ok(),
        })
        .collect();
    Ok(Worklist { query: query.clone(), rows, total, counts })
}

/// Readings taken and submitted of each of `cases` (a page's worth), and whether the caller's
/// own is submitted.
async fn readings_of(
    conn: &mut AnyConnection,
    user: &User,
    cases: &[&CaseId],
) -> Result<HashMap<CaseId, (u32, u32, Option<bool>)>, AppError> {
    if cases.is_empty() {
        return Ok(HashMap::new());
    }
    let listed: Vec<String> = (2..cases.len() + 2).map(|n| format!("${n}")).collect();
    let sql = format!(
        "SELECT case_id, COUNT(*), COUNT(submitted_at),
                MAX(CASE WHEN reader_id = $1 THEN (CASE WHEN submitted_at IS NULL THEN 0 ELSE 1 END) END)
         FROM readings WHERE case_id IN ({}) GROUP BY case_id",
        listed.join(", ")
    );
    let mut query = sqlx::query_as::<_, (CaseId, i64, i64, Option<i64>)>(&sql).bind(&user.id);
    for case_id in cases {
        query = query.bind(*case_id);
    }
    let mut found: HashMap<CaseId, (u32, u32, Option<bool>)> =
        cases.iter().map(|id| ((*id).clone(), (0, 0, None))).collect();
    for (case_id, taken, submitted, mine) in query.fetch_all(&mut *conn).await? {
        found.insert(case_id, (taken as u32, submitted as u32, mine.map(|m| m == 1)));
    }
    Ok(found)
}

/// The worklist a page shows first: a labeler who does not coordinate sees their own cases.
pub(crate) fn default_query(user: &User) -> WorklistQuery {
    WorklistQuery {
        assignee: (user.has_role(Role::Labeler) && !user.is_coordinator()).then(|| "me".to_string()),
        ..WorklistQuery::default()
    }
}

/// `GET /worklist/next`: the caller's next case: a reading of theirs not submitted yet; else
/// an assigned case not yet submitted, those sent back first, then those in progress, then new
/// ones; else a case read by several readers with a reading left to take. Oldest first.
pub(crate) async fn next_case(state: &AppState, user: &User) -> Result<NextCase, AppError> {
    let none_waits = || AppError::NotFound("a case assigned to you, or a reading, waiting for labeling".into());
    // An assignment outlives a labeler role taken back; the case is no longer theirs to open.
    if !user.has_role(Role::Labeler) {
        return Err(none_waits());
    }
    let open_reading: Option<(CaseId, String)> = sqlx::query_as(
        "SELECT c.id, c.name FROM readings g JOIN cases c ON c.id = g.case_id
         WHERE g.reader_id = $1 AND g.submitted_at IS NULL ORDER BY g.created_at, c.id LIMIT 1",
    )
    .bind(&user.id)
    .fetch_optional(&state.db.pool)
    .await?;
    if let Some((id, name)) = open_reading {
        return Ok(NextCase { id, name });
    }
    let assigned: Option<(CaseId, String)> = sqlx::query_as(
        "SELECT c.id, c.name FROM cases c
         WHERE c.assignee_id = $1 AND c.status IN ($2, $3, $4)
         ORDER BY CASE c.status WHEN $2 THEN 0 WHEN $3 THEN 1 ELSE 2 END, c.created_at, c.id
         LIMIT 1",
    )
    .bind(&user.id)
    .bind(CaseStatus::ChangesRequested)
    .bind(CaseStatus::InProgress)
    .bind(CaseStatus::New)
    .fetch_optional(&state.db.pool)
    .await?;
    if let Some((id, name)) = assigned {
        return Ok(NextCase { id, name });
    }
    // The rules of `access::TakeReading`, as a query: not read by them, not reviewed by them,
    // a reading left, and readable by them.
    let (id, name): (CaseId, String) = sqlx::query_as(&format!(
        "SELECT c.id, c.name FROM cases c
         WHERE c.readings_required > 1 AND c.status IN ($2, $3)
           AND (SELECT COUNT(*) FROM readings g WHERE g.case_id = c.id) < c.readings_required
           AND NOT EXISTS (SELECT 1 FROM readings g WHERE g.case_id = c.id AND g.reader_id = $1)
           AND (c.reviewer_id IS NULL OR c.reviewer_id <> $1) AND {}
         ORDER BY c.created_at, c.id LIMIT 1",
        super::access::readable_condition(user, 1)
    ))
    .bind(&user.id)
    .bind(CaseStatus::New)
    .bind(CaseStatus::InProgress)
    .fetch_optional(&state.db.pool)
    .await?
    .ok_or_else(none_waits)?;
    Ok(NextCase { id, name })
}
