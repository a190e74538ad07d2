//! The REST API's OpenAPI 3.1 document. Each handler carries its `#[utoipa::path]`, and the
//! resource modules register their routes through `utoipa_axum::routes!`, which mounts a
//! handler at the path its annotation gives: a REST route cannot be served undescribed. The
//! document is served at `/api/openapi.json`, with a documentation page at `/api/docs` whose
//! files are compiled into the binary.

use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::api::ErrorBody;
use crate::server::session_store::COOKIE_NAME;
use crate::server::state::AppState;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api/openapi.json";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "seglab",
        description = "Medical-image segmentation labelling with a model lifecycle. Every error answer \
            is `{\"error\": {\"code\", \"message\"}}`; its HTTP status follows from its code. Scripts \
            authenticate with an API token (`Authorization: Bearer …`), browsers with the session \
            cookie that `POST /session` sets."
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "cases", description = "Importing cases, their artifacts and mask versions"),
        (name = "labels", description = "Saving mask edits"),
        (name = "workflow", description = "Assignment, submission and review"),
        (name = "worklist", description = "Finding the next case"),
        (name = "readings", description = "Several blinded readers per case, agreement, adjudication"),
        (name = "datasets", description = "Dataset snapshots"),
        (name = "models", description = "The model registry and its lifecycle"),
        (name = "jobs", description = "The orchestrator's runs, jobs and backfills"),
        (name = "pacs", description = "DICOMweb: searching the PACS, importing, sending segmentations back"),
        (name = "accounts", description = "Logging in, users and API tokens"),
        (name = "operations", description = "Health probes and metrics"),
    )
)]
struct ApiDoc;

/// Splits the REST routes into the router that serves them and their document, completed
/// with what holds for every operation, and adds the routes that serve the document.
pub fn serve_documented(routes: OpenApiRouter<AppState>) -> axum::Router<AppState> {
    let (router, mut document) = OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(routes).split_for_parts();
    complete(&mut document);
    let docs_page = SwaggerUi::new("/api/docs")
        .url(DOCUMENT_PATH, document)
        // The page asks no outside validator about the document: nothing leaves the network.
        .config(Config::from(DOCUMENT_PATH).validator_url("none"));
    router.merge(docs_page)
}

/// What every operation shares: both authentication schemes (an operation open to anyone says
/// so with an empty requirement), and the error answers in the one error shape.
fn complete(document: &mut OpenApi) {
    let components = document.components.get_or_insert_with(Default::default);
    let bearer = Http::builder()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some("An API token an admin issued (`POST /users/{username}/tokens`)"))
        .build();
    components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            COOKIE_NAME,
            "The browser session `POST /session` starts",
        ))),
    );
    document.security = Some(vec![
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("session", Vec::<String>::new()),
    ]);
    let error = ResponseBuilder::new()
        .description("The request was refused or failed; `error.code` says why")
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
        .build();
    for item in document.paths.paths.values_mut() {
        for operation in
            [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
        {
            for range in ["4XX", "5XX"] {
                operation.responses.responses.entry(range.to_string()).or_insert_with(|| error.clone().into());
            }
        }
    }
}
