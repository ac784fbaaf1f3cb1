//! The key that keeps a client on one revision while a canary is on trial:
//! the key header, else the client's address when it can be trusted, else
//! none (each request is then routed by weight on its own).
//!
//! The peer of a connection is often not the client: behind a load balancer
//! or a sidecar every request comes from one address, and keying by it would
//! send all of them to one revision (a 10 % canary would get none, or all).
//! So the peer's address is a key only when the config says peers are
//! clients (`key_by_peer`). When the peer is a trusted proxy, the client is
//! read from `Forwarded` (RFC 7239) or, without it, `X-Forwarded-For`:
//! walking the chain from the right, the first address that is not a trusted
//! proxy is the client. Headers from any other peer are ignored, because
//! anyone can write them.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

/// How a request's routing key is found (from `[canary]` in the config).
#[derive(Debug, Clone)]
pub(crate) struct KeyPolicy {
    header: HeaderName,
    trusted: Vec<IpNet>,
    key_by_peer: bool,
}

impl KeyPolicy {
    pub(crate) fn new(header: HeaderName, trusted: Vec<IpNet>, key_by_peer: bool) -> KeyPolicy {
        KeyPolicy {
            header,
            trusted,
            key_by_peer,
        }
    }

    /// The routing key of a request from `peer` with `headers`, or `None`
    /// when it has no stable one.
    pub(crate) fn key(&self, peer: IpAddr, headers: &HeaderMap) -> Option<u64> {
        if let Some(v) = headers.get(&self.header) {
            return Some(stable_hash(v.as_bytes()));
        }
        let client = if self.is_trusted(peer) {
            self.forwarded_client(headers)
        } else if self.key_by_peer {
            Some(peer)
        } else {
            None
        };
        client.map(|ip| match ip.to_canonical() {
            IpAddr::V4(ip) => stable_hash(&ip.octets()),
            IpAddr::V6(ip) => stable_hash(&ip.octets()),
        })
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client behind a trusted proxy: the rightmost address of
    /// the forwarding chain that is not a trusted proxy (the leftmost if
    /// all are). `None` when the chain is missing, or names a hop that is
    /// not an address (`unknown`, an obfuscated name) before the client.
    fn forwarded_client(&self, headers: &HeaderMap) -> Option<IpAddr> {
        let mut chain = forwarded_for(headers);
        if chain.is_empty() {
            chain = x_forwarded_for(headers);
        }
        let mut hops = chain.into_iter().rev();
        let mut client = hops.next()??;
        for hop in hops {
            if !self.is_trusted(client) {
                break;
            }
            client = hop?;
        }
        Some(client)
    }
}

/// The `for=` addresses of every `Forwarded` header, in order; a hop that
/// is not an address is `None`.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = headers.get_all(axum::http::header::FORWARDED);
    let elements = values
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    elements
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.eq_ignore_ascii_case("for").then(|| node(value))
            })
        })
        .collect()
}

/// A `Forwarded` node: `192.0.2.1`, `"192.0.2.1:80"`, `"[2001:db8::1]:80"`.
fn node(value: &str) -> Option<IpAddr> {
    let value = value.trim().trim_matches('"');
    if let Some(v6) = value.strip_prefix('[') {
        return v6.split_once(']')?.0.parse().ok();
    }
    let host = value.split_once(':').map_or(value, |(h, _)| h);
    host.parse().ok()
}

/// The addresses of every `X-Forwarded-For` header, in order.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = headers.get_all("x-forwarded-for");
    values
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|hop| {
            let hop = hop.trim();
            hop.parse()
                .ok()
                .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        })
        .collect()
}

/// FNV-1a: stable across processes and releases, unlike `DefaultHasher`.
fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(trusted: &[&str], key_by_peer: bool) -> KeyPolicy {
        let trusted = trusted.iter().map(|n| n.parse().unwrap()).collect();
        KeyPolicy::new(HeaderName::from_static("x-key"), trusted, key_by_peer)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, value.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn key_of(s: &str) -> Option<u64> {
        policy(&[], true).key(ip(s), &HeaderMap::new())
    }

    #[test]
    fn the_key_header_wins() {
        let p = policy(&["10.0.0.0/8"], false);
        let h = headers(&[("x-key", "user-7"), ("x-forwarded-for", "192.0.2.1")]);
        assert_eq!(p.key(ip("10.0.0.1"), &h), Some(stable_hash(b"user-7")));
    }

    #[test]
    fn without_a_key_an_untrusted_peer_routes_by_weight_alone() {
        let p = policy(&["10.0.0.0/8"], false);
        // Forged: this peer is no proxy of ours.
        let h = headers(&[("x-forwarded-for", "192.0.2.1")]);
        assert_eq!(p.key(ip("198.51.100.7"), &h), None);
        assert_eq!(p.key(ip("198.51.100.7"), &HeaderMap::new()), None);
    }

    #[test]
    fn peers_can_be_declared_clients() {
        let p = policy(&[], true);
        assert_eq!(
            p.key(ip("198.51.100.7"), &HeaderMap::new()),
            key_of("198.51.100.7")
        );
        // An IPv4 peer on a dual-stack socket is the same client.
        assert_eq!(
            p.key(ip("::ffff:198.51.100.7"), &HeaderMap::new()),
            key_of("198.51.100.7")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let p = policy(&["10.0.0.0/8", "127.0.0.1/32"], false);
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 192.0.2.1, 10.1.1.1")]);
        // 10.1.1.1 is a proxy of ours; 192.0.2.1 is the client (203.0.113.9
        // is what the client claimed, and may be forged).
        assert_eq!(p.key(ip("127.0.0.1"), &h), key_of("192.0.2.1"));
        // Split over two headers, the chain is the same.
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-for", "192.0.2.1, 10.1.1.1"),
        ]);
        assert_eq!(p.key(ip("127.0.0.1"), &h), key_of("192.0.2.1"));
    }

    #[test]
    fn forwarded_is_read_before_x_forwarded_for() {
        let p = policy(&["10.0.0.0/8"], false);
        let h = headers(&[
            (
                "forwarded",
                r#"for=192.0.2.60;proto=http, For="[2001:db8:cafe::17]:4711""#,
            ),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        assert_eq!(p.key(ip("10.0.0.2"), &h), key_of("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "for=\"192.0.2.60:8080\";by=10.0.0.2")]);
        assert_eq!(p.key(ip("10.0.0.2"), &h), key_of("192.0.2.60"));
    }

    #[test]
    fn a_chain_that_hides_the_client_gives_no_key() {
        let p = policy(&["10.0.0.0/8"], false);
        // The trusted proxy did not know its client.
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(p.key(ip("10.0.0.2"), &h), None);
        // A trusted proxy that forwarded nothing: no client to name.
        assert_eq!(p.key(ip("10.0.0.2"), &HeaderMap::new()), None);
        // Garbage is not an address.
        let h = headers(&[("x-forwarded-for", "not an address")]);
        assert_eq!(p.key(ip("10.0.0.2"), &h), None);
    }

    #[test]
    fn a_chain_of_trusted_proxies_names_its_leftmost_hop() {
        let p = policy(&["10.0.0.0/8"], false);
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]);
        assert_eq!(p.key(ip("10.0.0.2"), &h), key_of("10.9.9.9"));
    }
}
