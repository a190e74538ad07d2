//! The model read model: one version as its page shows it (`GET /models/{id}/overview`), with
//! what the caller may see and do decided here, once: the lifecycle buttons and backfills for
//! those who may manage models, the evaluations for those who may read them. Reads only.

use super::{backfill, comparison, jobs, registry};
use crate::api::{ModelId, ModelOverview, ModelState};
use crate::server::charts;
use crate::server::error::AppError;
use crate::server::identity::User;
use crate::server::state::AppState;

pub(crate) async fn model_overview(state: &AppState, user: &User, id: &ModelId) -> Result<ModelOverview, AppError> {
    let mut detail = registry::model_detail(state, id).await?;
    let may_manage = registry::may_register(user).is_ok();
    // The lifecycle buttons are shown only to those who may press them.
    if !may_manage {
        detail.allowed_next.clear();
    }
    let (name, version_state) = (detail.summary.name.clone(), detail.summary.state);
    let timeline = registry::timeline(state, &name).await?;
    let (evaluation, backfill, own_evaluation) = match comparison::may_read(user) {
        true => (
            Some(comparison::paired_evaluation(state, user, &name).await?),
            backfill::latest(state, id).await?,
            match version_state {
                ModelState::Registered => Some(comparison::version_evaluation(state, user, id).await?),
                _ => None,
            },
        ),
        false => (None, None, None),
    };
    let rollback_to = (may_manage && version_state == ModelState::Production)
        .then(|| registry::previous_production(&timeline, id).map(|change| change.version.clone()))
        .flatten();
    Ok(ModelOverview {
        chart_svg: evaluation.as_ref().and_then(charts::paired_dice_svg),
        evaluation,
        jobs: jobs::list_jobs(state, user, jobs::JobFilter::Model(id)).await?,
        timeline,
        rollback_to,
        backfill,
        may_backfill: may_manage && matches!(version_state, ModelState::Shadow | ModelState::Registered),
        own_evaluation,
        detail,
    })
}
