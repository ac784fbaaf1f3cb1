//! The rule for a test that cannot run somewhere: it says why and skips,
//! except under `CI=true`, where everything must run and it fails instead.

use std::fmt::Display;

/// Whether this runs under CI (`CI=true`), where no test may skip.
pub fn under_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Says why the calling test cannot run here, for it to return early; under
/// CI, panics with the reason instead, so that a missing tool or privilege
/// fails the run.
///
/// ```
/// fn promtool_is_here() -> bool { false }
/// # std::env::remove_var("CI");
/// if !promtool_is_here() {
///     hotswap_testkit::cannot_run_here("promtool is not installed (scripts/setup installs it)");
///     return;
/// }
/// ```
pub fn cannot_run_here(why: impl Display) {
    assert!(!under_ci(), "this test must run under CI: {why}");
    eprintln!("skipping: {why}");
}
