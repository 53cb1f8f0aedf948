//! Claims of shared requests in a bucket (moto's S3 on loopback): of two
//! runs the first to claim a request pays, the other waits until the
//! payer's answer is in the index or the payer is gone, then one run alone
//! takes the claim over.

mod common;

use std::sync::Arc;

use common::s3::S3Server;
use sonicflow::journal::claims::{BucketClaims, Claims, Standing};
use sonicflow::journal::lock::{Holder, LocalLocks, LockStore};
use sonicflow::store::Bucket;

fn bucket(server: &S3Server, name: &str) -> Arc<Bucket> {
    let url = server.bucket(name);
    Arc::new(server.open(&format!("{url}/state")))
}

#[test]
fn one_run_pays_for_a_claimed_request_and_one_takes_over_from_a_gone_payer() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let store = bucket(&server, "claims");
    let locks_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let locks = Arc::new(LocalLocks::new(locks_dir.path()));
    let claims = |run: &str| {
        Claims::new(
            Arc::new(BucketClaims::new(Arc::clone(&store))),
            Arc::clone(&locks) as Arc<dyn LockStore>,
            run,
            &format!("p.{run}"),
        )
    };
    let (a, b, c) = (claims("a"), claims("b"), claims("c"));
    let holder = Holder::this_process("p.a", "a", locks_dir.path(), "run");
    locks.create(&holder).unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(a.claim("sha256:h", "song[x]"), Ok(Standing::Mine));
    let Ok(Standing::Theirs(held)) = b.claim("sha256:h", "song[y]") else {
        panic!("b waits for a");
    };
    assert_eq!(held.run, "a");
    assert_eq!(b.done_with("sha256:h", &held), Ok(false));
    // `a` puts its answer in the index: `b` is done waiting.
    store
        .put_new(
            "index/sha256:h/a-0000000003.json",
            bytes::Bytes::from_static(b"{}"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.done_with("sha256:h", &held), Ok(true));

    // Another request, whose payer goes away without answering.
    assert_eq!(a.claim("sha256:k", "song[x]"), Ok(Standing::Mine));
    let lock = locks.read("p.a").unwrap_or_else(|e| panic!("{e}"));
    let etag = lock.map(|l| l.etag).unwrap_or_default();
    assert!(locks.delete("p.a", &etag).unwrap_or_else(|e| panic!("{e}")));
    let (
        Ok(Standing::Settled { generation: gb, .. }),
        Ok(Standing::Settled { generation: gc, .. }),
    ) = (
        b.claim("sha256:k", "song[y]"),
        c.claim("sha256:k", "song[z]"),
    )
    else {
        panic!("a is gone");
    };
    let taken_b = b.take_over("sha256:k", gb, "song[y]");
    let taken_c = c.take_over("sha256:k", gc, "song[z]");
    // One of the two wins the next claim; the other finds it held.
    assert_eq!(taken_b, Ok(Standing::Mine));
    assert!(
        matches!(&taken_c, Ok(Standing::Settled { holder, generation: 1 }) if holder.run == "b"),
        "{taken_c:?}"
    );
}
