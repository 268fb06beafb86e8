//! Every request body the daemon's API reads (`POST /api/v1/runs`, `…/approve`,
//! `…/resume`, `…/abort`), read as the daemon reads it (`drover_core::request`).
#![no_main]

use drover_core::request::{Abort, Approve, Resume, StartRun, read_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(start) = read_body::<StartRun>(data)
        && let Ok(request) = start.request()
    {
        // What the CLI would send for this request reads back as the same request.
        let again = serde_json::to_vec(&request.body(&start.reason)).expect("a body is JSON");
        let read: StartRun = read_body(&again).expect("the CLI's own body reads");
        assert_eq!(read.request(), Ok(request));
    }
    let _ = read_body::<Approve>(data);
    let _ = read_body::<Abort>(data);
    let _ = read_body::<Resume>(data);
});
