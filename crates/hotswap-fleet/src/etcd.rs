//! `Fleet`: a connection to the fleet's etcd, and the reads and
//! compare-and-swap writes of its keys.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, LeaderKey, Txn, TxnOp};
use serde::de::DeserializeOwned;

use crate::error::FleetError;
use crate::keys;
use crate::record::{MemberRecord, Report};
use crate::rollout::Rollout;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A value with the etcd revision it was last written at, for a
/// compare-and-swap write over it.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    /// The value; a key holding something that is not one is `Err(why)`.
    pub value: Result<T, String>,
    /// Its key's `mod_revision`.
    pub mod_revision: i64,
}

/// A connection to a fleet's etcd.
#[derive(Clone)]
pub struct Fleet {
    client: Client,
    endpoints: Vec<String>,
}

/// Reads `etcd://HOST:PORT[,HOST:PORT...]` (the scheme may be left out).
pub fn parse_endpoints(input: &str) -> Result<Vec<String>, FleetError> {
    let bare = input.strip_prefix("etcd://").unwrap_or(input);
    let endpoints: Vec<String> = bare
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| format!("http://{e}"))
        .collect();
    let valid = !endpoints.is_empty()
        && bare.split(',').all(|e| {
            e.trim()
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        });
    if !valid {
        return Err(FleetError::BadEndpoint(input.to_string()));
    }
    Ok(endpoints)
}

impl Fleet {
    /// Connects to `endpoint` (`etcd://HOST:PORT`).
    pub async fn connect(endpoint: &str) -> Result<Fleet, FleetError> {
        let endpoints = parse_endpoints(endpoint)?;
        let options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        let client = Client::connect(&endpoints, Some(options))
            .await
            .map_err(|e| FleetError::connect(&endpoints, e))?;
        Ok(Fleet { client, endpoints })
    }

    /// The etcd client, for watches, leases and elections.
    pub(crate) fn client(&self) -> Client {
        self.client.clone()
    }

    /// A failed request as an error: "cannot reach etcd" when it is not
    /// there, what it said otherwise.
    pub(crate) fn failed(&self, e: etcd_client::Error) -> FleetError {
        match &e {
            etcd_client::Error::GRpcStatus(s) if s.code() == tonic::Code::Unavailable => {
                FleetError::connect(&self.endpoints, e)
            }
            etcd_client::Error::TransportError(_) => FleetError::connect(&self.endpoints, e),
            _ => FleetError::Etcd(e),
        }
    }

    /// Every slot's rollout, by slot, and the etcd revision read at.
    pub async fn rollouts(
        &self,
    ) -> Result<(BTreeMap<String, Versioned<Rollout>>, i64), FleetError> {
        let (kvs, revision) = self.prefix(&keys::desireds()).await?;
        let rollouts = kvs
            .into_iter()
            .filter_map(|(key, value, mod_revision)| {
                let slot = key.strip_prefix(&keys::desireds())?.to_string();
                Some((
                    slot,
                    Versioned {
                        value: decode(&key, &value),
                        mod_revision,
                    },
                ))
            })
            .collect();
        Ok((rollouts, revision))
    }

    /// One slot's rollout, if it has one.
    pub async fn rollout(&self, slot: &str) -> Result<Option<Versioned<Rollout>>, FleetError> {
        let key = keys::desired(slot);
        let mut response = self
            .client()
            .get(key.as_str(), None)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(response.take_kvs().into_iter().next().map(|kv| Versioned {
            value: decode(&key, kv.value()),
            mod_revision: kv.mod_revision(),
        }))
    }

    /// Every live member, by name (a member whose record is unreadable is
    /// left out).
    pub async fn members(&self) -> Result<BTreeMap<String, MemberRecord>, FleetError> {
        let (kvs, _) = self.prefix(&keys::members()).await?;
        Ok(kvs
            .into_iter()
            .filter_map(|(key, value, _)| decode::<MemberRecord>(&key, &value).ok())
            .map(|m| (m.name.clone(), m))
            .collect())
    }

    /// Every report, by slot and then member.
    pub async fn reports(&self) -> Result<BTreeMap<String, BTreeMap<String, Report>>, FleetError> {
        let (kvs, _) = self.prefix(&keys::reports()).await?;
        let mut reports: BTreeMap<String, BTreeMap<String, Report>> = BTreeMap::new();
        for (key, value, _) in kvs {
            let Some(parts) = keys::tail(&key, &keys::reports()) else {
                continue;
            };
            let [member, slot] = parts[..] else {
                continue;
            };
            if let Ok(report) = decode::<Report>(&key, &value) {
                reports
                    .entry(slot.to_string())
                    .or_default()
                    .insert(member.to_string(), report);
            }
        }
        Ok(reports)
    }

    /// The name of the controller that leads, if one does.
    pub async fn leader(&self) -> Result<Option<String>, FleetError> {
        match self.client().leader(keys::election()).await {
            Ok(mut answer) => Ok(answer
                .take_kv()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())),
            // etcd answers "no leader" as an error.
            Err(etcd_client::Error::GRpcStatus(s)) if s.message().contains("no leader") => Ok(None),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// The rollouts of `slot` that newer ones replaced, oldest first.
    pub async fn history(&self, slot: &str) -> Result<Vec<Rollout>, FleetError> {
        let (kvs, _) = self.prefix(&keys::histories(slot)).await?;
        let mut past: Vec<Rollout> = kvs
            .into_iter()
            .filter_map(|(key, value, _)| decode(&key, &value).ok())
            .collect();
        past.sort_by_key(|r: &Rollout| r.created_ms);
        Ok(past)
    }

    /// Writes `rollout` as its slot's desired state if the key is still at
    /// `seen` (its `mod_revision`; 0 for a slot with none), and, when
    /// `leader` is given, only while that leadership holds. `replaced`, the
    /// rollout it replaces, moves to the history in the same transaction.
    /// False when another write came first: nothing was written.
    pub async fn write_rollout(
        &self,
        rollout: &Rollout,
        seen: i64,
        leader: Option<&LeaderKey>,
        replaced: Option<&Rollout>,
    ) -> Result<bool, FleetError> {
        let key = keys::desired(&rollout.slot);
        let mut when = vec![Compare::mod_revision(key.as_str(), CompareOp::Equal, seen)];
        if let Some(leader) = leader {
            // A deposed controller's write fails here, even if it has not
            // noticed yet that its lease is gone.
            when.push(Compare::create_revision(
                leader.key(),
                CompareOp::Equal,
                leader.rev(),
            ));
        }
        let mut then = vec![TxnOp::put(key.as_str(), encode(rollout), None)];
        if let Some(old) = replaced {
            then.push(TxnOp::put(
                keys::history(&old.slot, &old.id),
                encode(old),
                None,
            ));
        }
        let response = self
            .client()
            .txn(Txn::new().when(when).and_then(then))
            .await
            .map_err(|e| self.failed(e))?;
        Ok(response.succeeded())
    }

    /// Every key under `prefix` with its value and `mod_revision`, and the
    /// store's revision at the read.
    async fn prefix(&self, prefix: &str) -> Result<(Vec<(String, Vec<u8>, i64)>, i64), FleetError> {
        let mut response = self
            .client()
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| self.failed(e))?;
        let revision = response.header().map_or(0, |h| h.revision());
        let kvs = response
            .take_kvs()
            .into_iter()
            .map(|kv| {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                (key, kv.value().to_vec(), kv.mod_revision())
            })
            .collect();
        Ok((kvs, revision))
    }
}

/// A value as it is stored: JSON.
pub(crate) fn encode(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("fleet records serialize")
}

/// A stored value, or why the key does not hold one.
pub(crate) fn decode<T: DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, String> {
    serde_json::from_slice(value).map_err(|e| format!("{key} holds no valid record: {e}"))
}
