//! Presigned GET URLs, signed with SigV4 directly and reused for a while.
//!
//! The SDK's `presigned()` runs a whole request pipeline per URL, and opening a large case asks
//! for a hundred (one per distinct slab): that was most of the case-open time. Here each URL
//! is the SigV4 query signature alone (`aws-sigv4`, the signer the SDK itself uses), and its
//! signing time is the start of a time window rather than now: every open of a case within one
//! window gets the same URLs, so they are signed once, kept, and the browser's cache can
//! recognise a slab it already has. A URL stays valid for at least the configured lifetime:
//! its expiry counts from the window's start and adds the window.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::config::Credentials;
use aws_sigv4::http_request::{
    sign, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::server::error::AppError;

/// The longest validity S3 accepts for a presigned URL (seven days).
const LONGEST_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Values kept per window, beyond which the window starts afresh (a bound on memory: a URL
/// takes about 400 bytes).
const MAX_KEPT: usize = 100_000;

/// What stays as is in a key's path: S3 keys are written with `/` unescaped, as the SDK does.
const KEY_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');

/// Signs GET URLs of one bucket, for whole windows of time.
#[derive(Debug)]
pub(crate) struct UrlSigner {
    /// The bucket's URL up to the key, ending in `/`.
    bucket_url: String,
    identity: Identity,
    region: String,
    window: Duration,
    /// `X-Amz-Expires`: the configured lifetime plus the window.
    expires_in: Duration,
    urls: WindowCache<Arc<str>>,
}

/// Values made for the current window of a [`UrlSigner`], by key. Emptied when the window
/// changes, or when it holds [`MAX_KEPT`].
#[derive(Debug)]
struct WindowCache<V> {
    kept: Mutex<Kept<V>>,
}

#[derive(Debug)]
struct Kept<V> {
    window_start: u64,
    values: HashMap<String, V>,
}

impl<V: Clone> WindowCache<V> {
    fn new() -> Self {
        WindowCache { kept: Mutex::new(Kept { window_start: 0, values: HashMap::new() }) }
    }

    /// The value kept for `key` in the window starting at `window_start`, or `make`'s, then kept.
    fn get_or_make(
        &self,
        window_start: u64,
        key: &str,
        make: impl FnOnce() -> Result<V, AppError>,
    ) -> Result<V, AppError> {
        {
            let mut kept = self.kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if kept.window_start != window_start {
                *kept = Kept { window_start, values: HashMap::new() };
            }
            if let Some(value) = kept.values.get(key) {
                return Ok(value.clone());
            }
        }
        let value = make()?;
        let mut kept = self.kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if kept.window_start == window_start {
            if kept.values.len() >= MAX_KEPT {
                kept.values.clear();
            }
            kept.values.insert(key.to_string(), value.clone());
        }
        Ok(value)
    }
}

impl UrlSigner {
    /// A signer for `bucket` at `endpoint` (path-style, as the store is configured), or at AWS's
    /// virtual-hosted address for `region` without one. URLs last at least `ttl`.
    pub(crate) fn new(
        endpoint: Option<&str>,
        bucket: &str,
        region: &str,
        credentials: Credentials,
        ttl: Duration,
    ) -> Result<Self, String> {
        if ttl.is_zero() || ttl > LONGEST_EXPIRY {
            return Err(format!(
                "the presigned URL lifetime must be between 1 s and {} s, not {} s",
                LONGEST_EXPIRY.as_secs(),
                ttl.as_secs()
            ));
        }
        // A quarter of the lifetime: URLs are shared that long, and last at most 1.25 × ttl.
        let window = (ttl / 4).min(LONGEST_EXPIRY - ttl).max(Duration::from_secs(1));
        let bucket_url = match endpoint {
            Some(endpoint) => format!("{}/{bucket}/", endpoint.trim_end_matches('/')),
            None => format!("https://{bucket}.s3.{region}.amazonaws.com/"),
        };
        Ok(Self {
            bucket_url,
            identity: credentials.into(),
            region: region.to_string(),
            window,
            expires_in: (ttl + window).min(LONGEST_EXPIRY),
            urls: WindowCache::new(),
        })
    }

    /// The URL of `key` signed for the window holding `now`.
    pub(crate) fn url(&self, key: &str, now: SystemTime) -> Result<Arc<str>, AppError> {
        let window_start = self.window_start(now);
        self.urls.get_or_make(window_start, key, || {
            metrics::counter!("seglab_presigned_urls_total").increment(1);
            Ok(self.sign(key, UNIX_EPOCH + Duration::from_secs(window_start))?.into())
        })
    }

    /// When the URLs signed at `now` expire, at the earliest (milliseconds since the epoch).
    pub(crate) fn expiry_ms(&self, now: SystemTime) -> i64 {
        ((self.window_start(now) + self.expires_in.as_secs()) * 1000) as i64
    }

    fn window_start(&self, now: SystemTime) -> u64 {
        let seconds = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        seconds - seconds % self.window.as_secs()
    }

    /// The GET URL of `key` with a SigV4 query signature made at `time`.
    fn sign(&self, key: &str, time: SystemTime) -> Result<String, AppError> {
        // The SDK's URL exactly, `x-id` (the operation, which S3 ignores) included.
        let unsigned = format!("{}{}?x-id=GetObject", self.bucket_url, utf8_percent_encode(key, KEY_ESCAPES));
        // As the SDK presigns S3 requests: the path signed as written, the payload unsigned.
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(self.expires_in);
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("s3")
            .time(time)
            .settings(settings)
            .build()
            .map_err(AppError::internal)?
            .into();
        let request = SignableRequest::new("GET", &unsigned, std::iter::empty(), SignableBody::UnsignedPayload)
            .map_err(AppError::internal)?;
        let (instructions, _) = sign(request, &params).map_err(AppError::internal)?.into_parts();
        let mut url = unsigned;
        for (name, value) in instructions.params() {
            url.push('&');
            url.push_str(name);
            url.push('=');
            url.extend(utf8_percent_encode(value, NON_ALPHANUMERIC_BUT_UNRESERVED).map(Cow::from));
        }
        Ok(url)
    }
}

/// Query values are escaped as SigV4 canonicalises them: everything but `A–Z a–z 0–9 - . _ ~`.
const NON_ALPHANUMERIC_BUT_UNRESERVED: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(ttl: u64) -> UrlSigner {
        let credentials =
            Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None, None, "test");
        UrlSigner::new(Some("http://127.0.0.1:9000"), "seglab", "garage", credentials, Duration::from_secs(ttl))
            .unwrap()
    }

    #[test]
    fn opens_within_a_window_share_a_url_that_outlives_the_lifetime() {
        let signer = signer(300);
        let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let first = signer.url("cases/a/slabs/1", start).unwrap();
        let again = signer.url("cases/a/slabs/1", start + Duration::from_secs(74)).unwrap();
        assert_eq!(first, again);
        assert_eq!(signer.expiry_ms(start + Duration::from_secs(74)), (1_800_000_000 + 375) * 1000);
        assert!(first.starts_with(
            "http://127.0.0.1:9000/seglab/cases/a/slabs/1?x-id=GetObject&X-Amz-Algorithm=AWS4-HMAC-SHA256&"
        ));
        assert!(first.contains("&X-Amz-Expires=375&"), "{first}");
        // The next window signs anew, and every URL lasts at least the lifetime from its asking.
        let next = signer.url("cases/a/slabs/1", start + Duration::from_secs(75)).unwrap();
        assert_ne!(first, next);
        assert_eq!(signer.expiry_ms(start + Duration::from_secs(80)), (1_800_000_000 + 75 + 375) * 1000);
    }

    #[test]
    fn refuses_lifetimes_s3_does_not_accept() {
        let credentials = Credentials::new("a", "b", None, None, "test");
        for ttl in [0, 7 * 24 * 3600 + 1] {
            assert!(UrlSigner::new(None, "b", "us-east-1", credentials.clone(), Duration::from_secs(ttl)).is_err());
        }
        let longest = UrlSigner::new(None, "b", "us-east-1", credentials, LONGEST_EXPIRY).unwrap();
        assert_eq!(longest.expires_in, LONGEST_EXPIRY);
    }

    /// The URLs are those the SDK presigns for the same object at the same time.
    #[tokio::test]
    async fn signs_as_the_sdk_presigns() {
        use aws_sdk_s3::config::{Builder, Region};
        use aws_sdk_s3::presigning::PresigningConfig;
        let credentials =
            Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None, None, "test");
        let time = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for (endpoint, region) in [(Some("http://127.0.0.1:9000"), "garage"), (None, "eu-west-1")] {
            let ttl = Duration::from_secs(300);
            let signer = UrlSigner::new(endpoint, "seglab", region, credentials.clone(), ttl).unwrap();
            let mut config = Builder::new()
                .region(Region::new(region))
                .credentials_provider(credentials.clone())
                .behavior_version_latest();
            if let Some(endpoint) = endpoint {
                config = config.endpoint_url(endpoint).force_path_style(true);
            }
            let client = aws_sdk_s3::Client::from_conf(config.build());
            let key = "prefix/cases/0b1c/slabs/9f~a b+c.gz";
            let presigning =
                PresigningConfig::builder().start_time(time).expires_in(signer.expires_in).build().unwrap();
            let sdk = client.get_object().bucket("seglab").key(key).presigned(presigning).await.unwrap();
            assert_eq!(&*signer.url(key, time).unwrap(), sdk.uri());
        }
    }
}
