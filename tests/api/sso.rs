//! Single sign-on through OpenID Connect. A provider played by the test (discovery, keys, a
//! token endpoint answering the ID token each case needs, signed with RSA keys made by
//! `openssl`) shows the relying party's checks: a wrong `state`, a replayed `nonce`, an expired
//! token, another audience, `alg: none`, a tampered signature and an unknown key are each
//! refused and log nobody in; keys rotated at the provider are fetched again; PKCE is sent.
//! Users are made on first login with the roles their groups map to, updated on each login,
//! refused without a mapped role or when disabled. Passwords can be turned off while API
//! tokens keep working. The real provider (`oidc-provider`) is in `sso_provider.rs` and
//! Playwright.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey};
use openidconnect::{JsonWebKeyId, PrivateSigningKey};
use reqwest::StatusCode;
use seglab::server::identity::Role;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::TestApp;

const CLIENT_ID: &str = "seglab-tests";

/// An RSA key made by `openssl`, PKCS#1 PEM.
fn rsa_key(kid: &str) -> CoreRsaPrivateSigningKey {
    let output = std::process::Command::new("openssl").args(["genrsa", "-traditional", "2048"]).output().unwrap();
    assert!(output.status.success(), "openssl genrsa: {}", String::from_utf8_lossy(&output.stderr));
    CoreRsaPrivateSigningKey::from_pem(&String::from_utf8(output.stdout).unwrap(), Some(JsonWebKeyId::new(kid.into())))
        .unwrap()
}

/// What the provider holds: its published keys, the ID token its token endpoint answers next,
/// and the PKCE verifiers it was sent.
#[derive(Default)]
struct ProviderState {
    published: Vec<Value>,
    next_id_token: Option<String>,
    verifiers: Vec<String>,
    jwks_fetches: usize,
}

struct FakeProvider {
    url: String,
    state: Arc<Mutex<ProviderState>>,
}

impl FakeProvider {
    async fn start(keys: &[&CoreRsaPrivateSigningKey]) -> FakeProvider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(ProviderState::default()));
        state.lock().unwrap().published = keys.iter().map(|key| public_jwk(key)).collect();
        let discovery = json!({
            "issuer": url,
            "authorization_endpoint": format!("{url}/authorize"),
            "token_endpoint": format!("{url}/token"),
            "jwks_uri": format!("{url}/jwks"),
            "end_session_endpoint": format!("{url}/logout"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(move || async move { Json(discovery) }))
            .route(
                "/jwks",
                get(|State(state): State<Arc<Mutex<ProviderState>>>| async move {
                    let mut state = state.lock().unwrap();
                    state.jwks_fetches += 1;
                    Json(json!({ "keys": state.published }))
                }),
            )
            .route(
                "/token",
                post(|State(state): State<Arc<Mutex<ProviderState>>>, Form(form): Form<BTreeMap<String, String>>| async move {
                    let mut state = state.lock().unwrap();
                    state.verifiers.extend(form.get("code_verifier").cloned());
                    let id_token = state.next_id_token.take().unwrap_or_default();
                    Json(json!({ "access_token": "opaque", "token_type": "Bearer", "expires_in": 300, "id_token": id_token }))
                }),
            )
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeProvider { url, state }
    }

    fn publish(&self, keys: &[&CoreRsaPrivateSigningKey]) {
        self.state.lock().unwrap().published = keys.iter().map(|key| public_jwk(key)).collect();
    }

    fn answer_next(&self, id_token: String) {
        self.state.lock().unwrap().next_id_token = Some(id_token);
    }
}

fn public_jwk(key: &CoreRsaPrivateSigningKey) -> Value {
    serde_json::to_value(key.as_verification_key()).unwrap()
}

/// The claims of a good ID token for `user` in `groups`, for the attempt with `nonce`.
fn claims(provider: &FakeProvider, user: &str, groups: &[&str], nonce: &str) -> Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    json!({
        "iss": provider.url,
        "sub": format!("id-{user}"),
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 300,
        "nonce": nonce,
        "preferred_username": user,
        "groups": groups,
    })
}

/// A JWT of `claims` signed RS256 by `key` (with `header` changes, if any).
fn signed(key: &CoreRsaPrivateSigningKey, kid: &str, claims: &Value) -> String {
    let header = json!({ "alg": "RS256", "typ": "JWT", "kid": kid });
    let signing_input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = key.sign(&CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, signing_input.as_bytes()).unwrap();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// An app whose provider is `provider`, mapping `radiology` to labeler and `ml` to
/// ml_engineer, with passwords on or off.
async fn app_with(provider: &FakeProvider, passwords: bool) -> TestApp {
    let issuer = provider.url.clone();
    TestApp::spawn_configured(
        move |config| {
            config.sso.oidc_issuer = Some(issuer);
            config.sso.oidc_client_id = Some(CLIENT_ID.into());
            config.sso.oidc_client_secret = Some("client-secret".into());
            config.sso.public_url = Some("http://seglab.test".into());
            config.sso.oidc_role_map = vec!["radiology=labeler".into(), "ml=ml_engineer".into()];
            config.sso.password_login = passwords;
        },
        |_| {},
    )
    .await
}

/// A browser without redirects followed: each step is looked at.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A started attempt: the state cookie, and the `state`, `nonce` and PKCE challenge the
/// provider was sent.
struct Started {
    cookie: String,
    state: String,
    nonce: String,
    challenge: String,
}

async fn start(app: &TestApp, provider: &FakeProvider) -> Started {
    let response = browser().get(app.url("/auth/oidc/login")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = openidconnect::url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(&format!("{}/authorize", provider.url)), "{location}");
    let query: BTreeMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], CLIENT_ID);
    assert_eq!(query["redirect_uri"], "http://seglab.test/auth/oidc/callback");
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(query["scope"].split(' ').any(|s| s == "openid"), "{}", query["scope"]);
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    Started {
        cookie: set_cookie.split(';').next().unwrap().to_string(),
        state: query["state"].clone(),
        nonce: query["nonce"].clone(),
        challenge: query["code_challenge"].clone(),
    }
}

/// The provider's redirect back: the callback's status, and the session cookie it set.
async fn callback(app: &TestApp, cookie: &str, state: &str) -> (StatusCode, Option<String>, String) {
    let response = browser()
        .get(app.url(&format!("/auth/oidc/callback?code=the-code&state={state}")))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let session = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("seglab_session="))
        .map(|c| c.split(';').next().unwrap().to_string());
    (status, session, response.text().await.unwrap())
}

/// Whether `cookie` is a session someone is logged in on.
async fn logged_in(app: &TestApp, cookie: &str) -> bool {
    let response = app.client.get(app.url("/worklist")).header("cookie", cookie).send().await.unwrap();
    response.status() == StatusCode::OK
}

async fn roles_of(app: &TestApp, username: &str) -> String {
    sqlx::query_scalar("SELECT roles FROM users WHERE username = $1")
        .bind(username)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_sign_on_makes_the_user_with_mapped_roles_and_updates_them_each_time() {
    let key = rsa_key("k1");
    let provider = FakeProvider::start(&[&key]).await;
    let app = app_with(&provider, true).await;

    let attempt = start(&app, &provider).await;
    provider.answer_next(signed(&key, "k1", &claims(&provider, "alice", &["radiology", "other"], &attempt.nonce)));
    let (status, session, page) = callback(&app, &attempt.cookie, &attempt.state).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Signed in as alice"), "{page}");
    assert!(logged_in(&app, &session.unwrap()).await);
    assert_eq!(roles_of(&app, "alice").await, "labeler");
    // PKCE: the token request carried the verifier of the challenge sent with the user.
    let verifier = provider.state.lock().unwrap().verifiers.pop().unwrap();
    assert_eq!(URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())), attempt.challenge);

    // The next login brings another group: the roles follow.
    let attempt = start(&app, &provider).await;
    provider.answer_next(signed(&key, "k1", &claims(&provider, "alice", &["radiology", "ml"], &attempt.nonce)));
    let (status, _, page) = callback(&app, &attempt.cookie, &attempt.state).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(roles_of(&app, "alice").await, "labeler,ml_engineer");
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE username = 'alice'").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'login'").await, 2);

    // Every group mapping a role gone: refused, and the roles stay as they were.
    let attempt = start(&app, &provider).await;
    provider.answer_next(signed(&key, "k1", &claims(&provider, "alice", &["other"], &attempt.nonce)));
    let (status, session, page) = callback(&app, &attempt.cookie, &attempt.state).await;
    assert_eq!((status, session), (StatusCode::FORBIDDEN, None), "{page}");
    assert!(page.contains("no seglab role"), "{page}");

    // Disabled by an admin: refused however the provider vouches.
    let admin = app.user("root", &[Role::Admin]).await;
    let disabled = app
        .client
        .put(app.url("/users/alice"))
        .bearer_auth(&admin)
        .json(&json!({ "disabled": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), StatusCode::OK);
    let attempt = start(&app, &provider).await;
    provider.answer_next(signed(&key, "k1", &claims(&provider, "alice", &["radiology"], &attempt.nonce)));
    let (status, session, page) = callback(&app, &attempt.cookie, &attempt.state).await;
    assert_eq!((status, session), (StatusCode::FORBIDDEN, None), "{page}");
    assert!(page.contains("disabled"), "{page}");

    // A local account of the provider's username is not taken over.
    app.user("bob", &[Role::Admin]).await;
    let attempt = start(&app, &provider).await;
    provider.answer_next(signed(&key, "k1", &claims(&provider, "bob", &["radiology"], &attempt.nonce)));
    let (status, session, page) = callback(&app, &attempt.cookie, &attempt.state).await;
    assert_eq!((status, session), (StatusCode::CONFLICT, None), "{page}");
    assert_eq!(roles_of(&app, "bob").await, "admin");
    app.stop().await;
}

#[tokio::test]
async fn answers_that_cannot_be_trusted_are_refused_and_log_nobody_in() {
    let key = rsa_key("k1");
    let stranger = rsa_key("k-unknown");
    let provider = FakeProvider::start(&[&key]).await;
    let app = app_with(&provider, true).await;
    let users_before = app.count("SELECT COUNT(*) FROM users").await;

    // Each forgery of a good token: a claim changed, the header, the signature, the key.
    type Forge<'k> = Box<dyn Fn(Value) -> String + 'k>;
    let cases: Vec<(&str, Forge)> = vec![
        (
            "expired",
            Box::new(|mut c| {
                c["exp"] = json!(c["iat"].as_u64().unwrap() - 600);
                c["iat"] = json!(c["iat"].as_u64().unwrap() - 900);
                signed(&key, "k1", &c)
            }),
        ),
        (
            "another audience",
            Box::new(|mut c| {
                c["aud"] = json!("another-client");
                signed(&key, "k1", &c)
            }),
        ),
        (
            "another issuer",
            Box::new(|mut c| {
                c["iss"] = json!("http://elsewhere.test");
                signed(&key, "k1", &c)
            }),
        ),
        (
            "alg none",
            Box::new(|c| {
                let header = URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "typ": "JWT" }).to_string());
                format!("{header}.{}.", URL_SAFE_NO_PAD.encode(c.to_string()))
            }),
        ),
        (
            "tampered",
            Box::new(|mut c| {
                let token = signed(&key, "k1", &c);
                let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
                c["groups"] = json!(["radiology", "ml"]);
                parts[1] = URL_SAFE_NO_PAD.encode(c.to_string());
                parts.join(".")
            }),
        ),
        ("unknown key", Box::new(|c| signed(&stranger, "k-unknown", &c))),
    ];
    for (name, forge) in &cases {
        let attempt = start(&app, &provider).await;
        provider.answer_next(forge(claims(&provider, "mallory", &["radiology"], &attempt.nonce)));
        let (status, session, page) = callback(&app, &attempt.cookie, &attempt.state).await;
        assert_eq!((status, session), (StatusCode::UNAUTHORIZED, None), "{name}: {page}");
    }

    // A replayed nonce: a token made for an earlier attempt, brought to a new one.
    let earlier = start(&app, &provider).await;
    let attempt = start(&app, &provider).await;
    provider.answer_next(signed(&key, "k1", &claims(&provider, "mallory", &["radiology"], &earlier.nonce)));
    let (status, session, page) = callback(&app, &attempt.cookie, &attempt.state).await;
    assert_eq!((status, session), (StatusCode::UNAUTHORIZED, None), "replayed nonce: {page}");

    // A wrong state: the answer to another browser's attempt, or none at all.
    let victim = start(&app, &provider).await;
    let attacker = start(&app, &provider).await;
    let (status, session, page) = callback(&app, &victim.cookie, &attacker.state).await;
    assert_eq!((status, session), (StatusCode::UNAUTHORIZED, None), "wrong state: {page}");
    let (status, session, _) = callback(&app, "", &attacker.state).await;
    assert_eq!((status, session), (StatusCode::UNAUTHORIZED, None), "no state cookie");

    // An answer used once is not used again.
    let attempt = start(&app, &provider).await;
    provider.answer_next(signed(&key, "k1", &claims(&provider, "mallory", &["radiology"], &attempt.nonce)));
    assert_eq!(callback(&app, &attempt.cookie, &attempt.state).await.0, StatusCode::OK);
    provider.answer_next(signed(&key, "k1", &claims(&provider, "mallory", &["radiology"], &attempt.nonce)));
    let (status, session, _) = callback(&app, &attempt.cookie, &attempt.state).await;
    assert_eq!((status, session), (StatusCode::UNAUTHORIZED, None), "replayed answer");

    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, users_before + 1, "only the good sign-on made a user");
    app.stop().await;
}

#[tokio::test]
async fn keys_rotated_at_the_provider_are_fetched_again() {
    let old = rsa_key("k1");
    let new = rsa_key("k2");
    let provider = FakeProvider::start(&[&old]).await;
    let app = app_with(&provider, true).await;
    let attempt = start(&app, &provider).await;
    provider.answer_next(signed(&old, "k1", &claims(&provider, "alice", &["radiology"], &attempt.nonce)));
    assert_eq!(callback(&app, &attempt.cookie, &attempt.state).await.0, StatusCode::OK);
    let fetches = provider.state.lock().unwrap().jwks_fetches;

    // The provider now signs with a new key and publishes only it.
    provider.publish(&[&new]);
    let attempt = start(&app, &provider).await;
    provider.answer_next(signed(&new, "k2", &claims(&provider, "alice", &["radiology"], &attempt.nonce)));
    let (status, session, page) = callback(&app, &attempt.cookie, &attempt.state).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(logged_in(&app, &session.unwrap()).await);
    assert_eq!(provider.state.lock().unwrap().jwks_fetches, fetches + 1, "the keys were fetched once more");

    // A token of the retired key is refused now.
    let attempt = start(&app, &provider).await;
    provider.answer_next(signed(&old, "k1", &claims(&provider, "alice", &["radiology"], &attempt.nonce)));
    assert_eq!(callback(&app, &attempt.cookie, &attempt.state).await.0, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn with_passwords_off_people_sign_on_and_scripts_keep_their_tokens() {
    let key = rsa_key("k1");
    let provider = FakeProvider::start(&[&key]).await;
    let app = app_with(&provider, false).await;
    let token = app.user("script", &[Role::Labeler]).await;
    let login = app.log_in(json!({ "username": "script", "password": crate::common::PASSWORD })).await;
    assert_eq!(login.status(), StatusCode::FORBIDDEN);
    let listed = app.client.get(app.url("/worklist")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(listed.status(), StatusCode::OK);

    // The login page offers the provider, not the password form.
    let page = app.client.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("/auth/oidc/login") && page.contains("Sign in with"), "{page}");
    assert!(!page.contains("name=\"password\""), "{page}");

    // Logging out of a signed-on session goes to the provider's logout, with the ID token as
    // the hint and the login page to come back to.
    let attempt = start(&app, &provider).await;
    let id_token = signed(&key, "k1", &claims(&provider, "alice", &["radiology"], &attempt.nonce));
    provider.answer_next(id_token.clone());
    let (_, session, _) = callback(&app, &attempt.cookie, &attempt.state).await;
    let session = session.unwrap();
    let out = browser()
        .post(app.url("/api/log_out"))
        .header("cookie", &session)
        .header("origin", &app.base)
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    let location = openidconnect::url::Url::parse(out.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(&format!("{}/logout", provider.url)), "{location}");
    let query: BTreeMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(query["id_token_hint"], id_token);
    assert_eq!(query["post_logout_redirect_uri"], "http://seglab.test/login");
    assert!(!logged_in(&app, &session).await, "the session ended here too");
    app.stop().await;
}

#[tokio::test]
async fn without_a_provider_the_sign_on_routes_say_so() {
    let app = TestApp::spawn().await;
    let response = browser().get(app.url("/auth/oidc/login")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let page = app.client.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("/auth/oidc/login"), "{page}");
    app.stop().await;
}
