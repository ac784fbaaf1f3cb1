//! A gateway job in a plugin: bearer-token auth on an envelope route
//! (docs/abi.md, "Envelopes"). It reads the whole request and answers with a
//! status and headers: 200 and `x-auth: ok` for the right token, 401 and
//! `www-authenticate` otherwise.

use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

#[derive(Serialize)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

const TOKEN: &str = "Bearer letmein";

fn process(input: &[u8]) -> Result<Vec<u8>, String> {
    let req: Request =
        serde_json::from_slice(input).map_err(|e| format!("not a request envelope: {e}"))?;
    let authorized = req
        .headers
        .iter()
        .any(|(name, value)| name == "authorization" && value == TOKEN);
    let response = if authorized {
        Response {
            status: 200,
            headers: vec![("x-auth".into(), "ok".into())],
            body: format!("welcome: {} {}\n", req.method, req.path),
        }
    } else {
        Response {
            status: 401,
            headers: vec![("www-authenticate".into(), "Bearer".into())],
            body: "who are you?\n".into(),
        }
    };
    serde_json::to_vec(&response).map_err(|e| e.to_string())
}

hotswap_guest::plugin!(process);
