//! The object store client against a real S3 implementation (moto on
//! loopback): the conditional writes the journal and the lock rest on.

mod common;

use bytes::Bytes;
use common::s3::S3Server;
use sonicflow::store::{Bucket, Created, Swapped};

/// A new bucket `name` on the server, its prefix `state`.
fn bucket(server: &S3Server, name: &str) -> Bucket {
    let url = server.bucket(name);
    server.open(&format!("{url}/state"))
}

#[test]
fn a_create_only_write_and_a_compare_and_swap_hold_on_s3() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let bucket = bucket(&server, "conditional");
    let first = bucket
        .put_new("locks/a.json", Bytes::from_static(b"one"))
        .unwrap_or_else(|e| panic!("{e}"));
    let Created::Written { etag: Some(etag) } = first else {
        panic!("the first create writes and returns an etag: {first:?}")
    };
    assert_eq!(
        bucket
            .put_new("locks/a.json", Bytes::from_static(b"two"))
            .unwrap_or_else(|e| panic!("{e}")),
        Created::Exists,
        "a second create-only write of the same name is refused"
    );
    assert_eq!(
        bucket
            .put_if_match(
                "locks/a.json",
                "\"not-the-etag\"",
                Bytes::from_static(b"three")
            )
            .unwrap_or_else(|e| panic!("{e}")),
        Swapped::Conflict,
        "a swap on a stale etag is refused"
    );
    let swapped = bucket
        .put_if_match("locks/a.json", &etag, Bytes::from_static(b"four"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(swapped, Swapped::Written { .. }), "{swapped:?}");
    let got = bucket
        .get("locks/a.json", 1024)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.map(|o| o.bytes), Some(Bytes::from_static(b"four")));
    assert_eq!(
        bucket.list("locks").unwrap_or_else(|e| panic!("{e}")),
        vec!["locks/a.json".to_owned()]
    );
}
