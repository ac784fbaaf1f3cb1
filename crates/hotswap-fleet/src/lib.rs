//! Fleets of hotswap servers, on etcd and an OCI registry.
//!
//! A fleet is every `hotswap serve --fleet etcd://HOST:PORT --member NAME`
//! that shares one etcd. Its one fact per slot is a [`Rollout`] under
//! `/hotswap/desired/SLOT`: from what the fleet served to a plugin pinned
//! by digest, in waves. Everything else is derived from it:
//!
//! - each **member** ([`member::run`]) computes what its own server should
//!   serve ([`Rollout::want`]), pulls it by digest, and applies it through
//!   its server's admin API (the signature, digest and health checks of a
//!   deploy by hand), then reports per slot what it serves under its lease;
//! - one **controller** ([`controller::run`]), elected among the members,
//!   moves running rollouts ([`Rollout::step`]): a wave starts, soaks while
//!   every member of it is healthy and the fleet-wide error budget holds,
//!   and the next begins; a member that cannot apply it or a broken budget
//!   rolls the whole fleet back. Each write is a compare-and-swap on the
//!   rollout's revision and on the controller's leadership;
//! - **operators** ([`ops`]) start, pause, resume, abort and read rollouts.
//!
//! docs/fleet.md has the key layout, the state machine and what each
//! failure does.
//!
//! ```
//! use hotswap_fleet::{parse_waves, Wave};
//!
//! let waves = parse_waves("1,25%,100%").unwrap();
//! assert_eq!(waves, [Wave::Members(1), Wave::Percent(25), Wave::Percent(100)]);
//! assert!(parse_waves("1,50%").is_err(), "the last wave must be 100%");
//! ```

pub mod controller;
pub mod defaults;
mod error;
mod etcd;
pub mod keys;
mod lease;
pub mod member;
pub mod ops;
pub mod record;
mod rollout;
pub mod spec;

pub use error::FleetError;
pub use etcd::{parse_endpoints, Fleet, Versioned};
pub use rollout::{
    parse_waves, Observed, Phase, Plan, Rollout, Selector, Soak, Step, Want, Wave, WavesError,
};
