//! What the tests that run `drover` against moto share (included with `#[path]`
//! beside `mod moto; mod pg; mod support;`).

use std::process::Command;

use crate::moto::{self, Moto};
use crate::pg;
use crate::support::Ran;

/// Points `cmd` at moto through the standard AWS environment, logging everything.
pub fn with_moto<'c>(cmd: &'c mut Command, moto: &Moto) -> &'c mut Command {
    for (k, v) in moto.env() {
        cmd.env(k, v);
    }
    cmd.env("DROVER_LOG", "trace")
}

/// Neither the AWS credentials nor the database password reach output or logs (at trace level).
pub fn assert_no_secrets(ran: &Ran) {
    for secret in [moto::ACCESS_KEY_ID, moto::SECRET_ACCESS_KEY, pg::PASSWORD] {
        assert!(
            !ran.stdout.contains(secret) && !ran.stderr.contains(secret),
            "a secret leaked:\n{}{}",
            ran.stdout,
            ran.stderr
        );
    }
}
