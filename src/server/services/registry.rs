//! The model registry: registering model versions with a validated card and their artifact,
//! lifecycle transitions (registered → shadow → production → archived, and archived back to
//! shadow), the one-step rollback of a promotion, each name's timeline of states, and the
//! active versions the orchestrator runs.
//!
//! The database holds the invariants: partial unique indexes allow one production and one
//! shadow version per name, and every transition is a compare-and-set in one transaction with
//! its audit row, so concurrent promotions leave exactly one winner and the audit log answers
//! "what was in production on date D".

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::audit::{self, AuditAction, AuditEvent};
use crate::api::{
    ActiveModels, ArtifactFormat, ArtifactSpec, ModelCard, ModelDetail, ModelId, ModelState, ModelSummary, Rollback,
    StateChange, UserName,
};
use crate::nifti_io::VoxelType;
use crate::server::clock::now_ms;
use crate::server::error::AppError;
use crate::server::identity::{Role, User};
use crate::server::inference;
use crate::server::oip::AllowedServers;
use crate::server::state::AppState;

/// Most output channels a card may list: one per label value 0–255, each once.
const MAX_OUTPUT_CHANNELS: usize = 256;

fn unprocessable(message: impl Into<String>) -> AppError {
    AppError::Unprocessable(message.into())
}

/// A model card that passed every rule: only [`parse_card`] makes one, so whatever holds a
/// `ValidCard` need not check it again.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidCard(ModelCard);

impl std::ops::Deref for ValidCard {
    type Target = ModelCard;
    fn deref(&self) -> &ModelCard {
        &self.0
    }
}

/// Parses a card, naming the offending field on failure (`input_spec.voxel_type: …`); an
/// `oip-v2` card may only name one of `servers`.
fn parse_card(json: &str, servers: &AllowedServers) -> Result<ValidCard, AppError> {
    let deserializer = &mut serde_json::Deserializer::from_str(json);
    let card: ModelCard = serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        match path.as_str() {
            "." => unprocessable(format!("model card: {}", err.inner())),
            _ => unprocessable(format!("model card field `{path}`: {}", err.inner())),
        }
    })?;
    // A `\u0000` escape is valid JSON but a NUL no text column takes.
    crate::server::text::check_json_text("model card", &serde_json::to_value(&card).map_err(AppError::internal)?)?;
    check_rules(&card, servers)?;
    Ok(ValidCard(card))
}

/// The rules serde's types cannot express.
fn check_rules(card: &ModelCard, servers: &AllowedServers) -> Result<(), AppError> {
    let name_ok = (1..=100).contains(&card.name.len())
        && card.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    if !name_ok {
        return Err(unprocessable("model card field `name`: use 1–100 lowercase letters, digits, `-`, `_` or `.`"));
    }
    semver::Version::parse(&card.version).map_err(|e| {
        unprocessable(format!("model card field `version`: {:?} is not a semantic version ({e})", card.version))
    })?;
    if card.label_map.is_empty() {
        return Err(unprocessable("model card field `label_map`: name at least one label"));
    }
    for (value, name) in &card.label_map {
        match value.parse::<u8>() {
            Ok(1..=255) if !name.trim().is_empty() => {}
            _ => {
                return Err(unprocessable(format!(
                    "model card field `label_map.{value}`: keys are label values 1–255 and names are not empty"
                )))
            }
        }
    }
    let known = |value: u8| value == 0 || card.label_map.contains_key(&value.to_string());
    let channels = &card.output_channels;
    // Each channel's logits are read and held: a repeated value only makes the answer longer.
    let distinct = channels.iter().collect::<std::collections::HashSet<_>>().len() == channels.len();
    if !(2..=MAX_OUTPUT_CHANNELS).contains(&channels.len()) || !distinct || !channels.iter().all(|&v| known(v)) {
        return Err(unprocessable(format!(
            "model card field `output_channels`: list 2 to {MAX_OUTPUT_CHANNELS} channels, each 0 (background) or a value of `label_map`, none twice"
        )));
    }
    let spec = &card.input_spec;
    if VoxelType::parse(&spec.voxel_type).is_none() {
        let names: Vec<_> = VoxelType::ALL.iter().map(|t| t.as_str()).collect();
        return Err(unprocessable(format!("model card field `input_spec.voxel_type`: one of {}", names.join(", "))));
    }
    let axes = spec.orientation.as_bytes();
    let axis_of = |c: u8| match c {
        b'R' | b'L' => Some(0),
        b'A' | b'P' => Some(1),
        b'S' | b'I' => Some(2),
        _ => None,
    };
    let mut seen = [false; 3];
    let orientation_ok = axes.len() == 3
        && axes.iter().all(|&c| axis_of(c).is_some_and(|axis| !std::mem::replace(&mut seen[axis], true)));
    if !orientation_ok {
        return Err(unprocessable("model card field `input_spec.orientation`: three axis codes such as RAS or LPS"));
    }
    if spec.spacing_mm.is_some_and(|s| s.iter().any(|v| !(v.is_finite() && *v > 0.0))) {
        return Err(unprocessable("model card field `input_spec.spacing_mm`: three positive numbers"));
    }
    for (field, text) in
        [("intended_use", &card.intended_use), ("limitations", &card.limitations), ("license", &card.license)]
    {
        if text.trim().is_empty() {
            return Err(unprocessable(format!("model card field `{field}`: must not be empty")));
        }
    }
    for (index, metric) in card.metrics.iter().enumerate() {
        if metric.name.trim().is_empty() || metric.dataset.trim().is_empty() || !metric.value.is_finite() {
            return Err(unprocessable(format!(
                "model card field `metrics[{index}]`: name, dataset and a finite value are required"
            )));
        }
    }
    let sha = &card.artifact.sha256;
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        return Err(unprocessable("model card field `artifact.sha256`: 64 lowercase hexadecimal digits"));
    }
    check_remote(&card.artifact, servers)
}

/// An `oip-v2` artifact names its model on the server (and may name the server, one the
/// operator allows); an `onnx` one names neither.
fn check_remote(artifact: &ArtifactSpec, servers: &AllowedServers) -> Result<(), AppError> {
    match artifact.format {
        ArtifactFormat::Onnx if artifact.endpoint.is_some() || artifact.model_name.is_some() => {
            Err(unprocessable("model card field `artifact`: `endpoint` and `model_name` belong to format `oip-v2`"))
        }
        ArtifactFormat::Onnx => Ok(()),
        ArtifactFormat::OipV2 => {
            // Starting with a letter or digit, it is never `.` or `..`, which would leave its path segment.
            let name_ok = artifact.model_name.as_deref().is_some_and(|name| {
                name.len() <= 128
                    && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            });
            if !name_ok {
                return Err(unprocessable(
                    "model card field `artifact.model_name`: the model's name on the server (letters, digits, -_., starting with a letter or digit)",
                ));
            }
            match artifact.endpoint.as_deref() {
                Some(endpoint) => servers
                    .check(endpoint)
                    .map(drop)
                    .map_err(|why| unprocessable(format!("model card field `artifact.endpoint`: {why}"))),
                None => Ok(()),
            }
        }
    }
}

/// A model version as listed: a `models` row without its card and artifact.
#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: ModelId,
    name: String,
    version: String,
    state: ModelState,
    created_at: i64,
    updated_at: i64,
}

const SUMMARY_COLUMNS: &str = "id, name, version, state, created_at, updated_at";

impl From<SummaryRow> for ModelSummary {
    fn from(row: SummaryRow) -> ModelSummary {
        ModelSummary {
            id: row.id,
            name: row.name,
            version: row.version,
            state: row.state,
            created_at_ms: row.created_at,
            updated_at_ms: row.updated_at,
        }
    }
}

/// A whole `models` row.
#[derive(sqlx::FromRow)]
struct ModelRow {
    #[sqlx(flatten)]
    summary: SummaryRow,
    card: String,
    artifact_ref: String,
}

impl ModelRow {
    fn card(&self) -> Result<ModelCard, AppError> {
        serde_json::from_str(&self.card).map_err(AppError::internal)
    }
}

/// Registers a model version in state `registered`: checks the card, the artifact's SHA-256
/// and that the artifact is a loadable ONNX model, stores the artifact, audits.
/// 403 unless `user` may register model versions; the upload route asks before it reads the
/// body, so a refused upload costs nothing.
pub(crate) fn may_register(user: &User) -> Result<(), AppError> {
    user.require_any(&Role::COORDINATORS, "register models")
}

pub async fn register(
    state: &AppState,
    user: &User,
    card_json: &str,
    artifact: &Path,
) -> Result<ModelSummary, AppError> {
    may_register(user)?;
    let card = parse_card(card_json, &state.inference_servers)?;
    for dataset in &card.training_datasets {
        let known = sqlx::query_scalar::<_, i64>("SELECT 1 FROM datasets WHERE id = $1")
            .bind(dataset)
            .fetch_optional(&state.db.pool)
            .await?
            .is_some();
        if !known {
            return Err(unprocessable(format!(
                "model card field `training_datasets`: there is no dataset snapshot {dataset}"
            )));
        }
    }
    // The artifact stays on disk: its digest is computed and tract reads it from the file.
    let file = artifact.to_path_buf();
    let (actual, loadable) = tokio::task::spawn_blocking(move || -> std::io::Result<(String, Result<(), String>)> {
        let mut hasher = Sha256::new();
        std::io::copy(&mut File::open(&file)?, &mut hasher)?;
        let loadable = inference::check_onnx(&mut BufReader::new(File::open(&file)?)).map_err(|e| e.to_string());
        Ok((hex::encode(hasher.finalize()), loadable))
    })
    .await
    .map_err(AppError::internal)?
    .map_err(AppError::internal)?;
    if actual != card.artifact.sha256 {
        return Err(unprocessable(format!(
            "model card field `artifact.sha256`: the uploaded artifact's SHA-256 is {actual}, the card says {}",
            card.artifact.sha256
        )));
    }
    loadable.map_err(|e| unprocessable(format!("artifact: not a loadable ONNX model ({e})")))?;
    let duplicate = sqlx::query_scalar::<_, String>("SELECT id FROM models WHERE name = $1 AND version = $2")
        .bind(&card.name)
        .bind(&card.version)
        .fetch_optional(&state.db.pool)
        .await?;
    if duplicate.is_some() {
        return Err(AppError::Conflict(format!("{} {} is already registered", card.name, card.version)));
    }

    let id = ModelId::random();
    let artifact_ref = format!("models/{id}/model.onnx");
    state.store.put_file(&artifact_ref, artifact).await?;
    let at = now_ms();
    let mut tx = state.db.pool.begin().await?;
    sqlx::query(
        "INSERT INTO models (id, name, version, state, card, artifact_ref, sha256, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $9, $4, $5, $6, $7, $8, $8)",
    )
    .bind(&id)
    .bind(&card.name)
    .bind(&card.version)
    .bind(serde_json::to_string(&*card).map_err(AppError::internal)?)
    .bind(&artifact_ref)
    .bind(&actual)
    .bind(&user.id)
    .bind(at)
    .bind(ModelState::Registered.as_str())
    .execute(&mut *tx)
    .await
    .map_err(|e| unique_conflict(e, format!("{} {} is already registered", card.name, card.version)))?;
    audit::record(
        &mut tx,
        &state.db,
        AuditEvent {
            action: AuditAction::ModelRegister,
            user_id: Some(&user.id),
            case_id: None,
            details: json!({ "model_id": id, "name": card.name, "version": card.version, "sha256": actual }),
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(model_id = %id, name = %card.name, version = %card.version, "model registered");
    let ValidCard(card) = card;
    Ok(ModelSummary {
        id,
        name: card.name,
        version: card.version,
        state: ModelState::Registered,
        created_at_ms: at,
        updated_at_ms: at,
    })
}

/// A unique-index violation as a 409 with `message`; other errors as they are.
pub(crate) fn unique_conflict(err: sqlx::Error, message: String) -> AppError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => AppError::Conflict(message),
        _ => err.into(),
    }
}

pub(crate) async fn list_models(state: &AppState) -> Result<Vec<ModelSummary>, AppError> {
    let rows: Vec<SummaryRow> =
        sqlx::query_as(&format!("SELECT {SUMMARY_COLUMNS} FROM models ORDER BY name, created_at DESC"))
            .fetch_all(&state.db.pool)
            .await?;
    Ok(rows.into_iter().map(ModelSummary::from).collect())
}

/// The model version a client names (a path, a server function's argument): a text that
/// cannot be a model id is no such version, the same 404 as any other.
pub(crate) fn model_named(text: &str) -> Result<ModelId, AppError> {
    ModelId::parse(text).map_err(|_| AppError::NotFound(format!("model {text}")))
}

async fn model_row(state: &AppState, id: &ModelId) -> Result<ModelRow, AppError> {
    sqlx::query_as(&format!("SELECT {SUMMARY_COLUMNS}, card, artifact_ref FROM models WHERE id = $1"))
        .bind(id)
        .fetch_optional(&state.db.pool)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("model {id}")))
}

async fn summary_of(state: &AppState, id: &ModelId) -> Result<ModelSummary, AppError> {
    Ok(model_row(state, id).await?.summary.into())
}

pub(crate) async fn model_card(state: &AppState, id: &ModelId) -> Result<ModelCard, AppError> {
    model_row(state, id).await?.card()
}

pub(crate) async fn model_detail(state: &AppState, id: &ModelId) -> Result<ModelDetail, AppError> {
    let row = model_row(state, id).await?;
    let card = row.card()?;
    let summary = ModelSummary::from(row.summary);
    Ok(ModelDetail { allowed_next: summary.state.allowed_next().to_vec(), card, summary })
}

/// The artifact reference and card of a model version, for the runner.
pub(crate) async fn runnable(state: &AppState, id: &ModelId) -> Result<(String, ModelCard), AppError> {
    let row = model_row(state, id).await?;
    let card = row.card()?;
    Ok((row.artifact_ref, card))
}

/// A state named in a REST body, or 422 listing the states.
pub(crate) fn parse_state(text: &str) -> Result<ModelState, AppError> {
    ModelState::parse(text).ok_or_else(|| {
        AppError::Unprocessable(format!(
            "field `state`: {text:?} is not a state; states are registered, shadow, production, archived"
        ))
    })
}

/// Moves model `id` to `to`. Promoting to production archives the name's previous production
/// version in the same transaction; a second shadow is refused. Every change is audited.
pub async fn transition(state: &AppState, user: &User, id: &ModelId, to: ModelState) -> Result<ModelSummary, AppError> {
    user.require_any(&Role::COORDINATORS, "change model states")?;
    let current = summary_of(state, id).await?;
    let allowed = current.state.allowed_next();
    if !allowed.contains(&to) {
        let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        return Err(AppError::Conflict(format!(
            "{} {} is {}; it cannot move to {to}. Allowed: {}",
            current.name,
            current.version,
            current.state,
            if names.is_empty() { "none (archived is final)".to_string() } else { names.join(", ") }
        )));
    }
    let at = now_ms();
    let mut tx = state.db.pool.begin().await?;
    let mut audit_rows = Vec::new();
    if to == ModelState::Production {
        // Writes come first in the transaction, so SQLite takes its write lock before any
        // read (a read-then-write transaction fails at once when another commits between).
        let archived: Vec<(String, String)> = sqlx::query_as(
            "UPDATE models SET state = $4, updated_at = $1
             WHERE name = $2 AND state = $5 AND id <> $3 RETURNING id, version",
        )
        .bind(at)
        .bind(&current.name)
        .bind(id)
        .bind(ModelState::Archived.as_str())
        .bind(ModelState::Production.as_str())
        .fetch_all(&mut *tx)
        .await?;
        for (previous_id, previous_version) in archived {
            audit_rows.push(json!({
                "model_id": previous_id, "name": current.name, "version": previous_version,
                "from": "production", "to": "archived", "reason": format!("replaced by {}", current.version),
            }));
        }
    }
    let changed = sqlx::query("UPDATE models SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4")
        .bind(to.as_str())
        .bind(at)
        .bind(id)
        .bind(current.state.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            unique_conflict(
                e,
                format!(
                    "another version of {} is already in {to}; move it first (at most one {to} version per name)",
                    current.name
                ),
            )
        })?;
    if changed.rows_affected() == 0 {
        return Err(AppError::Conflict(format!(
            "{} {} changed state while this request ran; reload and try again",
            current.name, current.version
        )));
    }
    audit_rows.push(json!({
        "model_id": id, "name": current.name, "version": current.version,
        "from": current.state.as_str(), "to": to.as_str(),
    }));
    for details in audit_rows {
        audit::record(
            &mut tx,
            &state.db,
            AuditEvent { action: AuditAction::ModelState, user_id: Some(&user.id), case_id: None, details },
        )
        .await?;
    }
    // PostgreSQL checks the unique indexes at each statement; SQLite may at commit.
    tx.commit()
        .await
        .map_err(|e| unique_conflict(e, format!("another version of {} is already in {to}", current.name)))?;
    tracing::info!(model_id = %id, from = %current.state, %to, "model state changed");
    Ok(ModelSummary { state: to, updated_at_ms: at, ..current })
}

/// The production and shadow versions of `name`, read in one statement (one snapshot).
pub(crate) async fn active_models(state: &AppState, name: &str) -> Result<ActiveModels, AppError> {
    let rows: Vec<SummaryRow> =
        sqlx::query_as(&format!("SELECT {SUMMARY_COLUMNS} FROM models WHERE name = $1 AND state IN ($2, $3)"))
            .bind(name)
            .bind(ModelState::Production)
            .bind(ModelState::Shadow)
            .fetch_all(&state.db.pool)
            .await?;
    let mut active = ActiveModels { name: name.to_string(), production: None, shadow: None };
    for row in rows {
        let model = ModelSummary::from(row);
        match model.state {
            ModelState::Production => active.production = Some(model),
            _ => active.shadow = Some(model),
        }
    }
    Ok(active)
}

/// Every production and shadow version of every name, read in one statement: the snapshot
/// one orchestrator trigger dispatches from.
pub(crate) async fn all_active(state: &AppState) -> Result<Vec<ModelSummary>, AppError> {
    let rows: Vec<SummaryRow> =
        sqlx::query_as(&format!("SELECT {SUMMARY_COLUMNS} FROM models WHERE state IN ($1, $2) ORDER BY name, state"))
            .bind(ModelState::Production)
            .bind(ModelState::Shadow)
            .fetch_all(&state.db.pool)
            .await?;
    Ok(rows.into_iter().map(ModelSummary::from).collect())
}

/// Every registration and state change of the versions of `name`, oldest first, from the
/// audit log.
pub async fn timeline(state: &AppState, name: &str) -> Result<Vec<StateChange>, AppError> {
    let rows: Vec<(i64, String, String, Option<UserName>)> = sqlx::query_as(
        "SELECT a.at, a.action, a.details, u.username FROM audit_log a LEFT JOIN users u ON u.id = a.user_id
         WHERE a.action IN ($1, $2) ORDER BY a.seq",
    )
    .bind(AuditAction::ModelRegister.as_str())
    .bind(AuditAction::ModelState.as_str())
    .fetch_all(&state.db.pool)
    .await?;
    let mut changes = Vec::new();
    for (at, action, details, username) in rows {
        let details: serde_json::Value = serde_json::from_str(&details).map_err(AppError::internal)?;
        if details["name"] != name {
            continue;
        }
        let text = |key: &str| details[key].as_str().map(str::to_string);
        let state_of = |key: &str| text(key).and_then(|s| ModelState::parse(&s));
        let registration = action == AuditAction::ModelRegister.as_str();
        changes.push(StateChange {
            at_ms: at,
            // Written by `register` and `transition` from a stored id.
            model_id: ModelId::stored(text("model_id").unwrap_or_default()),
            version: text("version").unwrap_or_default(),
            from: if registration { None } else { state_of("from") },
            to: if registration {
                ModelState::Registered
            } else {
                state_of("to").ok_or_else(|| AppError::internal("a state change without its state"))?
            },
            by: username,
            reason: text("reason"),
            rollback: details["rollback"] == true,
        });
    }
    Ok(changes)
}

/// The version of `name` that was in production at `at_ms`, replayed from its timeline.
pub(crate) async fn production_at(
    state: &AppState,
    name: &str,
    at_ms: i64,
) -> Result<Option<(ModelId, String)>, AppError> {
    let mut current: Option<(ModelId, String)> = None;
    for change in timeline(state, name).await?.into_iter().take_while(|change| change.at_ms <= at_ms) {
        if change.to == ModelState::Production {
            current = Some((change.model_id, change.version));
        } else if change.from == Some(ModelState::Production)
            && current.as_ref().is_some_and(|c| c.0 == change.model_id)
        {
            current = None;
        }
    }
    Ok(current)
}

/// The last promotion to production, in `timeline`, of a version other than `current_id`: what
/// a rollback of `current_id` restores.
pub(crate) fn previous_production<'a>(timeline: &'a [StateChange], current_id: &ModelId) -> Option<&'a StateChange> {
    timeline.iter().rev().find(|change| change.to == ModelState::Production && change.model_id != *current_id)
}

/// `POST /models/{id}/rollback`: undoes the promotion of the production version `id` in one
/// step, for emergencies. `id` is archived and the version that was in production before it
/// returns to production straight away (skipping shadow), in one transaction whose audit rows
/// say it was a rollback.
pub async fn rollback(state: &AppState, user: &User, id: &ModelId) -> Result<Rollback, AppError> {
    user.require_any(&Role::COORDINATORS, "rolling back a promotion")?;
    let current = summary_of(state, id).await?;
    if current.state != ModelState::Production {
        return Err(AppError::Conflict(format!(
            "{} {} is {}; only the production version can be rolled back",
            current.name, current.version, current.state
        )));
    }
    let previous_id = previous_production(&timeline(state, &current.name).await?, &current.id)
        .map(|change| change.model_id.clone())
        .ok_or_else(|| {
            AppError::Conflict(format!(
                "no earlier version of {} was in production; there is nothing to roll back to",
                current.name
            ))
        })?;
    let previous = summary_of(state, &previous_id).await?;
    let at = now_ms();
    let mut tx = state.db.pool.begin().await?;
    // Both as compare-and-set: a concurrent change of either version refuses the rollback.
    for (model, to) in [(&current, ModelState::Archived), (&previous, ModelState::Production)] {
        let changed = sqlx::query("UPDATE models SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4")
            .bind(to.as_str())
            .bind(at)
            .bind(&model.id)
            .bind(model.state.as_str())
            .execute(&mut *tx)
            .await?;
        if changed.rows_affected() == 0 {
            return Err(AppError::Conflict(format!(
                "{} {} changed state while this request ran; reload and try again",
                model.name, model.version
            )));
        }
    }
    for (model, to, reason) in [
        (&current, ModelState::Archived, format!("rolled back to {}", previous.version)),
        (&previous, ModelState::Production, format!("rollback from {}", current.version)),
    ] {
        let details = json!({
            "model_id": model.id, "name": model.name, "version": model.version,
            "from": model.state.as_str(), "to": to.as_str(), "reason": reason, "rollback": true,
        });
        audit::record(
            &mut tx,
            &state.db,
            AuditEvent { action: AuditAction::ModelState, user_id: Some(&user.id), case_id: None, details },
        )
        .await?;
    }
    tx.commit().await?;
    tracing::warn!(name = %current.name, from = %current.version, to = %previous.version, "production rolled back");
    Ok(Rollback {
        restored: ModelSummary { state: ModelState::Production, updated_at_ms: at, ..previous },
        archived: ModelSummary { state: ModelState::Archived, updated_at_ms: at, ..current },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> serde_json::Value {
        json!({
            "name": "liver-seg", "version": "1.2.0", "task": "segmentation", "modality": "CT",
            "label_map": {"1": "liver"},
            "input_spec": {"voxel_type": "int16", "orientation": "RAS", "intensity_normalisation": "zscore"},
            "output_channels": [0, 1],
            "intended_use": "research", "limitations": "phantoms only", "license": "Apache-2.0",
            "metrics": [{"name": "dice", "value": 0.9, "dataset": "phantoms", "label": "liver"}],
            "artifact": {"format": "onnx", "sha256": "ab".repeat(32)},
        })
    }

    /// The operator's inference servers in these tests.
    fn servers() -> AllowedServers {
        AllowedServers::new(Some("http://gpu.example:8080"), &["gpu.example:8443".to_string()]).unwrap()
    }

    fn refusal(card: serde_json::Value) -> String {
        match parse_card(&card.to_string(), &servers()) {
            Err(AppError::Unprocessable(message)) => message,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn a_complete_card_is_accepted() {
        let parsed = parse_card(&card().to_string(), &servers()).unwrap();
        assert_eq!(parsed.label_map["1"], "liver");
    }

    #[test]
    fn a_control_character_in_a_card_is_a_bad_request() {
        let mut c = card();
        c["limitations"] = json!("phantoms\u{0} only");
        match parse_card(&c.to_string(), &servers()) {
            Err(AppError::BadRequest(message)) => {
                assert!(message.starts_with("model card field `limitations` holds"), "{message}")
            }
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn refusals_name_the_field() {
        let mut c = card();
        c["input_spec"]["colour"] = json!("blue");
        assert!(refusal(c).contains("input_spec"), "unknown nested field");
        let mut c = card();
        c["extra"] = json!(1);
        assert!(refusal(c).contains("unknown field `extra`"));
        let mut c = card();
        c["input_spec"]["intensity_normalisation"] = json!("whiten");
        assert!(refusal(c).contains("input_spec.intensity_normalisation"));
        let mut c = card();
        c["version"] = json!("1.2");
        assert!(refusal(c).contains("`version`"));
        let mut c = card();
        c["label_map"] = json!({"0": "background"});
        assert!(refusal(c).contains("label_map.0"));
        let mut c = card();
        c["output_channels"] = json!([0, 7]);
        assert!(refusal(c).contains("output_channels"));
        let mut c = card();
        c["input_spec"]["orientation"] = json!("RRS");
        assert!(refusal(c).contains("orientation"));
        let mut c = card();
        c["artifact"]["sha256"] = json!("xyz");
        assert!(refusal(c).contains("artifact.sha256"));
        let mut c = card();
        c.as_object_mut().unwrap().remove("license");
        assert!(refusal(c).contains("missing field `license`"));
        let mut c = card();
        c["metrics"][0]["value"] = json!("high");
        assert!(refusal(c).contains("metrics[0].value"));
        let mut c = card();
        c["artifact"]["format"] = json!("oip-v2");
        assert!(refusal(c.clone()).contains("artifact.model_name"));
        c["artifact"]["model_name"] = json!("liver seg");
        assert!(refusal(c.clone()).contains("artifact.model_name"));
        c["artifact"]["model_name"] = json!("..");
        assert!(refusal(c.clone()).contains("artifact.model_name"), "a name that would leave its path segment");
        c["artifact"]["model_name"] = json!("liver-seg");
        c["artifact"]["endpoint"] = json!("ftp://gpu:8080");
        assert!(refusal(c.clone()).contains("artifact.endpoint"));
        c["artifact"]["endpoint"] = json!("https://elsewhere.example:8443/kserve");
        assert!(refusal(c.clone())
            .contains("model card field `artifact.endpoint`: elsewhere.example:8443 is not an inference server"));
        c["artifact"]["endpoint"] = json!("https://gpu.example:8443/kserve#");
        assert!(
            refusal(c.clone()).contains("model card field `artifact.endpoint`"),
            "a fragment would choose the path"
        );
        c["artifact"]["endpoint"] = json!("https://gpu.example:8443/kserve");
        assert!(parse_card(&c.to_string(), &servers()).is_ok());
        let mut c = card();
        c["artifact"]["model_name"] = json!("liver-seg");
        assert!(refusal(c).contains("belong to format `oip-v2`"));
    }

    #[test]
    fn output_channels_are_at_most_256_distinct_values() {
        let mut c = card();
        c["label_map"] =
            (1..=255).map(|v| (v.to_string(), json!(format!("label {v}")))).collect::<serde_json::Map<_, _>>().into();
        c["output_channels"] = json!((0..=255).collect::<Vec<u8>>());
        assert!(parse_card(&c.to_string(), &servers()).is_ok(), "every label value once");
        c["output_channels"] = json!((0..=256).map(|v| v % 256).collect::<Vec<u32>>());
        assert!(refusal(c.clone()).contains("model card field `output_channels`"), "257 channels");
        c["output_channels"] = json!([0, 1, 1]);
        assert!(refusal(c).contains("model card field `output_channels`"), "a repeated value");
    }

    #[test]
    fn lifecycle_allows_only_forward_moves_through_shadow() {
        use ModelState::*;
        assert!(!Registered.allowed_next().contains(&Production), "production only via shadow");
        assert_eq!(Shadow.allowed_next(), &[Production, Registered]);
        assert_eq!(Archived.allowed_next(), &[Shadow], "back to production only through shadow");
    }
}
