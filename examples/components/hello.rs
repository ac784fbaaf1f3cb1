// The `hello` handler, shared by hello-v1 and hello-v2: each defines
// `GREETING` and includes this file. Paths:
//
// - `/count`  counts requests in the slot's key-value state (`count`),
//             which survives swaps: `count N, GREETING`;
// - `/echo`   streams the request body back as it reads it (bodies larger
//             than the instance's memory work) and ends with a trailer
//             `x-echo-bytes`;
// - `/fetch?to=http://host:port/path`  sends a GET there and answers its
//             status and body (502 with the reason when it is refused);
// - `/where...` answers its path and query as it arrived;
// - `/trap`, `/loop`, `/eat`  panic, spin forever, and allocate until the
//             memory cap: the host must answer 502, 504 and 502, and carry on;
// - anything else: `GREETING`, with the request's `x-probe` header copied
//   into the answer.


use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

wit_bindgen::generate!({
    path: "../../../crates/hotswap-abi/wit",
    world: "hotswap:plugin/host",
});

use hotswap::plugin::kv;

struct Hello;

wasip2::http::proxy::export!(Hello);

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let (path, query) = path.split_once('?').unwrap_or((&path, ""));
        match path {
            "/count" => answer(out, 200, &[], count().as_bytes()),
            "/echo" => echo(request, out),
            "/fetch" => fetch(query, out),
            p if p.starts_with("/where") => {
                let seen = request.path_with_query().unwrap_or_default();
                answer(out, 200, &[], seen.as_bytes())
            }
            "/trap" => panic!("asked to trap"),
            "/loop" => loop {
                std::hint::black_box(());
            },
            "/eat" => {
                let mut eaten: Vec<Vec<u8>> = Vec::new();
                loop {
                    eaten.push(vec![1; 1 << 20]);
                    std::hint::black_box(&eaten);
                }
            }
            _ => {
                let probe = request.headers().get("x-probe");
                let echoed: Vec<(String, Vec<u8>)> = probe
                    .into_iter()
                    .map(|v| ("x-probe".to_string(), v))
                    .collect();
                answer(out, 200, &echoed, format!("{GREETING}\n").as_bytes())
            }
        }
    }
}

/// Adds one to `count` in the slot's state and says what it is now.
fn count() -> String {
    let n = match kv::get(b"count") {
        Ok(Some(v)) => String::from_utf8_lossy(&v).parse::<u64>().unwrap_or(0),
        Ok(None) => 0,
        Err(e) => return format!("cannot read the count: {e:?}\n"),
    } + 1;
    match kv::set(b"count", n.to_string().as_bytes()) {
        Ok(()) => format!("count {n}, {GREETING}\n"),
        Err(e) => format!("cannot write the count: {e:?}\n"),
    }
}

/// A whole answer in one go.
fn answer(out: ResponseOutparam, status: u16, headers: &[(String, Vec<u8>)], body: &[u8]) {
    let headers = Fields::from_list(headers).expect("valid headers");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("a valid status");
    let outgoing = response.body().expect("the body, once");
    ResponseOutparam::set(out, Ok(response));
    {
        let mut stream = outgoing.write().expect("the body's stream, once");
        std::io::Write::write_all(&mut stream, body).expect("the client reads the body");
        std::io::Write::flush(&mut stream).expect("the client reads the body");
    }
    OutgoingBody::finish(outgoing, None).expect("a complete body");
}

/// Copies the request body to the response, 64 KiB at a time.
fn echo(request: IncomingRequest, out: ResponseOutparam) {
    let incoming = request.consume().expect("the request body, once");
    let response = OutgoingResponse::new(Fields::new());
    let outgoing = response.body().expect("the body, once");
    ResponseOutparam::set(out, Ok(response));
    let mut total: u64 = 0;
    {
        let mut input = incoming.stream().expect("the request body's stream");
        let mut output = outgoing.write().expect("the body's stream, once");
        let mut buf = vec![0; 64 << 10];
        loop {
            let n = std::io::Read::read(&mut input, &mut buf).expect("the client sends the body");
            if n == 0 {
                break;
            }
            std::io::Write::write_all(&mut output, &buf[..n]).expect("the client reads the body");
            total += n as u64;
        }
        std::io::Write::flush(&mut output).expect("the client reads the body");
    }
    let trailers = Fields::from_list(&[("x-echo-bytes".into(), total.to_string().into_bytes())])
        .expect("a valid trailer");
    OutgoingBody::finish(outgoing, Some(trailers)).expect("a complete body");
}

/// `GET to`, answered with its status and body, or 502 and why not.
fn fetch(query: &str, out: ResponseOutparam) {
    let Some(to) = query.strip_prefix("to=") else {
        return answer(out, 400, &[], b"fetch needs ?to=http://host:port/path\n");
    };
    let Some(rest) = to.strip_prefix("http://") else {
        return answer(out, 400, &[], b"fetch takes http:// addresses\n");
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    match get(authority, path) {
        Ok((status, body)) => {
            let mut text = format!("fetched {status}: ").into_bytes();
            text.extend_from_slice(&body);
            answer(out, 200, &[], &text)
        }
        Err(why) => answer(out, 502, &[], format!("refused: {why}\n").as_bytes()),
    }
}

fn get(authority: &str, path: &str) -> Result<(u16, Vec<u8>), String> {
    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).map_err(|()| "method")?;
    request.set_scheme(Some(&Scheme::Http)).map_err(|()| "scheme")?;
    request.set_authority(Some(authority)).map_err(|()| "authority")?;
    request.set_path_with_query(Some(path)).map_err(|()| "path")?;
    let body = request.body().map_err(|()| "body")?;
    let pending = wasip2::http::outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response")?
        .map_err(|()| "response taken twice")?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let incoming = response.consume().map_err(|()| "response body")?;
    let mut body = Vec::new();
    {
        let mut stream = incoming.stream().map_err(|()| "response body stream")?;
        std::io::Read::read_to_end(&mut stream, &mut body).map_err(|e| e.to_string())?;
    }
    Ok((status, body))
}
