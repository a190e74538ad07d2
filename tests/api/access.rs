//! The access matrix: every route and server function that touches a case, called by every kind
//! of caller on cases in every situation the rules tell apart (restricted or not, assigned or
//! not, authored by the caller, each workflow state), against the rules as the README's table
//! states them, written out here a second time. A refused call must change nothing. Adding a
//! case route or server function without a row here fails `every_case_route_has_a_row`.
//!
//! Also: the role is checked before a body is read, on every route that takes one.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::{TestApp, PASSWORD};
use crate::fixtures::CaseBuilder;
use reqwest::StatusCode;
use seglab::api::{CaseArtifacts, CaseSummary, ErrorCode, Worklist};
use seglab::edits::MaskEdits;
use seglab::server::identity::Role;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DIMS: [u32; 3] = [8, 6, 4];
const VOXELS: usize = 8 * 6 * 4;

/// Every case route (method and path as the router names them) the matrix calls.
const REST_ROUTES: [&str; 22] = [
    "GET /cases",
    "POST /cases",
    "POST /cases/dicom",
    "GET /cases/{id}/patient",
    "POST /cases/{id}/segmentation",
    "POST /cases/{id}/pacs",
    "GET /cases/{id}/overview",
    "GET /cases/{id}/artifacts",
    "GET /cases/{id}/masks/{file}",
    "GET /cases/{id}/comments",
    "GET /cases/{id}/jobs",
    "POST /cases/{id}/take",
    "POST /labels",
    "PUT /cases/{id}/status",
    "PUT /cases/{id}/assignment",
    "POST /cases/{id}/runs",
    "GET /worklist",
    "GET /cases/{id}/readings",
    "PUT /cases/{id}/readings",
    "POST /cases/{id}/readings",
    "GET /cases/{id}/agreement",
    "POST /cases/{id}/consensus",
];
/// Every server function taking a case the matrix calls.
const SERVER_FNS: [&str; 14] = [
    "get_case_page",
    "get_case_artifacts",
    "case_jobs",
    "run_models",
    "get_case_review",
    "take_case",
    "set_case_people",
    "change_case_status",
    "send_to_pacs",
    "get_case_readings",
    "plan_case_readings",
    "take_case_reading",
    "get_case_agreement",
    "start_from_consensus",
];

struct Person {
    name: &'static str,
    roles: Vec<Role>,
    token: String,
    cookie: String,
}

impl Person {
    fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
    fn coordinator(&self) -> bool {
        self.has(Role::MlEngineer) || self.has(Role::Admin)
    }
}

/// The callers: `None` is anonymous.
type Who<'a> = Option<&'a Person>;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Situation {
    /// Unrestricted, unassigned, new.
    Open,
    /// Restricted to alice (labeler) and rita (reviewer); alice saved.
    RestrictedInProgress,
    /// Restricted to alice, no reviewer; alice saved and submitted.
    RestrictedSubmitted,
    /// carol (labeler and reviewer) saved and submitted; then the case was reassigned to alice.
    AuthoredThenReassigned,
    /// Restricted to dora, whose labeler role was taken back after she was assigned, and rita.
    FormerLabeler,
    /// alice saved, submitted, rita approved.
    Approved,
}

/// What the rules read of a situation.
struct Facts {
    restricted: bool,
    assignee: Option<&'static str>,
    reviewer: Option<&'static str>,
    status: &'static str,
    /// Who saved a version since the last approval.
    authors: &'static [&'static str],
}

impl Situation {
    const ALL: [Situation; 6] = [
        Situation::Open,
        Situation::RestrictedInProgress,
        Situation::RestrictedSubmitted,
        Situation::AuthoredThenReassigned,
        Situation::FormerLabeler,
        Situation::Approved,
    ];

    fn facts(self) -> Facts {
        match self {
            Situation::Open => Facts { restricted: false, assignee: None, reviewer: None, status: "new", authors: &[] },
            Situation::RestrictedInProgress => Facts {
                restricted: true,
                assignee: Some("alice"),
                reviewer: Some("rita"),
                status: "in_progress",
                authors: &["alice"],
            },
            Situation::RestrictedSubmitted => Facts {
                restricted: true,
                assignee: Some("alice"),
                reviewer: None,
                status: "submitted",
                authors: &["alice"],
            },
            Situation::AuthoredThenReassigned => Facts {
                restricted: false,
                assignee: Some("alice"),
                reviewer: None,
                status: "submitted",
                authors: &["carol"],
            },
            Situation::FormerLabeler => {
                Facts { restricted: true, assignee: Some("dora"), reviewer: Some("rita"), status: "new", authors: &[] }
            }
            Situation::Approved => Facts {
                restricted: false,
                assignee: Some("alice"),
                reviewer: Some("rita"),
                status: "approved",
                authors: &[],
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Page,
    Artifacts,
    MaskFile,
    Comments,
    Jobs,
    Take,
    Save,
    Status(&'static str),
    Assign,
    Runs,
    Patient,
    SegImport,
    PacsSend,
    FnPacsSend,
    ListCases,
    Worklist,
    FnPage,
    FnArtifacts,
    FnJobs,
    FnRuns,
    FnReview,
    FnTake,
    FnAssign,
    FnStatus(&'static str),
    Readings,
    PlanReadings,
    TakeReading,
    Agreement,
    Consensus,
    FnReadings,
    FnPlanReadings,
    FnTakeReading,
    FnAgreement,
    FnConsensus,
}

impl Op {
    const ALL: [Op; 40] = [
        Op::Page,
        Op::FnReadings,
        Op::FnPlanReadings,
        Op::FnTakeReading,
        Op::FnAgreement,
        Op::FnConsensus,
        Op::Readings,
        Op::PlanReadings,
        Op::TakeReading,
        Op::Agreement,
        Op::Consensus,
        Op::FnPacsSend,
        Op::Patient,
        Op::SegImport,
        Op::PacsSend,
        Op::Artifacts,
        Op::MaskFile,
        Op::Comments,
        Op::Jobs,
        Op::ListCases,
        Op::Worklist,
        Op::FnPage,
        Op::FnArtifacts,
        Op::FnJobs,
        Op::FnReview,
        Op::Take,
        Op::Save,
        Op::Status("submitted"),
        Op::Status("approved"),
        Op::Status("changes_requested"),
        Op::Status("in_progress"),
        Op::Assign,
        Op::Runs,
        Op::FnRuns,
        Op::FnTake,
        Op::FnAssign,
        Op::FnStatus("submitted"),
        Op::FnStatus("approved"),
        Op::FnStatus("changes_requested"),
        Op::FnStatus("in_progress"),
    ];

    /// Whether a call that is allowed changes the case (so the next caller needs a fresh one).
    fn writes(self) -> bool {
        matches!(
            self,
            Op::Take | Op::Save | Op::Status(_) | Op::FnTake | Op::FnStatus(_) | Op::PlanReadings | Op::FnPlanReadings
        )
    }
}

/// The rules, stated once more: the status `who` gets for `op` on a case with `facts`.
fn expected(op: Op, who: Who, facts: &Facts) -> u16 {
    let Some(who) = who else { return 401 };
    let labeler = who.has(Role::Labeler);
    let reviewer = who.has(Role::Reviewer);
    let admin = who.has(Role::Admin);
    let is_assignee = facts.assignee == Some(who.name);
    let reads = who.coordinator()
        || !facts.restricted
        || (labeler && is_assignee)
        || (reviewer && facts.reviewer == Some(who.name));
    // Role gates at the REST edge, before the body or the case is looked at.
    match op {
        // Reviewers and admins save too, as adjudicators of cases read by several readers.
        Op::Save if !(labeler || reviewer || admin) => return 403,
        Op::SegImport if !labeler => return 403,
        Op::Status(_) if !(labeler || reviewer || admin) => return 403,
        Op::Assign | Op::PlanReadings if !who.coordinator() => return 403,
        Op::TakeReading if !(labeler || who.coordinator()) => return 403,
        Op::Consensus if !(labeler || reviewer || admin) => return 403,
        _ => {}
    }
    if !reads {
        return match op {
            // Lists leave it out: 0 stands for "not listed".
            Op::ListCases | Op::Worklist => 0,
            _ => 404,
        };
    }
    let transition = |to: &str| -> u16 {
        let other_reviewer = !admin && facts.reviewer.is_some_and(|r| r != who.name);
        let person_ok = match to {
            "submitted" => admin || (labeler && is_assignee),
            "approved" | "changes_requested" => {
                (reviewer || admin) && !other_reviewer && (admin || !is_assignee) && !facts.authors.contains(&who.name)
            }
            _ => (reviewer || admin) && !other_reviewer,
        };
        let from_ok = match to {
            "submitted" => ["in_progress", "changes_requested"].contains(&facts.status),
            "approved" | "changes_requested" => facts.status == "submitted",
            _ => facts.status == "approved",
        };
        match (person_ok, from_ok) {
            (false, _) => 403,
            (true, false) => 409,
            (true, true) => 200,
        }
    };
    match op {
        Op::Page
        | Op::Artifacts
        | Op::Comments
        | Op::Jobs
        | Op::FnPage
        | Op::FnArtifacts
        | Op::FnJobs
        | Op::FnReview
        | Op::ListCases
        | Op::Worklist
        | Op::Readings
        | Op::FnReadings => 200,
        Op::MaskFile => 303,
        // The matrix's cases are read by one labeler: several readings are planned while a
        // case is new, and none can be taken, compared or adjudicated.
        Op::PlanReadings | Op::FnPlanReadings => match (who.coordinator(), facts.status) {
            (false, _) => 403,
            (true, "new") => 200,
            (true, _) => 409,
        },
        Op::TakeReading | Op::FnTakeReading => match labeler {
            true => 409,
            false => 403,
        },
        Op::Agreement | Op::Consensus | Op::FnAgreement | Op::FnConsensus => 409,
        Op::Take | Op::FnTake => match (labeler, facts.assignee) {
            (false, _) => 403,
            (true, Some(assignee)) if assignee != who.name => 409,
            _ => 200,
        },
        Op::Save => match facts.assignee {
            _ if !labeler => 403,
            _ if admin || is_assignee => 201,
            Some(_) => 403,
            None => 201,
        },
        // Allowed as a save is; the matrix's cases come from NIfTI, with no series for a SEG.
        Op::SegImport => match facts.assignee {
            _ if admin || is_assignee => 409,
            Some(_) => 403,
            None => 409,
        },
        // Coordinators only; the matrix's instance has no PACS.
        Op::PacsSend | Op::FnPacsSend => match who.coordinator() {
            true => 409,
            false => 403,
        },
        // Admins only; the matrix's cases were not imported from DICOM.
        Op::Patient => match admin {
            true => 404,
            false => 403,
        },
        Op::Status(to) | Op::FnStatus(to) => transition(to),
        Op::Assign | Op::FnAssign => match (who.coordinator(), facts.assignee) {
            (false, _) => 403,
            // Assigning dora again is refused: she no longer holds the labeler role.
            (true, Some("dora")) => 422,
            (true, _) => 200,
        },
        // Allowed, but no model version is active.
        Op::Runs | Op::FnRuns => match who.coordinator() {
            true => 409,
            false => 403,
        },
    }
}

struct World {
    app: TestApp,
    people: Vec<Person>,
    /// Follows no redirects: a mask file answers 303.
    client: reqwest::Client,
}

impl World {
    fn person(&self, name: &str) -> &Person {
        self.people.iter().find(|p| p.name == name).unwrap()
    }

    async fn new_case(&self) -> String {
        CaseBuilder::new("matrix").dims(DIMS).import(&self.app).await
    }

    async fn head(&self, case_id: &str) -> String {
        let artifacts: CaseArtifacts =
            self.app.get_json(&self.person("mle").token, &format!("/cases/{case_id}/artifacts")).await;
        artifacts.current_mask_ref.to_string()
    }

    async fn save(&self, token: &str, case_id: &str) -> StatusCode {
        let head = self.head(case_id).await;
        let mut mask = vec![0u8; VOXELS];
        mask[3..9].fill(1);
        self.app.post_label(token, case_id, &head, &MaskEdits::diff(&[0u8; VOXELS], &mask).encode()).await.status()
    }

    async fn put(&self, who: &str, path: &str, body: Value) {
        let response =
            self.client.put(self.app.url(path)).bearer_auth(&self.person(who).token).json(&body).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "set-up: PUT {path} {body} as {who}: {}",
            response.text().await.unwrap()
        );
    }

    /// A new case in `situation`, made through the API as people would.
    async fn build(&self, situation: Situation) -> String {
        let id = self.new_case().await;
        let token = |name: &str| self.person(name).token.clone();
        let assignment = format!("/cases/{id}/assignment");
        let status = format!("/cases/{id}/status");
        match situation {
            Situation::Open => {}
            Situation::RestrictedInProgress => {
                self.put("mle", &assignment, json!({ "assignee": "alice", "reviewer": "rita", "restricted": true }))
                    .await;
                assert_eq!(self.save(&token("alice"), &id).await, StatusCode::CREATED);
            }
            Situation::RestrictedSubmitted => {
                self.put("mle", &assignment, json!({ "assignee": "alice", "reviewer": null, "restricted": true }))
                    .await;
                assert_eq!(self.save(&token("alice"), &id).await, StatusCode::CREATED);
                self.put("alice", &status, json!({ "status": "submitted" })).await;
            }
            Situation::AuthoredThenReassigned => {
                assert_eq!(self.save(&token("carol"), &id).await, StatusCode::CREATED);
                self.put("carol", &status, json!({ "status": "submitted" })).await;
                self.put("mle", &assignment, json!({ "assignee": "alice", "reviewer": null })).await;
            }
            Situation::FormerLabeler => {
                // Assigned while dora was a labeler: the role was taken back since.
                sqlx::query(
                    "UPDATE cases SET restricted = 1, assignee_id = (SELECT id FROM users WHERE username = 'dora'),
                     reviewer_id = (SELECT id FROM users WHERE username = 'rita') WHERE id = $1",
                )
                .bind(&id)
                .execute(&self.app.state.db.pool)
                .await
                .unwrap();
            }
            Situation::Approved => {
                self.put("mle", &assignment, json!({ "assignee": "alice", "reviewer": "rita" })).await;
                assert_eq!(self.save(&token("alice"), &id).await, StatusCode::CREATED);
                self.put("alice", &status, json!({ "status": "submitted" })).await;
                self.put("rita", &status, json!({ "status": "approved" })).await;
            }
        }
        id
    }

    /// What may change: the case's row, the audit log, the jobs, the versions.
    async fn fingerprint(&self, case_id: &str) -> String {
        let row = sqlx::query(
            "SELECT status || '|' || COALESCE(assignee_id, '-') || '|' || COALESCE(reviewer_id, '-') || '|' || head_mask_ref || '|'
                    || COALESCE(approved_mask_ref, '-') || '|' || CAST(restricted AS TEXT) FROM cases WHERE id = $1",
        )
        .bind(case_id)
        .fetch_one(&self.app.state.db.pool)
        .await
        .unwrap();
        let case: String = sqlx::Row::get(&row, 0);
        let counts = [
            self.app.count("SELECT COUNT(*) FROM audit_log").await,
            self.app.count("SELECT COUNT(*) FROM model_jobs").await,
            self.app.count("SELECT COUNT(*) FROM labels").await,
        ];
        format!("{case} {counts:?}")
    }

    /// Calls `op` on the case as `who`; the status, or for a list 200 when it lists the case
    /// and 0 when not. Server functions answer an error's code, mapped to its status.
    async fn call(&self, op: Op, who: Who<'_>, case_id: &str) -> u16 {
        let rest = |method: reqwest::Method, path: String| {
            let request = self.client.request(method, self.app.url(&path));
            match who {
                Some(person) => request.bearer_auth(&person.token),
                None => request,
            }
        };
        let status_body = |to: &str| match to {
            "changes_requested" | "in_progress" => json!({ "status": to, "comment": "see the left lobe" }),
            _ => json!({ "status": to }),
        };
        let response = match op {
            Op::Page => rest(reqwest::Method::GET, format!("/cases/{case_id}/overview")).send().await,
            Op::Artifacts => rest(reqwest::Method::GET, format!("/cases/{case_id}/artifacts")).send().await,
            Op::MaskFile => {
                let head = self.head(case_id).await;
                rest(reqwest::Method::GET, format!("/{head}")).send().await
            }
            Op::Comments => rest(reqwest::Method::GET, format!("/cases/{case_id}/comments")).send().await,
            Op::Jobs => rest(reqwest::Method::GET, format!("/cases/{case_id}/jobs")).send().await,
            Op::Take => rest(reqwest::Method::POST, format!("/cases/{case_id}/take")).send().await,
            Op::Save => {
                let Some(person) = who else {
                    return self.app.post_label("", case_id, "x", &[]).await.status().as_u16();
                };
                return self.save(&person.token, case_id).await.as_u16();
            }
            Op::Status(to) => {
                rest(reqwest::Method::PUT, format!("/cases/{case_id}/status")).json(&status_body(to)).send().await
            }
            Op::Assign => {
                // The people it has already: allowed, it changes nothing but the audit log.
                let facts = self.facts_of(case_id).await;
                let body = json!({ "assignee": facts.0, "reviewer": facts.1 });
                rest(reqwest::Method::PUT, format!("/cases/{case_id}/assignment")).json(&body).send().await
            }
            Op::Runs => rest(reqwest::Method::POST, format!("/cases/{case_id}/runs")).send().await,
            Op::Readings => rest(reqwest::Method::GET, format!("/cases/{case_id}/readings")).send().await,
            Op::PlanReadings => {
                let body = json!({ "required": 2 });
                rest(reqwest::Method::PUT, format!("/cases/{case_id}/readings")).json(&body).send().await
            }
            Op::TakeReading => {
                rest(reqwest::Method::POST, format!("/cases/{case_id}/readings")).json(&json!({})).send().await
            }
            Op::Agreement => rest(reqwest::Method::GET, format!("/cases/{case_id}/agreement")).send().await,
            Op::Consensus => {
                rest(reqwest::Method::POST, format!("/cases/{case_id}/consensus"))
                    .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                    .json(&json!({ "method": "staple" }))
                    .send()
                    .await
            }
            Op::Patient => rest(reqwest::Method::GET, format!("/cases/{case_id}/patient")).send().await,
            Op::PacsSend => rest(reqwest::Method::POST, format!("/cases/{case_id}/pacs")).send().await,
            Op::SegImport => {
                let form = reqwest::multipart::Form::new()
                    .text("base_mask_ref", self.head(case_id).await)
                    .part("file", reqwest::multipart::Part::bytes(vec![0u8; 256]).file_name("seg.dcm"));
                rest(reqwest::Method::POST, format!("/cases/{case_id}/segmentation"))
                    .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                    .multipart(form)
                    .send()
                    .await
            }
            Op::ListCases => {
                let response = rest(reqwest::Method::GET, "/cases?per_page=1000".into()).send().await.unwrap();
                if response.status() != StatusCode::OK {
                    return response.status().as_u16();
                }
                let cases: Vec<CaseSummary> = response.json().await.unwrap();
                return if cases.iter().any(|c| c.id.as_str() == case_id) { 200 } else { 0 };
            }
            Op::Worklist => {
                let response = rest(reqwest::Method::GET, "/worklist?sort=created&desc=true&per_page=200".into())
                    .send()
                    .await
                    .unwrap();
                if response.status() != StatusCode::OK {
                    return response.status().as_u16();
                }
                let list: Worklist = response.json().await.unwrap();
                return if list.rows.iter().any(|row| row.id.as_str() == case_id) { 200 } else { 0 };
            }
            Op::FnPage => return self.server_fn("get_case_page", who, &[("case_id", case_id)]).await,
            Op::FnArtifacts => return self.server_fn("get_case_artifacts", who, &[("case_id", case_id)]).await,
            Op::FnJobs => return self.server_fn("case_jobs", who, &[("case_id", case_id)]).await,
            Op::FnRuns => return self.server_fn("run_models", who, &[("case_id", case_id)]).await,
            Op::FnPacsSend => return self.server_fn("send_to_pacs", who, &[("case_id", case_id)]).await,
            Op::FnReview => return self.server_fn("get_case_review", who, &[("case_id", case_id)]).await,
            Op::FnTake => return self.server_fn("take_case", who, &[("case_id", case_id)]).await,
            Op::FnReadings => return self.server_fn("get_case_readings", who, &[("case_id", case_id)]).await,
            Op::FnPlanReadings => {
                let args = [("case_id", case_id), ("required", "2"), ("blind", "false")];
                return self.server_fn("plan_case_readings", who, &args).await;
            }
            Op::FnTakeReading => return self.server_fn("take_case_reading", who, &[("case_id", case_id)]).await,
            Op::FnAgreement => return self.server_fn("get_case_agreement", who, &[("case_id", case_id)]).await,
            Op::FnConsensus => {
                let key = uuid::Uuid::new_v4().to_string();
                let args = [("case_id", case_id), ("method", "staple"), ("idempotency_key", key.as_str())];
                return self.server_fn("start_from_consensus", who, &args).await;
            }
            Op::FnAssign => {
                let facts = self.facts_of(case_id).await;
                let mut args = vec![("case_id", case_id.to_string()), ("restricted", facts.2.to_string())];
                args.extend(facts.0.map(|name| ("assignee", name)));
                args.extend(facts.1.map(|name| ("reviewer", name)));
                let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
                return self.server_fn("set_case_people", who, &args).await;
            }
            Op::FnStatus(to) => {
                let mut args = vec![("case_id", case_id), ("status", to)];
                if matches!(to, "changes_requested" | "in_progress") {
                    args.push(("comment", "see the left lobe"));
                }
                return self.server_fn("change_case_status", who, &args).await;
            }
        };
        response.unwrap().status().as_u16()
    }

    /// The case's labeler and reviewer (usernames) and whether it is restricted.
    async fn facts_of(&self, case_id: &str) -> (Option<String>, Option<String>, bool) {
        let artifacts: CaseArtifacts =
            self.app.get_json(&self.person("mle").token, &format!("/cases/{case_id}/artifacts")).await;
        (
            artifacts.workflow.assignee.map(String::from),
            artifacts.workflow.reviewer.map(String::from),
            artifacts.workflow.restricted,
        )
    }

    async fn server_fn(&self, name: &str, who: Who<'_>, args: &[(&str, &str)]) -> u16 {
        let mut request =
            self.client.post(self.app.url(&format!("/api/{name}"))).header("Origin", &self.app.base).form(args);
        if let Some(person) = who {
            request = request.header("Cookie", &person.cookie);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return 200;
        }
        match serde_json::from_value::<ErrorCode>(body["code"].clone()) {
            Ok(code) => code.status(),
            Err(_) => panic!("server function {name} answered {status} with {body}"),
        }
    }
}

async fn world() -> World {
    let app = TestApp::spawn().await;
    let cast: [(&str, &[Role]); 8] = [
        ("alice", &[Role::Labeler]),
        ("bob", &[Role::Labeler]),
        ("rita", &[Role::Reviewer]),
        ("rolf", &[Role::Reviewer]),
        ("carol", &[Role::Labeler, Role::Reviewer]),
        ("dora", &[Role::Reviewer]),
        ("mle", &[Role::MlEngineer]),
        ("root", &[Role::Admin]),
    ];
    let mut people = Vec::new();
    for (name, roles) in cast {
        let token = app.user(name, roles).await;
        let cookie = app.login_cookie(name, PASSWORD).await;
        people.push(Person { name, roles: roles.to_vec(), token, cookie });
    }
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    World { app, people, client }
}

#[tokio::test]
async fn every_caller_gets_what_the_rules_say_on_every_case_route() {
    let world = world().await;
    let callers: Vec<Who> = std::iter::once(None).chain(world.people.iter().map(Some)).collect();
    let mut wrong = Vec::new();
    let mut cells = 0;
    for situation in Situation::ALL {
        let facts = situation.facts();
        let mut case_id = world.build(situation).await;
        for op in Op::ALL {
            for &who in &callers {
                let before = world.fingerprint(&case_id).await;
                let want = expected(op, who, &facts);
                let got = world.call(op, who, &case_id).await;
                cells += 1;
                let name = who.map_or("anonymous", |p| p.name);
                if got != want {
                    wrong.push(format!("{situation:?} {op:?} as {name}: got {got}, want {want}"));
                }
                let allowed = (200..300).contains(&got);
                if !allowed && got != 303 && got != 0 && world.fingerprint(&case_id).await != before {
                    wrong.push(format!("{situation:?} {op:?} as {name}: refused with {got} but changed the case"));
                }
                if op.writes() && allowed {
                    case_id = world.build(situation).await;
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{} of {cells} cells differ from the rules:\n{}", wrong.len(), wrong.join("\n"));
    world.app.stop().await;
}

/// The refusal of a case the caller may not read names nobody and tells nothing: the same
/// answer as for a case that does not exist.
#[tokio::test]
async fn a_case_the_caller_may_not_read_answers_as_if_it_did_not_exist() {
    let world = world().await;
    let case_id = world.build(Situation::RestrictedSubmitted).await;
    let missing = uuid::Uuid::new_v4().to_string();
    let bob = &world.person("bob").token;
    let rolf = &world.person("rolf").token;
    for (token, method, path, body) in [
        (bob, reqwest::Method::POST, "/cases/{id}/take", Value::Null),
        (bob, reqwest::Method::GET, "/cases/{id}/overview", Value::Null),
        (bob, reqwest::Method::GET, "/cases/{id}/artifacts", Value::Null),
        (rolf, reqwest::Method::PUT, "/cases/{id}/status", json!({ "status": "approved" })),
        (rolf, reqwest::Method::PUT, "/cases/{id}/status", json!({ "status": "in_progress", "comment": "x" })),
    ] {
        let mut answers = Vec::new();
        for id in [&case_id, &missing] {
            let mut request =
                world.client.request(method.clone(), world.app.url(&path.replace("{id}", id))).bearer_auth(token);
            if !body.is_null() {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap().replace(id.as_str(), "ID");
            answers.push((status, text));
        }
        assert_eq!(answers[0], answers[1], "{method} {path}");
        assert_eq!(answers[0].0, StatusCode::NOT_FOUND);
        assert!(!answers[0].1.contains("alice"), "{}", answers[0].1);
    }
    // A save names its case in the body: the same there.
    let bob_saves = world.save(bob, &case_id).await;
    assert_eq!(bob_saves, StatusCode::NOT_FOUND);
    // A labeler role taken back takes the case out of its former labeler's next case too.
    world.build(Situation::FormerLabeler).await;
    let next = world
        .client
        .get(world.app.url("/worklist/next"))
        .bearer_auth(&world.person("dora").token)
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), StatusCode::NOT_FOUND);
    world.app.stop().await;
}

/// Someone who saved a version since the last approval never approves it, whoever the case is
/// assigned to now; after the next approval their earlier work no longer counts.
#[tokio::test]
async fn nobody_approves_work_they_saved_since_the_last_approval() {
    let world = world().await;
    let case_id = world.build(Situation::AuthoredThenReassigned).await;
    let status = format!("/cases/{case_id}/status");
    let carol = &world.person("carol").token;
    for body in [json!({ "status": "approved" }), json!({ "status": "changes_requested", "comment": "x" })] {
        let refused = world.client.put(world.app.url(&status)).bearer_auth(carol).json(&body).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(refused.text().await.unwrap().contains("since its last approval"));
    }
    // Reassigned to nobody: still carol's work.
    world.put("mle", &format!("/cases/{case_id}/assignment"), json!({ "assignee": null, "reviewer": null })).await;
    let refused = world
        .client
        .put(world.app.url(&status))
        .bearer_auth(carol)
        .json(&json!({ "status": "approved" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // rita approves; alice saves anew and submits; carol may review that.
    world.put("rita", &status, json!({ "status": "approved" })).await;
    world.put("mle", &format!("/cases/{case_id}/assignment"), json!({ "assignee": "alice", "reviewer": null })).await;
    let alice = world.person("alice").token.clone();
    let head = world.head(&case_id).await;
    let mut mask = vec![0u8; VOXELS];
    mask[3..9].fill(1);
    mask[20] = 1;
    let mut before = vec![0u8; VOXELS];
    before[3..9].fill(1);
    let saved = world.app.post_label(&alice, &case_id, &head, &MaskEdits::diff(&before, &mask).encode()).await;
    assert_eq!(saved.status(), StatusCode::CREATED);
    world.put("alice", &status, json!({ "status": "submitted" })).await;
    world.put("carol", &status, json!({ "status": "approved" })).await;
    world.app.stop().await;
}

/// Every route that reads a body checks the caller's role first: a request whose body never
/// arrives is refused at once.
#[tokio::test]
async fn the_role_is_checked_before_the_body_is_read() {
    let world = world().await;
    let case_id = world.build(Situation::Open).await;
    let (labeler, reviewer) = (world.person("bob").token.clone(), world.person("rolf").token.clone());
    let engineer = world.person("mle").token.clone();
    // Each declares a body of 1,000 bytes and sends 5.
    let routes: Vec<(&str, String, Option<&str>, u16)> = vec![
        ("POST", "/labels".into(), Some(&engineer), 403),
        ("PUT", format!("/cases/{case_id}/readings"), Some(&labeler), 403),
        ("POST", format!("/cases/{case_id}/readings"), Some(&reviewer), 403),
        ("POST", format!("/cases/{case_id}/consensus"), Some(&engineer), 403),
        ("POST", "/labels".into(), None, 401),
        ("PUT", format!("/cases/{case_id}/status"), Some(&engineer), 403),
        ("PUT", format!("/cases/{case_id}/status"), None, 401),
        ("PUT", format!("/cases/{case_id}/assignment"), Some(&labeler), 403),
        ("POST", "/cases".into(), Some(&labeler), 403),
        ("POST", "/models".into(), Some(&labeler), 403),
        ("POST", "/datasets".into(), Some(&labeler), 403),
        ("PUT", "/users/bob".into(), Some(&labeler), 403),
        ("POST", "/users/bob/tokens".into(), Some(&labeler), 403),
        ("POST", "/tokens/revoke".into(), None, 401),
        // Anyone may revoke their own token: the body's bound (4 KiB) refuses a longer one unread.
        ("POST", "/tokens/revoke?long".into(), Some(&labeler), 413),
    ];
    let address = world.app.base.trim_start_matches("http://").to_string();
    for (method, path, token, want) in routes {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let (path, declared) = match path.strip_suffix("?long") {
            Some(path) => (path.to_string(), 1_000_000),
            None => (path, 1000),
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n{{\"a\":"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer)).await;
        let read = read.unwrap_or_else(|_| {
            panic!("{method} {path}: no answer while the body was pending, so it waited for the body")
        });
        let text = String::from_utf8_lossy(&answer[..read.unwrap()]).to_string();
        let status = text.split(' ').nth(1).unwrap_or_default().to_string();
        assert_eq!(status, want.to_string(), "{method} {path}: {text}");
    }
    world.app.stop().await;
}

/// The case routes of the API document (which every REST route is in, see
/// `openapi::the_document_describes_every_route_the_router_serves`) and the pages' server
/// functions taking a case, read from the source, each have a row in the matrix.
#[tokio::test]
async fn every_case_route_has_a_row() {
    let app = TestApp::spawn().await;
    let routes = crate::openapi::documented_routes(&app).await;
    app.stop().await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let case_routes: BTreeSet<String> = routes
        .into_iter()
        .filter(|route| route.contains(" /cases") || route.ends_with(" /labels") || route.contains(" /worklist"))
        .collect();
    // `GET /worklist/next` names only the caller's own assignments: see
    // `a_case_the_caller_may_not_read_answers_as_if_it_did_not_exist`.
    let covered: BTreeSet<String> =
        REST_ROUTES.iter().map(|r| r.to_string()).chain(["GET /worklist/next".to_string()]).collect();
    let missing: Vec<_> = case_routes.difference(&covered).collect();
    assert!(missing.is_empty(), "case routes without a row in the access matrix: {missing:?}");

    let mut server_fns = BTreeSet::new();
    for entry in std::fs::read_dir(root.join("src/pages")).unwrap() {
        let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for (at, _) in source.match_indices("#[server") {
            let rest = &source[at..];
            let signature = &rest[rest.find("pub async fn ").unwrap() + "pub async fn ".len()..];
            let name = &signature[..signature.find('(').unwrap()];
            let params = &signature[..signature.find(')').unwrap()];
            if params.contains("case_id") {
                server_fns.insert(name.to_string());
            }
        }
    }
    let covered: BTreeSet<String> = SERVER_FNS.iter().map(|f| f.to_string()).collect();
    let missing: Vec<_> = server_fns.difference(&covered).collect();
    assert!(missing.is_empty(), "server functions taking a case without a row in the access matrix: {missing:?}");
}
