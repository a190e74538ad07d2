//! The API contract: the OpenAPI 3.1 document at `/api/openapi.json` describes every REST
//! route the router serves, with the methods it serves, and nothing it does not; it is valid
//! (`openapi-spec-validator`); the documentation page comes from the binary; and schemathesis,
//! generating requests from the document, finds no 5xx and no answer the document does not
//! allow, for a labeler and for an admin.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use seglab::server::identity::Role;

use crate::common::TestApp;
use crate::fixtures::CaseBuilder;

/// The app's API document.
pub async fn document(app: &TestApp) -> Value {
    let response = app.client.get(app.url("/api/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// Every operation of the document, as `METHOD /path`.
pub async fn documented_routes(app: &TestApp) -> BTreeSet<String> {
    let document = document(app).await;
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS.into_iter().filter(|m| item.get(*m).is_some()) {
            routes.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    routes
}

#[tokio::test]
async fn the_document_describes_every_route_the_router_serves() {
    // Statically: REST routes are mounted only through `utoipa_axum::routes!`, which takes the
    // path from the handler's description. The one `.route(` left is the metrics address's own
    // router, which is not the API.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server/http");
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        let plain_routes = source.matches(".route(").count();
        let allowed = usize::from(path.ends_with("metrics.rs"));
        assert_eq!(plain_routes, allowed, "{}: a route mounted without `routes!` has no description", path.display());
    }

    // At run time: each documented path answers a method it does not serve with 405 and the
    // methods it does serve, which are the documented ones.
    let app = TestApp::spawn().await;
    let document = document(&app).await;
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 50, "{} paths", paths.len());
    for (path, item) in paths {
        let concrete = path.replace("{username}", "someone").replace("{file}", "x.nii.gz").replace("{id}", "an-id");
        let response = app.client.request(Method::TRACE, app.url(&concrete)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "TRACE {path}");
        let allow = response.headers()["allow"].to_str().unwrap().to_lowercase();
        let served: BTreeSet<&str> = allow.split(',').map(str::trim).filter(|m| *m != "head").collect();
        let documented: BTreeSet<&str> = METHODS.into_iter().filter(|m| item.get(*m).is_some()).collect();
        assert_eq!(served, documented, "{path}: served methods and documented ones differ");
    }
    app.stop().await;
}

#[tokio::test]
async fn every_operation_has_an_id_a_tag_the_error_shape_and_its_security() {
    let app = TestApp::spawn().await;
    let document = document(&app).await;
    app.stop().await;
    assert_eq!(document["openapi"], "3.1.0");
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(
        (schemes["session"]["in"].as_str(), schemes["session"]["name"].as_str()),
        (Some("cookie"), Some("seglab_session"))
    );
    let mut ids = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS.into_iter().filter(|m| item.get(*m).is_some()) {
            let operation = &item[method];
            let id = operation["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
            assert!(operation["tags"].as_array().is_some_and(|tags| !tags.is_empty()), "{method} {path} has no tag");
            for range in ["4XX", "5XX"] {
                let error = &operation["responses"][range]["content"]["application/json"]["schema"]["$ref"];
                // (The sign-on callback answers a person with a page, and a malformed request
                // with the JSON error too.)
                assert_eq!(error, "#/components/schemas/ErrorBody", "{method} {path} {range}");
            }
        }
    }
    // Open to anyone: the probes and logging in (and single sign-on's pages); everything else
    // needs a token or a session.
    let open: BTreeSet<String> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .into_iter()
                .filter(|m| {
                    item.get(*m)
                        .and_then(|op| op["security"].as_array())
                        .is_some_and(|s| s.iter().any(|r| r == &serde_json::json!({})))
                })
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    let expected: BTreeSet<String> = [
        "GET /healthz",
        "GET /readyz",
        "POST /session",
        "DELETE /session",
        "GET /auth/oidc/login",
        "GET /auth/oidc/callback",
    ]
    .map(String::from)
    .into();
    assert_eq!(open, expected);
    assert_eq!(document["security"].as_array().unwrap().len(), 2, "bearer or session on every other operation");
    let save = &document["paths"]["/labels"]["post"];
    let key = save["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "Idempotency-Key").unwrap();
    assert_eq!((key["in"].as_str(), key["required"].as_bool()), (Some("header"), Some(true)));
}

#[tokio::test]
async fn openapi_spec_validator_accepts_the_document() {
    let app = TestApp::spawn().await;
    let document = document(&app).await;
    app.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&document).unwrap()).unwrap();
    let validated = std::process::Command::new(python_tool("openapi-spec-validator")).arg(&file).output().unwrap();
    assert!(
        validated.status.success(),
        "{}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );
}

#[tokio::test]
async fn the_documentation_page_is_served_from_the_binary() {
    let app = TestApp::spawn().await;
    let page = app.client.get(app.url("/api/docs/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Its scripts and styles are the binary's own files, not a CDN's.
    for asset in ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-initializer.js"] {
        assert!(html.contains(asset) || asset == "swagger-initializer.js", "{asset} not linked");
        let response = app.client.get(app.url(&format!("/api/docs/{asset}"))).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
    }
    let initializer =
        app.client.get(app.url("/api/docs/swagger-initializer.js")).send().await.unwrap().text().await.unwrap();
    assert!(initializer.contains("/api/openapi.json"), "{initializer}");
    assert!(!html.contains("https://") && !initializer.contains("https://"), "the page fetches from elsewhere");
    app.stop().await;
}

/// schemathesis over every operation with `token`; its report when it finds a problem.
/// `all_roles`: the caller may use every operation, so one answering only 401/403 is a failure.
fn schemathesis(base: &str, token: &str, all_roles: bool) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    // Every check, but `positive_data_acceptance`: data the document allows is often refused
    // on its meaning (a file that is not NIfTI, a card naming an unknown dataset: 422), as the
    // document's 4XX answers say. Fixed seed, so a failure reproduces.
    let config = format!(
        r#"base-url = "{base}"
workers = 1
seed = 20261205
request-timeout = 60.0
headers = {{ Authorization = "Bearer {token}" }}

[generation]
max-examples = 8
database = "none"

[warnings]
fail-on = {fail_on}

[checks.positive_data_acceptance]
enabled = false

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "409", "413", "415", "422", "429"]
"#,
        fail_on = if all_roles { r#"["missing_auth"]"# } else { "[]" },
    );
    std::fs::write(dir.path().join("schemathesis.toml"), config).unwrap();
    let run = std::process::Command::new(python_tool("st"))
        .current_dir(dir.path())
        .args(["--config-file", "schemathesis.toml", "--no-color", "run", &format!("{base}/api/openapi.json")])
        .output()
        .unwrap();
    if run.status.success() {
        return Ok(());
    }
    Err(format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr)))
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let app = TestApp::spawn().await;
    let labeler = app.user("st-labeler", &[Role::Labeler]).await;
    let admin = app.user("st-admin", &Role::ALL).await;
    CaseBuilder::new("fuzzed").import(&app).await;
    let base = app.base.clone();
    let (as_labeler, as_admin) =
        tokio::task::spawn_blocking(move || (schemathesis(&base, &labeler, false), schemathesis(&base, &admin, true)))
            .await
            .unwrap();
    as_labeler.unwrap_or_else(|report| panic!("as a labeler:\n{report}"));
    as_admin.unwrap_or_else(|report| panic!("as an admin:\n{report}"));
    app.stop().await;
}

/// What schemathesis found, kept fixed: paging outside the documented bounds (also where a
/// listing ignores it), a save without its `Idempotency-Key` (refused before the case or the
/// body is looked at), a struct body sent as an array of its fields, and a form route sent no
/// form (a JSON error, not axum's plain text).
#[tokio::test]
async fn schemathesis_findings_stay_fixed() {
    let app = TestApp::spawn().await;
    let admin = app.user("finder", &Role::ALL).await;
    let case_id = CaseBuilder::new("found").import(&app).await;
    for path in ["/cases?page=1000001", "/cases?page=2147483648", "/worklist?page=1000001", "/agreement?per_page=0"] {
        let answer = app.client.get(app.url(path)).bearer_auth(&admin).send().await.unwrap();
        assert!(answer.status().is_client_error(), "{path}: {}", answer.status());
        let body: Value = answer.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains("1000000"), "{path}: {body}");
    }
    let assignment = format!("/cases/{case_id}/assignment");
    let answer = app.send_json(Method::PUT, &admin, &assignment, &serde_json::json!([null, null])).await;
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["message"], "the JSON body must be an object");
    let unkeyed = [
        ("/labels".to_string(), serde_json::json!({"case_id": "", "base_mask_ref": "", "edits": ""})),
        (format!("/cases/{case_id}/consensus"), serde_json::json!({"method": "staple"})),
    ];
    for (path, body) in unkeyed {
        let answer = app.client.post(app.url(&path)).bearer_auth(&admin).json(&body).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{path}");
        let body: Value = answer.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains("Idempotency-Key"), "{path}: {body}");
    }
    for path in [format!("/cases/{case_id}/segmentation"), "/cases".to_string(), "/models".to_string()] {
        let answer = app
            .client
            .post(app.url(&path))
            .bearer_auth(&admin)
            .header("Idempotency-Key", "not-a-form")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{path}");
        let body: Value = answer.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains("multipart/form-data"), "{path}: {body}");
    }
    app.stop().await;
}

/// A tool `.ci/setup test` installed in the API checkers' venv.
fn python_tool(name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/apienv/bin").join(name);
    assert!(path.exists(), "{} is missing: run `.ci/setup test`", path.display());
    path
}
