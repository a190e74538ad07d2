//! Browser sessions and API tokens: login, logout, cookie attributes, cross-site refusal,
//! 401 versus 403, the audit rows of logins, and what the readiness probe tells whom.

use crate::common::{TestApp, PASSWORD};
use reqwest::StatusCode;
use seglab::server::identity::Role;
use seglab::server::storage::{Connection, ObjectStore};
use serde_json::{json, Value};
use sqlx::Row;

async fn actions(app: &TestApp) -> Vec<String> {
    sqlx::query("SELECT action FROM audit_log ORDER BY seq")
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("action"))
        .collect()
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_and_logout_ends_the_session() {
    let app = TestApp::spawn().await;
    app.user("lab", &[Role::Labeler]).await;

    let wrong = app.log_in(json!({ "username": "lab", "password": "nope-nope" })).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none());
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["message"], "wrong username or password");
    let unknown = app.log_in(json!({ "username": "ghost", "password": PASSWORD })).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let malformed = app.log_in(json!({ "user": "lab" })).await;
    assert_eq!(malformed.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let response = app.log_in(json!({ "username": "lab", "password": PASSWORD })).await;
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(set_cookie.contains(attribute), "{set_cookie} lacks {attribute}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let cases = app.client.get(app.url("/cases")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(cases.status(), StatusCode::OK);

    let logout = app
        .client
        .delete(app.url("/session"))
        .header("cookie", &cookie)
        .header("origin", &app.base)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let after = app.client.get(app.url("/cases")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(actions(&app).await, ["user_add", "login_failed", "login_failed", "login"]);
    app.stop().await;
}

#[tokio::test]
async fn cookie_requests_that_change_state_must_come_from_this_site() {
    let app = TestApp::spawn().await;
    app.user("lab", &[Role::Labeler]).await;
    app.user("mle", &[Role::MlEngineer]).await;
    let cookie = app.login_cookie("lab", PASSWORD).await;
    let save = |origin: Option<&str>, cookie: &str| {
        let mut request = app
            .client
            .post(app.url("/labels"))
            .header("cookie", cookie)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&json!({ "case_id": "none", "base_mask_ref": "x", "edits": "AQA=" }));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    let no_origin = save(None, &cookie).await.unwrap();
    assert_eq!(no_origin.status(), StatusCode::FORBIDDEN);
    assert!(no_origin.text().await.unwrap().contains("cross-site request refused"));
    let foreign = save(Some("https://evil.example"), &cookie).await.unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    // From this site the request goes through to the service (here: the case is unknown).
    let same_site = save(Some(&app.base.clone()), &cookie).await.unwrap();
    assert_eq!(same_site.status(), StatusCode::NOT_FOUND);

    // Logged in but without the role: 403, not 401.
    let engineer = app.login_cookie("mle", PASSWORD).await;
    let forbidden = save(Some(&app.base.clone()), &engineer).await.unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    assert!(forbidden.text().await.unwrap().contains("needs the role labeler"));
    app.stop().await;
}

#[tokio::test]
async fn anonymous_logins_cannot_write_unbounded_data_into_the_audit_log() {
    let app = TestApp::spawn().await;
    app.user("lab", &[Role::Labeler]).await;
    let audit_rows = || app.count("SELECT COUNT(*) FROM audit_log");
    let before = audit_rows().await;

    // A body far larger than any login is refused before it is read as JSON.
    let huge = "x".repeat(64 * 1024);
    let response = app.log_in(json!({ "username": huge, "password": "whatever1" })).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Within the body limit, a name or password longer than any valid one: 400, no lookup, no row.
    for (username, password) in [("y".repeat(65), PASSWORD.to_string()), ("lab".to_string(), "p".repeat(1025))] {
        let response = app.log_in(json!({ "username": username, "password": password })).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_request");
    }
    assert_eq!(audit_rows().await, before, "refused logins leave no audit row");

    // A failed login's row names the attempt only when it could be a user's name.
    for username in ["ghost", "robert'); DROP TABLE users;--"] {
        let response = app.log_in(json!({ "username": username, "password": PASSWORD })).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let names: Vec<String> = sqlx::query("SELECT details FROM audit_log WHERE action = 'login_failed' ORDER BY seq")
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.get::<String, _>("details")).unwrap()["username"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["ghost", "(not a valid username)"]);
    app.stop().await;
}

#[tokio::test]
async fn logins_and_bearer_requests_are_checked_for_their_site_too() {
    let app = TestApp::spawn().await;
    let token = app.user("lab", &[Role::Labeler]).await;
    let login = |origin: Option<&str>| {
        let mut request =
            app.client.post(app.url("/session")).json(&json!({ "username": "lab", "password": PASSWORD }));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    // A foreign page posting the attacker's credentials (login CSRF): refused, nothing audited.
    let audit_rows = app.count("SELECT COUNT(*) FROM audit_log").await;
    let foreign = login(Some("https://evil.example")).await.unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert!(foreign.headers().get("set-cookie").is_none());
    let server_fn = app
        .client
        .post(app.url(<seglab::pages::login::LogIn as leptos::server_fn::ServerFn>::PATH))
        .header("origin", "https://evil.example")
        .form(&[("username", "lab"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(server_fn.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log").await, audit_rows);
    // This site's login page, and scripts (no Origin), log in.
    assert_eq!(login(Some(&app.base.clone())).await.unwrap().status(), StatusCode::OK);
    assert_eq!(login(None).await.unwrap().status(), StatusCode::OK);

    // A session cookie with a made-up bearer header is still a cookie request: refused
    // cross-site. A valid bearer token carries no ambient credential and passes.
    let cookie = app.login_cookie("lab", PASSWORD).await;
    let save = |authorization: &str| {
        app.client
            .post(app.url("/labels"))
            .header("cookie", &cookie)
            .header("authorization", authorization)
            .header("origin", "https://evil.example")
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&json!({ "case_id": "none", "base_mask_ref": "x", "edits": "AQA=" }))
            .send()
    };
    assert_eq!(save("Bearer made-up").await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(save(&format!("Bearer {token}")).await.unwrap().status(), StatusCode::NOT_FOUND, "the unknown case");
    app.stop().await;
}

#[tokio::test]
async fn access_can_be_taken_back_at_once_by_admins_and_from_the_command_line() {
    let app = TestApp::spawn().await;
    let admin = app.user("root", &[Role::Admin]).await;
    let lab = app.user("lab", &[Role::Labeler]).await;
    let cookie = app.login_cookie("lab", PASSWORD).await;
    let status = |token: String| {
        let request = app.client.get(app.url("/cases")).bearer_auth(token);
        async move { request.send().await.unwrap().status() }
    };
    let session_status =
        || async { app.client.get(app.url("/cases")).header("cookie", &cookie).send().await.unwrap().status() };
    let change = |token: &str, username: &str, body: Value| {
        app.client.put(app.url(&format!("/users/{username}"))).bearer_auth(token).json(&body).send()
    };
    assert_eq!(status(lab.clone()).await, StatusCode::OK);

    // Only admins manage accounts, and a refusal comes before the body is looked at.
    let refused = app.client.put(app.url("/users/lab")).bearer_auth(&lab).body("not json").send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // Disabled: the token, the open session and new logins stop working at once.
    let disabled = change(&admin, "lab", json!({ "disabled": true })).await.unwrap();
    assert_eq!(disabled.status(), StatusCode::OK);
    assert_eq!(
        disabled.json::<Value>().await.unwrap(),
        json!({ "username": "lab", "roles": ["labeler"], "disabled": true })
    );
    assert_eq!(status(lab.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(session_status().await, StatusCode::UNAUTHORIZED);
    let login = app.log_in(json!({ "username": "lab", "password": PASSWORD })).await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
    // Enabled again from the command line, and given a role.
    assert!(app.run_cli(&["user", "enable", "lab"]).status.success());
    let granted = app.run_cli(&["user", "role", "add", "lab", "ml_engineer"]);
    assert!(String::from_utf8_lossy(&granted.stdout).contains("user lab is enabled, with roles labeler,ml_engineer"));
    assert_eq!(status(lab.clone()).await, StatusCode::OK);
    let roleless = change(&admin, "lab", json!({ "remove_roles": ["labeler", "ml_engineer"] })).await.unwrap();
    assert_eq!(roleless.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(change(&admin, "nobody", json!({ "disabled": true })).await.unwrap().status(), StatusCode::NOT_FOUND);

    // Tokens: issued by an admin, expired on time, revoked by their owner.
    let issue = |days: u32| {
        app.client
            .post(app.url("/users/lab/tokens"))
            .bearer_auth(&admin)
            .json(&json!({ "expires_in_days": days }))
            .send()
    };
    let issued = issue(30).await.unwrap();
    assert_eq!(issued.status(), StatusCode::CREATED);
    let second = issued.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    assert_eq!(status(second.clone()).await, StatusCode::OK);
    let expired = issue(0).await.unwrap().json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    assert_eq!(status(expired).await, StatusCode::UNAUTHORIZED, "a token past its expiry");
    let revoke = |by: &str, token: &str| {
        app.client.post(app.url("/tokens/revoke")).bearer_auth(by).json(&json!({ "token": token })).send()
    };
    assert_eq!(revoke(&lab, &admin).await.unwrap().status(), StatusCode::NOT_FOUND, "not theirs to revoke");
    assert_eq!(revoke(&lab, &second).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(status(second.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(lab.clone()).await, StatusCode::OK, "the other token still works");
    let revoked_by_cli = app.run_cli(&["token", "revoke", &lab]);
    assert!(revoked_by_cli.status.success(), "{}", String::from_utf8_lossy(&revoked_by_cli.stderr));
    assert_eq!(status(lab.clone()).await, StatusCode::UNAUTHORIZED);

    let actions = actions(&app).await;
    for action in ["user_change", "token_issue", "token_revoke"] {
        assert!(actions.iter().any(|a| a == action), "{action} not audited: {actions:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn repeated_failed_logins_are_slowed_to_a_stop_with_429_and_retry_after() {
    let app = TestApp::spawn_configured(|config| config.login_failures_per_username = 3, |_| {}).await;
    app.user("lab", &[Role::Labeler]).await;
    app.user("mle", &[Role::MlEngineer]).await;
    let login = |username: &str, password: &str| {
        app.client.post(app.url("/session")).json(&json!({ "username": username, "password": password })).send()
    };
    for _ in 0..3 {
        assert_eq!(login("lab", "guess-guess").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let audit_rows = app.count("SELECT COUNT(*) FROM audit_log").await;
    for password in ["guess-guess", PASSWORD] {
        let refused = login("lab", password).await.unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=900).contains(&wait), "Retry-After {wait}");
        assert_eq!(refused.json::<Value>().await.unwrap()["error"]["code"], "too_many_requests");
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log").await,
        audit_rows,
        "refused attempts cost no Argon2 and no row"
    );
    assert_eq!(login("mle", PASSWORD).await.unwrap().status(), StatusCode::OK, "other users are not locked out");
    app.stop().await;
}

#[tokio::test]
async fn a_failed_login_takes_as_long_for_an_unknown_name_as_for_a_known_one() {
    // Relative timing: without the decoy hash an unknown name was refused about ten times
    // sooner (no Argon2 run), which told an attacker the name does not exist.
    let app = TestApp::spawn().await;
    app.user("lab", &[Role::Labeler]).await;
    let median_refusal = |username: &'static str| {
        let app = &app;
        async move {
            let mut times = Vec::new();
            for _ in 0..7 {
                let started = std::time::Instant::now();
                let response = app.log_in(json!({ "username": username, "password": "wrong-password" })).await;
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
                times.push(started.elapsed());
            }
            times.sort();
            times[3]
        }
    };
    let known = median_refusal("lab").await;
    let unknown = median_refusal("ghost").await;
    assert!(unknown * 3 > known, "unknown name refused in {unknown:?}, known name in {known:?}");
    app.stop().await;
}

/// A NUL in a username is a text PostgreSQL refuses (it was a 500 there): a 400 before any
/// lookup, neither counted as a failed login nor audited, through `POST /session` and the login
/// page's server function alike.
#[tokio::test]
async fn a_control_character_in_a_login_is_a_bad_request_not_a_failed_login() {
    let app = TestApp::spawn_configured(|config| config.login_failures_per_username = 3, |_| {}).await;
    app.user("lab", &[Role::Labeler]).await;
    let audit_rows = app.count("SELECT COUNT(*) FROM audit_log").await;
    for (username, password) in
        [("lab\0", PASSWORD); 5].into_iter().chain([("lab", "correct\u{1b}horse"), ("\u{7f}", PASSWORD)])
    {
        let response = app.log_in(json!({ "username": username, "password": password })).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{username:?}");
        assert!(response.headers().get("set-cookie").is_none());
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains("holds the control character"), "{body}");
    }
    let message = |body: &Value| body["error"]["message"].as_str().unwrap().to_string();
    let response = app.log_in(json!({ "username": "lab\0", "password": PASSWORD })).await;
    assert!(message(&response.json().await.unwrap())
        .starts_with("JSON body field `username` holds the control character U+0000"));

    let server_fn = |username: &'static str| {
        app.client
            .post(app.url(<seglab::pages::login::LogIn as leptos::server_fn::ServerFn>::PATH))
            .header("origin", &app.base)
            .form(&[("username", username), ("password", PASSWORD)])
            .send()
    };
    for _ in 0..5 {
        let refused = server_fn("lab\0").await.unwrap();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert!(refused.headers().get("set-cookie").is_none());
        let error: seglab::api::ApiError = refused.json().await.unwrap();
        assert!(
            error.message.starts_with("server function argument `username` holds the control character U+0000"),
            "{}",
            error.message
        );
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log").await, audit_rows, "no login_failed rows");
    // Not failures: the user's limit of 3 is untouched, and both ways in still work.
    let login = app.log_in(json!({ "username": "lab", "password": PASSWORD })).await;
    assert_eq!(login.status(), StatusCode::OK);
    let page_login = server_fn("lab").await.unwrap();
    assert_eq!(page_login.status(), StatusCode::OK);
    assert!(page_login.headers().get("set-cookie").is_some());
    app.stop().await;
}

#[tokio::test]
async fn readiness_tells_why_a_dependency_failed_to_admins_only() {
    let app = TestApp::spawn().await;
    let admin = app.user("root", &[Role::Admin]).await;
    let engineer = app.user("mle", &[Role::MlEngineer]).await;
    let healthy = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(healthy.status(), StatusCode::OK);
    assert_eq!(healthy.json::<Value>().await.unwrap(), json!({ "database": "ok", "object_storage": "ok" }));

    // The same app on a store at a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut state = app.state.clone();
    state.store = ObjectStore::new(
        &app.state.config.s3,
        Connection {
            endpoint: Some(format!("http://127.0.0.1:{closed}")),
            public_endpoint: None,
            access_key_id: "nobody".into(),
            secret_access_key: "nothing".into(),
        },
    )
    .unwrap();
    let base = app.serve_state(state).await;
    let ready = |authorization: Option<(&'static str, String)>| {
        let mut request = app.client.get(format!("{base}/readyz"));
        if let Some((name, value)) = authorization {
            request = request.header(name, value);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            response.json::<Value>().await.unwrap()
        }
    };

    // Anyone else, an unknown token and a user who is not an admin: which, not why.
    let bare = json!({ "database": "ok", "object_storage": "unavailable" });
    assert_eq!(ready(None).await, bare);
    assert_eq!(ready(Some(("authorization", "Bearer not-a-token".into()))).await, bare);
    assert_eq!(ready(Some(("authorization", format!("Bearer {engineer}")))).await, bare);

    // An admin, by token or by browser session, reads the reason.
    let cookie = app.login_cookie("root", PASSWORD).await;
    for authorization in [("authorization", format!("Bearer {admin}")), ("cookie", cookie)] {
        let body = ready(Some(authorization)).await;
        assert_eq!(body["database"], "ok");
        let reason = body["object_storage"].as_str().unwrap();
        assert!(reason.starts_with("object storage is unavailable"), "{body}");
        assert!(reason.len() > "object storage is unavailable".len(), "{body}");
    }
    app.stop().await;
}
