//! Where a fleet keeps what in etcd: every key is made here (docs/fleet.md
//! lists them).

/// Every key of a fleet starts with this.
pub const ROOT: &str = "/hotswap/";

/// `members/NAME`: a [`crate::record::MemberRecord`], under the member's lease.
pub fn member(name: &str) -> String {
    format!("{ROOT}members/{name}")
}

/// The prefix of every member record.
pub fn members() -> String {
    format!("{ROOT}members/")
}

/// `desired/SLOT`: the slot's [`crate::Rollout`], the one fact members
/// derive what to serve from.
pub fn desired(slot: &str) -> String {
    format!("{ROOT}desired/{slot}")
}

/// The prefix of every slot's desired state.
pub fn desireds() -> String {
    format!("{ROOT}desired/")
}

/// `status/MEMBER/SLOT`: a [`crate::record::Report`], under the member's lease.
pub fn report(member: &str, slot: &str) -> String {
    format!("{ROOT}status/{member}/{slot}")
}

/// The prefix of every report.
pub fn reports() -> String {
    format!("{ROOT}status/")
}

/// `history/SLOT/ID`: a rollout that a newer one replaced, as it ended.
pub fn history(slot: &str, id: &str) -> String {
    format!("{ROOT}history/{slot}/{id}")
}

/// The prefix of one slot's history.
pub fn histories(slot: &str) -> String {
    format!("{ROOT}history/{slot}/")
}

/// The election every member's controller campaigns in.
pub fn election() -> String {
    format!("{ROOT}controller")
}

/// The last part of `key` after `prefix`, split at `/`.
pub(crate) fn tail<'k>(key: &'k str, prefix: &str) -> Option<Vec<&'k str>> {
    key.strip_prefix(prefix).map(|t| t.split('/').collect())
}
