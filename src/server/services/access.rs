//! Who may do what to a case: the one place that decides. Every service that reads or changes
//! a case takes a [`CaseAccess`], which only [`authorize`] makes, after reading the case's
//! facts (restriction, assignment, status, the caller's authorship since the last approval) in
//! one statement and applying the rules below to the caller's roles. A route that forgets to
//! ask does not compile.
//!
//! | action | who |
//! |---|---|
//! | read (artifacts, mask files, history, comments, jobs, review panel) | coordinators (ml_engineer, admin); anyone when the case is not restricted; else its labeler while they hold the labeler role and its reviewer while they hold the reviewer role |
//! | save | a reader with the labeler role who is the case's labeler, or anyone such when it is unassigned and self-assignment is on; admins with the labeler role |
//! | take | a reader with the labeler role, where self-assignment is on and the case is unassigned (or theirs) |
//! | submit | its labeler holding the labeler role, or an admin; from in_progress or changes_requested |
//! | approve, request changes | a reviewer (the case's, when it has one) or an admin, never its labeler, and never anyone who saved a version since the last approval; from submitted |
//! | reopen | a reviewer (the case's, when it has one) or an admin; from approved |
//! | assign, run models | coordinators |
//!
//! A case read by several readers (`readings_required` > 1) follows its own rules:
//!
//! | action | who |
//! |---|---|
//! | read | as above, and each of its readers |
//! | plan the readings | coordinators, while nobody has saved on the case |
//! | take a reading | a labeler who does not read it yet and is not its reviewer, while readings are left; coordinators give one to a labeler |
//! | save | a reader into their own reading until they submit it; once every reading is submitted, the adjudicator into the case's own mask |
//! | submit | a reader, their own reading, once |
//! | adjudicate (consensus, save, approve) | a reviewer (the case's, when it has one) or an admin who reads none of it, once every reading is submitted |
//! | readings and agreement | coordinators and the adjudicator; a reader sees only their own reading until every reading is submitted |
//!
//! Blinding: until every reading is submitted a reader sees nothing of the other readings (not
//! their versions, files, history or counts) and, when the case is blind, neither the models'
//! predictions nor their jobs.
//!
//! A caller who may not read a case gets the same 404 as for a case that does not exist, so a
//! refusal tells nothing about it: neither that it exists nor who works on it.

use sqlx::{AnyConnection, FromRow};

use crate::api::{CaseActions, CaseId, CaseStatus, CaseWorkflow, MaskRef, UserName};
use crate::server::error::AppError;
use crate::server::identity::{Role, User};
use crate::server::state::AppState;

/// A case's workflow as clients see it (usernames, not ids), read from `cases c` joined with
/// its labeler `a` and reviewer `r` (see [`WORKFLOW_FROM`]).
#[derive(Clone, Debug, FromRow)]
pub struct WorkflowRow {
    pub status: CaseStatus,
    pub assignee: Option<UserName>,
    pub reviewer: Option<UserName>,
    pub approved_mask_ref: Option<MaskRef>,
    pub restricted: i64,
    pub readings_required: i64,
}

/// The columns of a [`WorkflowRow`] and the tables they come from.
pub const WORKFLOW_FROM: (&str, &str) = (
    "c.status, a.username AS assignee, r.username AS reviewer, c.approved_mask_ref, c.restricted, c.readings_required",
    "cases c LEFT JOIN users a ON a.id = c.assignee_id LEFT JOIN users r ON r.id = c.reviewer_id",
);

impl From<WorkflowRow> for CaseWorkflow {
    fn from(row: WorkflowRow) -> CaseWorkflow {
        CaseWorkflow {
            status: row.status,
            assignee: row.assignee,
            reviewer: row.reviewer,
            approved_mask_ref: row.approved_mask_ref,
            restricted: row.restricted != 0,
            readings_required: row.readings_required as u32,
        }
    }
}

/// What the rules need to know about a case, read in one statement with its workflow.
#[derive(Clone, Debug, FromRow)]
pub struct CaseFacts {
    /// Named only to callers who may read the case.
    #[sqlx(flatten)]
    pub workflow: WorkflowRow,
    pub assignee_id: Option<String>,
    pub reviewer_id: Option<String>,
    /// 1 when the caller saved a mask version since the case's last approval (since import
    /// when it was never approved).
    pub authored_since_approval: i64,
    /// 1 when the case's readers are blinded to the models until every reading is submitted.
    pub blind: i64,
    pub readings_taken: i64,
    pub readings_submitted: i64,
    /// The caller's reading of the case, if they read it, and 1 once they submitted it.
    pub my_reading_id: Option<String>,
    pub my_reading_submitted: i64,
}

impl CaseFacts {
    pub fn status(&self) -> CaseStatus {
        self.workflow.status
    }

    fn restricted(&self) -> bool {
        self.workflow.restricted != 0
    }

    fn is_assignee(&self, user: &User) -> bool {
        self.assignee_id.as_deref() == Some(user.id.as_str())
    }

    fn is_reviewer(&self, user: &User) -> bool {
        self.reviewer_id.as_deref() == Some(user.id.as_str())
    }

    /// Whether the case is read by several readers.
    pub fn several_readers(&self) -> bool {
        self.workflow.readings_required > 1
    }

    /// Whether every reading the case needs is submitted.
    pub fn all_read(&self) -> bool {
        self.readings_submitted >= self.workflow.readings_required
    }

    /// Whether the caller reads the case.
    pub fn is_reader(&self) -> bool {
        self.my_reading_id.is_some()
    }

    /// The caller's reading while they may still save on it.
    pub fn open_reading(&self) -> Option<&str> {
        self.my_reading_id.as_deref().filter(|_| self.my_reading_submitted == 0)
    }

    /// Whether the caller, a reader, may see nothing of the other readings yet.
    pub fn blinded(&self) -> bool {
        self.is_reader() && !self.all_read()
    }

    /// Whether the caller may see nothing of the models' work on the case yet.
    pub fn blinded_to_models(&self) -> bool {
        self.blinded() && self.blind != 0
    }

    /// Whether `user` may settle the case's mask from its readings: a reviewer (the case's, when
    /// it has one) or an admin who reads none of it, once every reading is submitted and
    /// before the case is approved.
    fn adjudication(&self, user: &User) -> Result<(), AppError> {
        user.require_any(&[Role::Reviewer, Role::Admin], "adjudicating cases")?;
        if self.is_reader() {
            return Err(AppError::Forbidden("you read this case; someone who did not adjudicates it".into()));
        }
        if !user.has_role(Role::Admin) && self.reviewer_id.is_some() && !self.is_reviewer(user) {
            return Err(AppError::Forbidden("this case is assigned to another reviewer".into()));
        }
        if !self.all_read() {
            return Err(AppError::Conflict(format!(
                "{} of the {} readings are submitted; the case is adjudicated once all are",
                self.readings_submitted, self.workflow.readings_required
            )));
        }
        if self.status() == CaseStatus::Approved {
            return Err(AppError::Conflict("the case is approved; a reviewer reopens it first".into()));
        }
        Ok(())
    }
}

/// The deployment's settings the rules read.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    pub self_assignment: bool,
}

/// Something a caller may ask to do to a case. Read access is decided before any action.
pub trait CaseAction: std::fmt::Debug + Send + Sync {
    fn decide(&self, user: &User, case: &CaseFacts, rules: Rules) -> Result<(), AppError>;
}

/// Reading the case: its files, versions, workflow, comments and jobs.
#[derive(Clone, Copy, Debug)]
pub struct Read;
/// Saving a mask version (`POST /labels`).
#[derive(Clone, Copy, Debug)]
pub struct Save;
/// Taking an unassigned case (`POST /cases/{id}/take`).
#[derive(Clone, Copy, Debug)]
pub struct Take;
/// Moving the case to a status (`PUT /cases/{id}/status`).
#[derive(Clone, Copy, Debug)]
pub struct Transition(pub CaseStatus);
/// Setting the case's labeler, reviewer and restriction.
#[derive(Clone, Copy, Debug)]
pub struct Assign;
/// Queuing a run of the active model versions on the case.
#[derive(Clone, Copy, Debug)]
pub struct RunModels;
/// Reading who the patient of a case imported from DICOM is (`GET /cases/{id}/patient`).
#[derive(Clone, Copy, Debug)]
pub struct ReadPatient;
/// Storing the case's approved segmentation in the PACS (`POST /cases/{id}/pacs`).
#[derive(Clone, Copy, Debug)]
pub struct SendToPacs;
/// Setting how many readings the case needs (`PUT /cases/{id}/readings`).
#[derive(Clone, Copy, Debug)]
pub struct PlanReadings;
/// Taking a reading of the case, or giving one to a labeler (`POST /cases/{id}/readings`).
#[derive(Clone, Copy, Debug)]
pub struct TakeReading {
    /// A coordinator giving the reading to someone else.
    pub for_other: bool,
}
/// Reading the case's readings and their agreement (`GET /cases/{id}/readings`, `…/agreement`).
#[derive(Clone, Copy, Debug)]
pub struct CompareReadings;
/// Replacing the case's mask with its readings' consensus (`POST /cases/{id}/consensus`).
#[derive(Clone, Copy, Debug)]
pub struct Adjudicate;

impl CaseAction for Read {
    fn decide(&self, _: &User, _: &CaseFacts, _: Rules) -> Result<(), AppError> {
        Ok(())
    }
}

impl CaseAction for Save {
    fn decide(&self, user: &User, case: &CaseFacts, rules: Rules) -> Result<(), AppError> {
        if case.several_readers() {
            return save_with_several_readers(user, case);
        }
        user.require_any(&[Role::Labeler], "saving labels")?;
        match &case.workflow.assignee {
            _ if user.has_role(Role::Admin) || case.is_assignee(user) => Ok(()),
            Some(assignee) => Err(AppError::Forbidden(format!(
                "this case is assigned to {assignee}; only they (or an admin) can save on it"
            ))),
            None if rules.self_assignment => Ok(()),
            None => Err(AppError::Forbidden(
                "this case is not assigned to you; an ML engineer or admin assigns cases here".into(),
            )),
        }
    }
}

/// A save on a case read by several readers goes into the caller's open reading, or, from the
/// adjudicator once every reading is submitted, into the case's own mask.
fn save_with_several_readers(user: &User, case: &CaseFacts) -> Result<(), AppError> {
    if case.open_reading().is_some() && user.has_role(Role::Labeler) {
        return Ok(());
    }
    if case.is_reader() {
        return Err(AppError::Conflict("you submitted your reading of this case; it no longer changes".into()));
    }
    if !case.all_read() {
        return Err(AppError::Forbidden(
            "this case is read by several readers: take a reading of it to label it".into(),
        ));
    }
    case.adjudication(user)
}

impl CaseAction for Take {
    fn decide(&self, user: &User, case: &CaseFacts, rules: Rules) -> Result<(), AppError> {
        if case.several_readers() {
            return Err(AppError::Conflict(
                "this case is read by several readers: take a reading (POST /cases/{id}/readings)".into(),
            ));
        }
        user.require_any(&[Role::Labeler], "taking a case")?;
        if !rules.self_assignment {
            return Err(AppError::Forbidden(
                "labelers cannot take cases themselves here; an ML engineer or admin assigns them".into(),
            ));
        }
        match &case.workflow.assignee {
            Some(assignee) if !case.is_assignee(user) => {
                Err(AppError::Conflict(format!("this case is already assigned to {assignee}")))
            }
            _ => Ok(()),
        }
    }
}

impl CaseAction for Transition {
    /// The person first, then the status: a refused person learns nothing from a 409.
    fn decide(&self, user: &User, case: &CaseFacts, _: Rules) -> Result<(), AppError> {
        if case.several_readers() {
            return transition_with_several_readers(self.0, user, case);
        }
        let admin = user.has_role(Role::Admin);
        let to = self.0;
        match to {
            CaseStatus::Submitted => {
                let own_labeler = user.has_role(Role::Labeler) && case.is_assignee(user);
                if !(admin || own_labeler) {
                    return Err(AppError::Forbidden("only the case's labeler can submit it".into()));
                }
            }
            CaseStatus::Approved | CaseStatus::ChangesRequested | CaseStatus::InProgress => {
                user.require_any(&[Role::Reviewer, Role::Admin], "reviewing cases")?;
                if !admin && case.reviewer_id.is_some() && !case.is_reviewer(user) {
                    return Err(AppError::Forbidden("this case is assigned to another reviewer".into()));
                }
                if to != CaseStatus::InProgress {
                    if !admin && case.is_assignee(user) {
                        return Err(AppError::Forbidden("a case is reviewed by someone other than its labeler".into()));
                    }
                    if case.authored_since_approval > 0 {
                        return Err(AppError::Forbidden(
                            "you saved a version of this case since its last approval; someone who did not label it reviews it".into(),
                        ));
                    }
                }
            }
            CaseStatus::New => {}
        }
        let from = case.status();
        let allowed_from: &[CaseStatus] = match to {
            CaseStatus::Submitted => &[CaseStatus::InProgress, CaseStatus::ChangesRequested],
            CaseStatus::Approved | CaseStatus::ChangesRequested => &[CaseStatus::Submitted],
            CaseStatus::InProgress => &[CaseStatus::Approved],
            CaseStatus::New => &[],
        };
        if !allowed_from.contains(&from) {
            let hint = match to {
                CaseStatus::Submitted => {
                    "only a case in progress (or sent back with changes requested) can be submitted"
                }
                CaseStatus::Approved | CaseStatus::ChangesRequested => {
                    "only a submitted case can be approved or sent back"
                }
                CaseStatus::InProgress => {
                    "only an approved case is reopened this way; saving moves other cases to in_progress"
                }
                CaseStatus::New => "no case goes back to new",
            };
            return Err(AppError::Conflict(format!(
                "the case is {}; it cannot become {}: {hint}",
                from.as_str(),
                to.as_str()
            )));
        }
        Ok(())
    }
}

/// A case read by several readers: a reader submits their reading (the last one submits the
/// case), the adjudicator approves; readings are not sent back, and an approval is reopened as
/// any other.
fn transition_with_several_readers(to: CaseStatus, user: &User, case: &CaseFacts) -> Result<(), AppError> {
    match to {
        CaseStatus::Submitted => {
            if !case.is_reader() {
                return Err(AppError::Forbidden("only a reader of this case submits, their own reading".into()));
            }
            if case.open_reading().is_none() {
                return Err(AppError::Conflict("you submitted your reading of this case already".into()));
            }
            Ok(())
        }
        CaseStatus::Approved => case.adjudication(user),
        CaseStatus::ChangesRequested => {
            case.adjudication(user)?;
            Err(AppError::Conflict(
                "readings are not sent back: the adjudicator edits the case's mask and approves it".into(),
            ))
        }
        CaseStatus::InProgress => {
            user.require_any(&[Role::Reviewer, Role::Admin], "reopening cases")?;
            if case.status() != CaseStatus::Approved {
                return Err(AppError::Conflict("only an approved case is reopened".into()));
            }
            Ok(())
        }
        CaseStatus::New => Err(AppError::Conflict("no case goes back to new".into())),
    }
}

impl CaseAction for Assign {
    fn decide(&self, user: &User, _: &CaseFacts, _: Rules) -> Result<(), AppError> {
        user.require_any(&Role::COORDINATORS, "assigning cases")
    }
}

impl CaseAction for ReadPatient {
    fn decide(&self, user: &User, _: &CaseFacts, _: Rules) -> Result<(), AppError> {
        user.require_any(&[Role::Admin], "reading who a case's patient is")
    }
}

impl CaseAction for SendToPacs {
    fn decide(&self, user: &User, _: &CaseFacts, _: Rules) -> Result<(), AppError> {
        user.require_any(&Role::COORDINATORS, "sending segmentations to the PACS")
    }
}

impl CaseAction for PlanReadings {
    fn decide(&self, user: &User, case: &CaseFacts, _: Rules) -> Result<(), AppError> {
        user.require_any(&Role::COORDINATORS, "planning readings")?;
        if case.status() != CaseStatus::New && !case.several_readers() {
            return Err(AppError::Conflict(
                "this case is labelled already; several readings are planned before anyone saves".into(),
            ));
        }
        Ok(())
    }
}

impl CaseAction for TakeReading {
    fn decide(&self, user: &User, case: &CaseFacts, _: Rules) -> Result<(), AppError> {
        if self.for_other {
            user.require_any(&Role::COORDINATORS, "giving readings to others")?;
        } else {
            user.require_any(&[Role::Labeler], "taking a reading")?;
            if case.is_reader() {
                return Err(AppError::Conflict("you read this case already; nobody reads a case twice".into()));
            }
            if case.is_reviewer(user) {
                return Err(AppError::Conflict("you review this case, so someone else reads it".into()));
            }
        }
        if !case.several_readers() {
            return Err(AppError::Conflict(
                "this case needs one reading: it is labelled through the single-labeler workflow".into(),
            ));
        }
        if case.readings_taken >= case.workflow.readings_required {
            return Err(AppError::Conflict(format!(
                "all {} readings of this case are taken",
                case.workflow.readings_required
            )));
        }
        Ok(())
    }
}

impl CaseAction for CompareReadings {
    fn decide(&self, user: &User, case: &CaseFacts, _: Rules) -> Result<(), AppError> {
        if !case.several_readers() {
            return Err(AppError::Conflict(
                "this case is read by one labeler; there are no readings to compare".into(),
            ));
        }
        if case.blinded() {
            return Err(AppError::Forbidden(
                "the readings are compared once every reading is submitted; until then each reader sees only their own"
                    .into(),
            ));
        }
        if user.is_coordinator() || case.is_reader() {
            return Ok(());
        }
        user.require_any(&[Role::Reviewer], "comparing readings")
    }
}

impl CaseAction for Adjudicate {
    fn decide(&self, user: &User, case: &CaseFacts, _: Rules) -> Result<(), AppError> {
        if !case.several_readers() {
            return Err(AppError::Conflict("this case is read by one labeler; there is nothing to adjudicate".into()));
        }
        case.adjudication(user)
    }
}

impl CaseAction for RunModels {
    fn decide(&self, user: &User, _: &CaseFacts, _: Rules) -> Result<(), AppError> {
        user.require_any(&Role::COORDINATORS, "running models")
    }
}

/// Whether `user` may read a case with these facts.
fn may_read(user: &User, case: &CaseFacts) -> bool {
    user.is_coordinator()
        || !case.restricted()
        || case.is_reader()
        || (user.has_role(Role::Labeler) && case.is_assignee(user))
        || (user.has_role(Role::Reviewer) && case.is_reviewer(user))
}

/// The SQL condition (on cases `c`) of the cases `user` may read, binding the user's id as
/// `$param`: the same rule as [`may_read`], for lists.
pub(crate) fn readable_condition(user: &User, param: usize) -> String {
    if user.is_coordinator() {
        // True for everyone (ids are never empty) without reading a column of the case, so a
        // count stays an index-only scan; it names the parameter because PostgreSQL refuses a
        // bound value the statement never uses.
        return format!("(${param} <> '')");
    }
    let mut readable = vec!["c.restricted = 0".to_string()];
    if user.has_role(Role::Labeler) {
        readable.push(format!("c.assignee_id = ${param}"));
        readable.push(format!(
            "(c.readings_required > 1 AND EXISTS (SELECT 1 FROM readings g WHERE g.case_id = c.id AND g.reader_id = ${param}))"
        ));
    }
    if user.has_role(Role::Reviewer) {
        readable.push(format!("c.reviewer_id = ${param}"));
    }
    if readable.len() == 1 {
        // The parameter must appear in the statement (see above); it never matches a column.
        readable.push(format!("${param} = ''"));
    }
    format!("({})", readable.join(" OR "))
}

/// The SQL condition (on cases `c`) of the cases whose readers' blinding hides the models'
/// work from the user whose id is `$param`: the same rule as [`CaseFacts::blinded_to_models`].
pub(crate) fn blinded_to_models_condition(param: usize) -> String {
    format!(
        "(c.blind = 1 AND EXISTS (SELECT 1 FROM readings g WHERE g.case_id = c.id AND g.reader_id = ${param})
          AND (SELECT COUNT(*) FROM readings g WHERE g.case_id = c.id AND g.submitted_at IS NOT NULL) < c.readings_required)"
    )
}

/// The one answer for a case that does not exist and for one the caller may not read.
fn no_such_case(case_id: &str) -> AppError {
    AppError::NotFound(format!("case {case_id}"))
}

/// The case a client names (a path, a server function's argument): a text that cannot be a
/// case id is no such case, the same 404 as any other.
pub(crate) fn case_named(text: &str) -> Result<CaseId, AppError> {
    CaseId::parse(text).map_err(|_| no_such_case(text))
}

/// Permission for `user` to do `A` to one case, with the facts it was decided on. Only
/// [`authorize`] makes one.
#[derive(Debug)]
pub struct CaseAccess<A> {
    case_id: CaseId,
    user: User,
    facts: CaseFacts,
    action: A,
}

impl<A: CaseAction> CaseAccess<A> {
    pub fn case_id(&self) -> &CaseId {
        &self.case_id
    }

    pub fn user(&self) -> &User {
        &self.user
    }

    pub fn facts(&self) -> &CaseFacts {
        &self.facts
    }

    pub fn action(&self) -> &A {
        &self.action
    }

    /// Inside a transaction that has locked the case's row: decides again on the facts as they
    /// are now (the case may have been reassigned or reviewed since), and keeps them.
    pub(crate) async fn recheck(&mut self, tx: &mut AnyConnection, rules: Rules) -> Result<(), AppError> {
        self.facts = decide(tx, &self.user, &self.case_id, &self.action, rules).await?;
        Ok(())
    }

    /// First in a transaction: a write locks the case's row (SQLite takes its write lock before
    /// any read, PostgreSQL locks the row), then the decision is taken again on the row as it
    /// is, so a concurrent change makes this one fail instead of slipping past it.
    pub(crate) async fn lock_and_recheck(&mut self, tx: &mut AnyConnection, rules: Rules) -> Result<(), AppError> {
        sqlx::query("UPDATE cases SET status = status WHERE id = $1").bind(&self.case_id).execute(&mut *tx).await?;
        self.recheck(tx, rules).await
    }
}

/// Decides whether `user` may do `action` to case `case_id`: 404 when the case does not exist
/// or the caller may not read it, else the action's own refusal (403, or 409 for a state that
/// forbids it).
pub async fn authorize<A: CaseAction>(
    state: &AppState,
    user: &User,
    case_id: &CaseId,
    action: A,
) -> Result<CaseAccess<A>, AppError> {
    let rules = rules(state);
    let facts = decide(&mut *state.db.pool.acquire().await?, user, case_id, &action, rules).await?;
    Ok(CaseAccess { case_id: case_id.clone(), user: user.clone(), facts, action })
}

pub fn rules(state: &AppState) -> Rules {
    Rules { self_assignment: state.config.allows_self_assignment() }
}

async fn decide(
    conn: &mut AnyConnection,
    user: &User,
    case_id: &CaseId,
    action: &dyn CaseAction,
    rules: Rules,
) -> Result<CaseFacts, AppError> {
    let facts = facts(conn, user, case_id).await?.ok_or_else(|| no_such_case(case_id.as_str()))?;
    if !may_read(user, &facts) {
        return Err(no_such_case(case_id.as_str()));
    }
    action.decide(user, &facts, rules)?;
    Ok(facts)
}

/// The case's facts as `user` is concerned, or none for no such case.
async fn facts(conn: &mut AnyConnection, user: &User, case_id: &CaseId) -> Result<Option<CaseFacts>, AppError> {
    // Versions since the last approval: saves at or after the approved version's save, other
    // than that version itself; every save when the approved version is none or not a save.
    let (workflow, cases) = WORKFLOW_FROM;
    Ok(sqlx::query_as(&format!(
        "SELECT {workflow}, c.assignee_id, c.reviewer_id,
                CAST(CASE WHEN EXISTS (
                    SELECT 1 FROM labels l
                    WHERE l.case_id = c.id AND l.user_id = $2 AND l.new_mask_ref <> COALESCE(c.approved_mask_ref, '')
                      AND l.created_at >= COALESCE((SELECT p.created_at FROM labels p WHERE p.new_mask_ref = c.approved_mask_ref), 0)
                ) THEN 1 ELSE 0 END AS BIGINT) AS authored_since_approval,
                c.blind,
                (SELECT COUNT(*) FROM readings g WHERE g.case_id = c.id) AS readings_taken,
                (SELECT COUNT(*) FROM readings g WHERE g.case_id = c.id AND g.submitted_at IS NOT NULL) AS readings_submitted,
                (SELECT g.id FROM readings g WHERE g.case_id = c.id AND g.reader_id = $2) AS my_reading_id,
                CAST(CASE WHEN EXISTS (
                    SELECT 1 FROM readings g WHERE g.case_id = c.id AND g.reader_id = $2 AND g.submitted_at IS NOT NULL
                ) THEN 1 ELSE 0 END AS BIGINT) AS my_reading_submitted
         FROM {cases}
         WHERE c.id = $1"
    ))
    .bind(case_id)
    .bind(&user.id)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Whether the reader of a case may also do `action` to it, by the same decision the action
/// takes: for the buttons a page shows, and for what a read shows (the readings only those
/// who may compare them see).
pub fn may(access: &CaseAccess<Read>, action: &dyn CaseAction, rules: Rules) -> bool {
    action.decide(&access.user, &access.facts, rules).is_ok()
}

/// What the reader of a case may do with it now: the buttons a page shows, from the same
/// decisions the actions make.
pub fn actions(access: &CaseAccess<Read>, rules: Rules) -> CaseActions {
    let case = &access.facts;
    let may = |action: &dyn CaseAction| may(access, action, rules);
    CaseActions {
        // The page's Take is the single-labeler workflow's (refused on a case read by several
        // readers, whose readings are taken through `POST /cases/{id}/readings`).
        take: may(&Take) && case.assignee_id.is_none(),
        save: may(&Save),
        submit: may(&Transition(CaseStatus::Submitted)),
        review: may(&Transition(CaseStatus::Approved)),
        reopen: may(&Transition(CaseStatus::InProgress)),
        assign: may(&Assign),
        run_models: may(&RunModels),
        send_to_pacs: may(&SendToPacs) && case.workflow.approved_mask_ref.is_some(),
        adjudicate: may(&Adjudicate),
        plan_readings: may(&PlanReadings),
        take_reading: may(&TakeReading { for_other: false }),
        compare_readings: may(&CompareReadings),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, roles: &[Role]) -> User {
        User { id: id.into(), username: UserName::parse(id).unwrap(), roles: roles.to_vec() }
    }

    fn case(status: CaseStatus, assignee: Option<&str>, reviewer: Option<&str>, restricted: bool) -> CaseFacts {
        CaseFacts {
            workflow: WorkflowRow {
                status,
                assignee: assignee.map(|name| UserName::parse(name).unwrap()),
                reviewer: reviewer.map(|name| UserName::parse(name).unwrap()),
                approved_mask_ref: None,
                restricted: restricted.into(),
                readings_required: 1,
            },
            assignee_id: assignee.map(str::to_string),
            reviewer_id: reviewer.map(str::to_string),
            authored_since_approval: 0,
            blind: 0,
            readings_taken: 0,
            readings_submitted: 0,
            my_reading_id: None,
            my_reading_submitted: 0,
        }
    }

    const OPEN: Rules = Rules { self_assignment: true };

    #[test]
    fn a_restricted_case_is_read_through_the_role_its_assignment_needs() {
        let restricted = case(CaseStatus::InProgress, Some("alice"), Some("rita"), true);
        assert!(may_read(&user("alice", &[Role::Labeler]), &restricted));
        assert!(may_read(&user("rita", &[Role::Reviewer]), &restricted));
        assert!(may_read(&user("mle", &[Role::MlEngineer]), &restricted));
        assert!(!may_read(&user("bob", &[Role::Labeler, Role::Reviewer]), &restricted));
        // A role taken back takes the access with it, although the assignment stays.
        assert!(!may_read(&user("alice", &[Role::Reviewer]), &restricted));
        assert!(!may_read(&user("rita", &[Role::Labeler]), &restricted));
    }

    #[test]
    fn nobody_reviews_a_version_they_saved_since_the_last_approval() {
        let mut submitted = case(CaseStatus::Submitted, None, None, false);
        let carol = user("carol", &[Role::Labeler, Role::Reviewer, Role::Admin]);
        assert!(Transition(CaseStatus::Approved).decide(&carol, &submitted, OPEN).is_ok());
        submitted.authored_since_approval = 1;
        for to in [CaseStatus::Approved, CaseStatus::ChangesRequested] {
            let refused = Transition(to).decide(&carol, &submitted, OPEN).unwrap_err();
            assert!(matches!(refused, AppError::Forbidden(_)), "{refused:?}");
        }
    }

    #[test]
    fn the_person_is_checked_before_the_status() {
        let approved = case(CaseStatus::Approved, Some("alice"), Some("rita"), false);
        let refused =
            Transition(CaseStatus::Approved).decide(&user("rolf", &[Role::Reviewer]), &approved, OPEN).unwrap_err();
        assert!(matches!(refused, AppError::Forbidden(_)), "{refused:?}");
        let refused =
            Transition(CaseStatus::Approved).decide(&user("rita", &[Role::Reviewer]), &approved, OPEN).unwrap_err();
        assert!(matches!(refused, AppError::Conflict(_)), "{refused:?}");
    }

    #[test]
    fn only_a_labeler_submits_and_saves() {
        let mine = case(CaseStatus::InProgress, Some("alice"), None, false);
        let alice_without_role = user("alice", &[Role::Reviewer]);
        assert!(Transition(CaseStatus::Submitted).decide(&alice_without_role, &mine, OPEN).is_err());
        assert!(Save.decide(&alice_without_role, &mine, OPEN).is_err());
        assert!(Transition(CaseStatus::Submitted).decide(&user("alice", &[Role::Labeler]), &mine, OPEN).is_ok());
    }

    #[test]
    fn the_list_condition_follows_the_roles() {
        assert_eq!(
            readable_condition(&user("a", &[Role::Labeler]), 1),
            "(c.restricted = 0 OR c.assignee_id = $1 OR (c.readings_required > 1 AND EXISTS \
             (SELECT 1 FROM readings g WHERE g.case_id = c.id AND g.reader_id = $1)))"
        );
        assert_eq!(readable_condition(&user("a", &[Role::Reviewer]), 2), "(c.restricted = 0 OR c.reviewer_id = $2)");
        assert_eq!(readable_condition(&user("a", &[Role::MlEngineer]), 1), "($1 <> '')");
    }
}
