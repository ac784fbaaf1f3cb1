//! Request and response envelopes: a route can hand its plugin the whole
//! request (method, path, query, headers, body) and let it answer with a
//! status and headers, so plugins can do gateway jobs such as auth, header
//! rewrites and routing decisions. The format is in docs/abi.md.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// What the plugin receives.
#[derive(Serialize)]
pub(crate) struct RequestEnvelope<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: Vec<(&'a str, String)>,
    /// The body as text, when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    /// The body in base64, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    body_base64: Option<String>,
}

impl<'a> RequestEnvelope<'a> {
    pub fn new(method: &'a Method, uri: &'a Uri, headers: &'a HeaderMap, body: &'a [u8]) -> Self {
        let (text, binary) = match std::str::from_utf8(body) {
            Ok(t) => (Some(t), None),
            Err(_) => (None, Some(STANDARD.encode(body))),
        };
        RequestEnvelope {
            method: method.as_str(),
            path: uri.path(),
            query: uri.query().unwrap_or(""),
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: text,
            body_base64: binary,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serialises")
    }
}

/// What the plugin answers.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResponseEnvelope {
    #[serde(default = "ok")]
    status: u16,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_base64: Option<String>,
}

fn ok() -> u16 {
    200
}

impl ResponseEnvelope {
    /// Reads the plugin's output; the error says what is wrong with it (for
    /// the log: the client only learns that the plugin failed).
    pub fn parse(output: &[u8]) -> Result<(StatusCode, HeaderMap, Vec<u8>), String> {
        let env: ResponseEnvelope = serde_json::from_slice(output)
            .map_err(|e| format!("the plugin's answer is not a response envelope: {e}"))?;
        let status = StatusCode::from_u16(env.status)
            .map_err(|_| format!("status {} is not an HTTP status", env.status))?;
        let mut headers = HeaderMap::new();
        for (name, value) in env.headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| format!("`{name}` is not a header name"))?;
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|_| format!("bad value for header `{name}`"))?;
            headers.append(name, value);
        }
        let body = match (env.body, env.body_base64) {
            (Some(_), Some(_)) => return Err("give `body` or `body_base64`, not both".into()),
            (Some(text), None) => text.into_bytes(),
            (None, Some(b64)) => STANDARD
                .decode(b64)
                .map_err(|e| format!("body_base64: {e}"))?,
            (None, None) => Vec::new(),
        };
        Ok((status, headers, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bodies_are_text_or_base64() {
        let (m, u, h) = (
            Method::POST,
            "/a?b=1".parse::<Uri>().unwrap(),
            HeaderMap::new(),
        );
        let text = String::from_utf8(RequestEnvelope::new(&m, &u, &h, b"hi").to_json()).unwrap();
        assert_eq!(
            text,
            r#"{"method":"POST","path":"/a","query":"b=1","headers":[],"body":"hi"}"#
        );
        let binary =
            String::from_utf8(RequestEnvelope::new(&m, &u, &h, &[0xff]).to_json()).unwrap();
        assert!(binary.ends_with(r#""body_base64":"/w=="}"#), "{binary}");
    }

    #[test]
    fn responses_are_checked() {
        let (s, h, b) = ResponseEnvelope::parse(
            br#"{"status":401,"headers":[["www-authenticate","Bearer"]],"body":"no"}"#,
        )
        .unwrap();
        assert_eq!(
            (
                s.as_u16(),
                h["www-authenticate"].to_str().unwrap(),
                b.as_slice()
            ),
            (401, "Bearer", &b"no"[..])
        );
        assert_eq!(ResponseEnvelope::parse(b"{}").unwrap().0, StatusCode::OK);
        for bad in [
            &b"not json"[..],
            br#"{"status":1000}"#,
            br#"{"headers":[["bad header","x"]]}"#,
            br#"{"body":"a","body_base64":"YQ=="}"#,
            br#"{"extra":1}"#,
        ] {
            assert!(
                ResponseEnvelope::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
