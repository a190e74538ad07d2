//! The OpenID Connect relying party: the provider's discovery document and keys (cached, and
//! fetched again when a token names a key the cache lacks, which is how providers rotate
//! keys), the authorisation request with PKCE, `state` and `nonce`, the code exchange, and the
//! ID token's checks: issuer, audience, expiry, nonce, and an RS256 signature by one of the
//! provider's keys. Who the person then is in seglab is `services::sso`'s business.

use std::collections::BTreeMap;
use std::time::Duration;

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreResponseType, CoreRevocableToken,
    CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, Client, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdToken, IdTokenFields, IssuerUrl,
    LogoutRequest, Nonce, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout,
    RedirectUrl, Scope, SignatureVerificationError, StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use super::config::SsoConfig;
use super::identity::Role;

/// Every claim of the ID token beyond the standard ones: the username and groups claims are
/// configurable, so they are looked up by name.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct OtherClaims {
    #[serde(flatten)]
    claims: BTreeMap<String, serde_json::Value>,
}
impl AdditionalClaims for OtherClaims {}

type Token = IdToken<OtherClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;
type TokenFields = IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type ProviderClient = Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    StandardTokenResponse<TokenFields, CoreTokenType>,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a sign-on did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    /// The provider could not be reached or answered what is not OpenID Connect.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider's answer cannot be trusted (or was refused): nobody is logged in.
    #[error("{0}")]
    Refused(String),
}

/// The settings of single sign-on, checked at start-up.
#[derive(Clone, Debug)]
pub struct Settings {
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: Option<ClientSecret>,
    redirect: RedirectUrl,
    after_logout: PostLogoutRedirectUrl,
    roles_claim: String,
    username_claim: String,
    role_map: Vec<(String, Role)>,
    pub display_name: String,
}

impl Settings {
    /// `None` without an issuer; an error naming the setting that is missing or wrong.
    pub fn from_config(config: &SsoConfig) -> Result<Option<Settings>, String> {
        let Some(issuer) = &config.oidc_issuer else {
            return Ok(None);
        };
        let issuer = IssuerUrl::new(issuer.clone()).map_err(|e| format!("SEGLAB_OIDC_ISSUER: {e}"))?;
        let client_id = config.oidc_client_id.clone().ok_or("SEGLAB_OIDC_CLIENT_ID is required with an issuer")?;
        let public_url = config.public_url.as_deref().ok_or("SEGLAB_PUBLIC_URL is required with an issuer")?;
        let public_url = public_url.trim_end_matches('/');
        let redirect = RedirectUrl::new(format!("{public_url}/auth/oidc/callback"))
            .map_err(|e| format!("SEGLAB_PUBLIC_URL: {e}"))?;
        let after_logout =
            PostLogoutRedirectUrl::new(format!("{public_url}/login")).map_err(|e| format!("SEGLAB_PUBLIC_URL: {e}"))?;
        let mut role_map = Vec::new();
        for pair in config.oidc_role_map.iter().filter(|pair| !pair.trim().is_empty()) {
            let (group, role) =
                pair.split_once('=').ok_or_else(|| format!("SEGLAB_OIDC_ROLE_MAP: {pair:?} is not `group=role`"))?;
            let role = role.trim().parse::<Role>().map_err(|e| format!("SEGLAB_OIDC_ROLE_MAP: {e}"))?;
            role_map.push((group.trim().to_string(), role));
        }
        if role_map.is_empty() {
            return Err("SEGLAB_OIDC_ROLE_MAP must map at least one group to a role".into());
        }
        Ok(Some(Settings {
            issuer,
            client_id: ClientId::new(client_id),
            client_secret: config.oidc_client_secret.clone().map(ClientSecret::new),
            redirect,
            after_logout,
            roles_claim: config.oidc_roles_claim.clone(),
            username_claim: config.oidc_username_claim.clone(),
            role_map,
            display_name: config.oidc_display_name.clone(),
        }))
    }
}

/// A login attempt: where to send the browser, and what the callback must find again.
pub struct Attempt {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// Who the provider says signed on, after every check.
#[derive(Debug)]
pub struct Identity {
    /// `iss` and `sub` together: the only stable name of a person at a provider.
    pub subject: String,
    pub username: String,
    /// The seglab roles their groups map to (none: refused by the caller).
    pub roles: Vec<Role>,
    /// The ID token itself, the `id_token_hint` of a later logout.
    pub id_token: String,
}

/// The provider, as this instance knows it.
pub struct Provider {
    settings: Settings,
    http: openidconnect::reqwest::Client,
    metadata: RwLock<Option<ProviderMetadataWithLogout>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("issuer", &self.settings.issuer).finish()
    }
}

/// How long the provider may take to answer.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(15);

impl Provider {
    pub fn new(settings: Settings) -> Result<Provider, String> {
        let http = openidconnect::reqwest::Client::builder()
            // Following redirects would let a provider's answer send requests anywhere.
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Provider { settings, http, metadata: RwLock::new(None) })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The discovery document and keys: cached, fetched on first use or when `refresh`.
    async fn metadata(&self, refresh: bool) -> Result<ProviderMetadataWithLogout, SsoError> {
        if !refresh {
            if let Some(metadata) = self.metadata.read().await.as_ref() {
                return Ok(metadata.clone());
            }
        }
        let metadata = ProviderMetadataWithLogout::discover_async(self.settings.issuer.clone(), &self.http)
            .await
            .map_err(|e| SsoError::Unavailable(error_chain(&e)))?;
        *self.metadata.write().await = Some(metadata.clone());
        Ok(metadata)
    }

    fn client(&self, metadata: ProviderMetadataWithLogout) -> ProviderClient {
        ProviderClient::from_provider_metadata(
            metadata,
            self.settings.client_id.clone(),
            self.settings.client_secret.clone(),
        )
        .set_redirect_uri(self.settings.redirect.clone())
    }

    /// A new attempt: the provider's authorisation URL with a fresh `state`, `nonce` and PKCE
    /// challenge (S256).
    pub async fn begin(&self) -> Result<Attempt, SsoError> {
        let client = self.client(self.metadata(false).await?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(Attempt {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges `code` for tokens with the attempt's PKCE verifier and checks the ID token
    /// against the attempt's nonce.
    pub async fn finish(&self, code: &str, nonce: &str, pkce_verifier: &str) -> Result<Identity, SsoError> {
        let client = self.client(self.metadata(false).await?);
        let request = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| SsoError::Unavailable(format!("the provider has no token endpoint: {e}")))?;
        let answer = request
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::ServerResponse(refusal) => {
                    SsoError::Refused(format!("the provider refused the code: {refusal}"))
                }
                other => SsoError::Unavailable(error_chain(&other)),
            })?;
        let token = answer.id_token().ok_or_else(|| SsoError::Refused("the provider sent no ID token".into()))?;
        let nonce = Nonce::new(nonce.to_string());
        let claims = match self.verify(&client, token, &nonce) {
            // A key the cached set lacks: the provider may have rotated its keys since.
            Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) => {
                let client = self.client(self.metadata(true).await?);
                self.verify(&client, token, &nonce)
            }
            verified => verified,
        }
        .map_err(|e| SsoError::Refused(format!("the ID token was refused: {e}")))?;
        let subject = format!("{} {}", claims.issuer().as_str(), claims.subject().as_str());
        let other = &claims.additional_claims().claims;
        let username = match self.settings.username_claim.as_str() {
            "preferred_username" => claims.preferred_username().map(|name| name.as_str().to_string()),
            "email" => claims.email().map(|email| email.as_str().to_string()),
            "sub" => Some(claims.subject().as_str().to_string()),
            name => other.get(name).and_then(|v| v.as_str()).map(str::to_string),
        }
        .ok_or_else(|| SsoError::Refused(format!("the ID token has no `{}` claim", self.settings.username_claim)))?;
        let groups: Vec<&str> = match other.get(&self.settings.roles_claim) {
            Some(serde_json::Value::Array(values)) => values.iter().filter_map(|v| v.as_str()).collect(),
            Some(serde_json::Value::String(one)) => vec![one.as_str()],
            _ => Vec::new(),
        };
        let mut roles: Vec<Role> = Vec::new();
        for (group, role) in &self.settings.role_map {
            if groups.contains(&group.as_str()) && !roles.contains(role) {
                roles.push(*role);
            }
        }
        Ok(Identity { subject, username, roles, id_token: token.to_string() })
    }

    /// The ID token's claims, if its issuer, audience, expiry, nonce and RS256 signature hold.
    fn verify<'t>(
        &self,
        client: &ProviderClient,
        token: &'t Token,
        nonce: &Nonce,
    ) -> Result<&'t openidconnect::IdTokenClaims<OtherClaims, CoreGenderClaim>, ClaimsVerificationError> {
        // RS256 only: never `none`, and never HS256 keyed with the client secret.
        let verifier = client.id_token_verifier().set_allowed_algs([CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]);
        token.claims(&verifier, nonce)
    }

    /// Where the browser goes to end its session at the provider too (RP-initiated logout),
    /// if the provider offers it; the provider sends it back to the login page.
    pub async fn logout_url(&self, id_token: &str) -> Option<String> {
        let metadata = self.metadata(false).await.ok()?;
        let end_session = metadata.additional_metadata().end_session_endpoint.clone()?;
        let token: Token = id_token.parse().ok()?;
        let request = LogoutRequest::from(end_session)
            .set_id_token_hint(&token)
            .set_client_id(self.settings.client_id.clone())
            .set_post_logout_redirect_uri(self.settings.after_logout.clone());
        Some(request.http_get_url().to_string())
    }
}

/// An error with its causes, for the log and the message.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
