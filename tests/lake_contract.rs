//! The lake contract suite: what `model/src/lake.rs` promises, checked against every lake
//! (the local folder, and ADLS over a real Azurite blob service), with the same assertions.

mod support;

#[cfg(feature = "adls")]
use lakelink_connectors::lake::adls::AdlsLake;
#[cfg(feature = "adls")]
use lakelink_connectors::lake::adls::config::{AdlsAuthMode, AdlsLakeConfig};
use lakelink_connectors::lake::local::LocalLake;
use lakelink_model::lake::{Lake, LakeEntry, LakeError};
use lakelink_model::lake_path::{LakePath, TableName};
use std::io::Read;
#[cfg(feature = "adls")]
use support::azurite::{ACCOUNT, Azurite};

fn p(path: &str) -> LakePath {
    LakePath::from_raw(path)
}

fn read_all(lake: &dyn Lake, path: &str, start: u64, end: Option<u64>) -> String {
    read_path(lake, &p(path), start, end)
}

fn read_path(lake: &dyn Lake, path: &LakePath, start: u64, end: Option<u64>) -> String {
    let mut s = String::new();
    lake.read(path, start, end)
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    s
}

fn append_checks_the_expected_length(lake: &dyn Lake) {
    let f = p("t/sub/2024.csv");
    assert_eq!(
        lake.append(&f, 0, b"a\n").unwrap(),
        2,
        "parent folders made"
    );
    assert_eq!(lake.append(&f, 2, b"b\n").unwrap(), 4);
    let err = lake.append(&f, 2, b"c\n").unwrap_err();
    assert!(
        matches!(
            err,
            LakeError::LengthMismatch {
                expected: 2,
                actual: 4,
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        lake.append(&f, 0, b"c"),
        Err(LakeError::LengthMismatch { .. })
    ));
    assert_eq!(
        read_all(lake, "t/sub/2024.csv", 0, None),
        "a\nb\n",
        "nothing written"
    );
    let missing = p("t/none.csv");
    let err = lake.append(&missing, 5, b"x").unwrap_err();
    assert!(matches!(err, LakeError::LengthMismatch { actual: 0, .. }));
    assert_eq!(lake.size(&missing).unwrap(), None, "only length 0 creates");
    // A cut at the end of a committed batch (recovery's only kind of cut).
    lake.discard_tail(&f, 2).unwrap();
    assert_eq!(read_all(lake, "t/sub/2024.csv", 0, None), "a\n");
    assert_eq!(
        lake.append(&f, 2, b"d\n").unwrap(),
        4,
        "appends go on after a cut"
    );
    assert_eq!(read_all(lake, "t/sub/2024.csv", 0, None), "a\nd\n");
}

fn read_streams_a_range(lake: &dyn Lake) {
    lake.append(&p("r/1.csv"), 0, b"0123456789").unwrap();
    assert_eq!(read_all(lake, "r/1.csv", 0, None), "0123456789");
    assert_eq!(read_all(lake, "r/1.csv", 3, Some(6)), "345");
    assert_eq!(read_all(lake, "r/1.csv", 7, None), "789");
    assert_eq!(
        read_all(lake, "r/1.csv", 8, Some(20)),
        "89",
        "stops at the end"
    );
    assert_eq!(read_all(lake, "r/1.csv", 4, Some(4)), "");
    assert_eq!(
        read_all(lake, "r/1.csv", 10, None),
        "",
        "from the end: nothing"
    );
    let missing = lake.read(&p("r/none.csv"), 0, None);
    assert!(matches!(missing, Err(LakeError::NotFound { .. })));
}

fn create_is_create_only(lake: &dyn Lake) {
    let t1 = p("c/Snapshot/c-T1.csv");
    let mut f = lake.create(&t1).unwrap();
    f.write_all(b"row\n").unwrap();
    assert_eq!(lake.size(&t1).unwrap(), None, "invisible until committed");
    f.commit().unwrap();
    assert_eq!(read_all(lake, "c/Snapshot/c-T1.csv", 0, None), "row\n");
    assert!(matches!(
        lake.create(&t1),
        Err(LakeError::AlreadyExists { .. })
    ));
    // Another writer takes the name between create and commit: the first commit wins.
    let mut late = lake.create(&p("c/Snapshot/c-T2.csv")).unwrap();
    let mut first = lake.create(&p("c/Snapshot/c-T2.csv")).unwrap();
    first.write_all(b"first").unwrap();
    first.commit().unwrap();
    late.write_all(b"late").unwrap();
    assert!(matches!(
        late.commit(),
        Err(LakeError::AlreadyExists { .. })
    ));
    assert_eq!(read_all(lake, "c/Snapshot/c-T2.csv", 0, None), "first");
    let t3 = p("c/Snapshot/c-T3.csv");
    let mut abandoned = lake.create(&t3).unwrap();
    abandoned.write_all(b"x").unwrap();
    // A crash: the process dies before commit or drop.
    std::mem::forget(abandoned);
    assert_eq!(lake.size(&t3).unwrap(), None);
    let dir = p("c/Snapshot");
    let listed: Vec<_> = lake
        .list(&dir)
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(listed, [p("c/Snapshot/c-T1.csv"), p("c/Snapshot/c-T2.csv")]);
    lake.remove_abandoned(&dir).unwrap();
    assert_eq!(
        lake.list(&dir).unwrap().len(),
        2,
        "nothing abandoned is left visible"
    );
    // A file of several staged blocks.
    let big = "0123456789abcdef".repeat(1 << 20);
    let mut f = lake.create(&p("c/Snapshot/big.csv")).unwrap();
    for chunk in big.as_bytes().chunks(1 << 20) {
        f.write_all(chunk).unwrap();
    }
    f.commit().unwrap();
    assert_eq!(
        lake.size(&p("c/Snapshot/big.csv")).unwrap(),
        Some(big.len() as u64)
    );
    assert_eq!(read_all(lake, "c/Snapshot/big.csv", 0, None), big);
}

fn replace_list_and_delete(lake: &dyn Lake) {
    let m = LakePath::model();
    lake.replace(&m, b"{ a longer first version }").unwrap();
    lake.replace(&m, b"{2}").unwrap();
    assert_eq!(
        read_all(lake, "model.json", 0, None),
        "{2}",
        "no tail of the old"
    );
    lake.append(&p("a/1.csv"), 0, b"x\n").unwrap();
    lake.replace(&p("a/b/m.json"), b"{}").unwrap();
    let entry = |path: &str, is_dir| LakeEntry {
        path: p(path),
        is_dir,
    };
    let a = lake.list(&p("a")).unwrap();
    assert_eq!(a, [entry("a/1.csv", false), entry("a/b", true)]);
    assert!(lake.list(&p("none")).unwrap().is_empty());
    let root = lake.list(&p("")).unwrap();
    assert!(root.contains(&entry("a", true)), "{root:?}");
    assert!(root.contains(&entry("model.json", false)), "{root:?}");
    lake.delete(&m).unwrap();
    lake.delete(&m).unwrap();
    lake.delete(&p("no/such/file")).unwrap();
    assert_eq!(lake.size(&m).unwrap(), None);
    lake.replace(&m, b"{3}").unwrap();
    assert_eq!(
        read_all(lake, "model.json", 0, None),
        "{3}",
        "published again"
    );
}

fn one_writer_at_a_time(lake: &dyn Lake, other: &dyn Lake) {
    assert_eq!(other.writer_holder().unwrap(), None, "no one holds it yet");
    let guard = lake.lock_writer("agent one").unwrap();
    guard.verify().unwrap();
    // Looking does not take the lock, and sees who holds it.
    assert_eq!(other.writer_holder().unwrap().as_deref(), Some("agent one"));
    guard.verify().unwrap();
    match other.lock_writer("agent two") {
        Err(LakeError::Locked { holder, lock }) => {
            assert_eq!(holder, "agent one");
            assert_eq!(lock, lake.location(&LakePath::writer_lock()));
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a second writer got the lock"),
    }
    drop(guard);
    assert_eq!(
        other.writer_holder().unwrap(),
        None,
        "released when dropped"
    );
    let _second = other.lock_writer("agent two").unwrap();
    match lake.lock_writer("agent three") {
        Err(LakeError::Locked { holder, .. }) => assert_eq!(holder, "agent two"),
        _ => panic!("the lock was not taken again"),
    }
}

fn locations_round_trip(lake: &dyn Lake) {
    let f = p("t/Snapshot/t-T1.csv");
    let location = lake.location(&f);
    assert!(!location.contains("%2F"), "{location}");
    assert_eq!(lake.path_of_location(&location), Some(f));
    assert_eq!(lake.path_of_location(&format!("{location}/../../x")), None);
}

/// Every check, on a fresh lake from `open` (called twice for the lock check).
fn contract(open: impl Fn() -> Box<dyn Lake>) {
    let lake = open();
    append_checks_the_expected_length(lake.as_ref());
    read_streams_a_range(lake.as_ref());
    create_is_create_only(lake.as_ref());
    replace_list_and_delete(lake.as_ref());
    locations_round_trip(lake.as_ref());
    one_writer_at_a_time(lake.as_ref(), open().as_ref());
}

use std::io::Write as _;

#[test]
fn the_local_lake_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    contract(|| Box::new(LocalLake::open(&root, None).unwrap()));
}

/// An ADLS lake config for Azurite's account, authorized by its key.
#[cfg(feature = "adls")]
pub fn azurite_config(azurite: &Azurite, filesystem: &str, path: Option<&str>) -> AdlsLakeConfig {
    AdlsLakeConfig {
        account: ACCOUNT.to_string(),
        filesystem: filesystem.to_string(),
        path: path.map(str::to_string),
        endpoint: Some(azurite.endpoint()),
        auth: AdlsAuthMode::AccountKey,
        account_key_env: None,
        account_key_file: Some(azurite.key_file()),
        sas_token_env: None,
        sas_token_file: None,
        tenant_id: None,
        client_id: None,
        client_secret_env: None,
        client_secret_file: None,
        split_after_batches: None,
    }
}

#[test]
#[cfg(feature = "adls")]
fn the_adls_lake_keeps_the_contract_on_azurite() {
    let azurite = Azurite::start();
    let config = azurite_config(&azurite, "lake", None);
    contract(|| Box::new(AdlsLake::open(&config).unwrap()));
    // The same, in a folder of a filesystem another lake already uses.
    let config = azurite_config(&azurite, "lake", Some("lakes/crm"));
    contract(|| Box::new(AdlsLake::open(&config).unwrap()));
}

/// The same suite on a real Azure account, in a new folder of an existing filesystem. Needs
/// `LAKELINK_TEST_ADLS_ACCOUNT`, `LAKELINK_TEST_ADLS_FILESYSTEM` and `LAKELINK_TEST_ADLS_KEY`
/// (the account key); run with `-- --ignored` (README, Development).
#[test]
#[cfg(feature = "adls")]
#[ignore = "needs a real Azure storage account (see the README)"]
fn the_adls_lake_keeps_the_contract_on_real_azure() {
    let var = |name: &str| {
        std::env::var(name)
            .unwrap_or_else(|_| panic!("set {name} to run this test (see the README)"))
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let config = AdlsLakeConfig {
        account: var("LAKELINK_TEST_ADLS_ACCOUNT"),
        filesystem: var("LAKELINK_TEST_ADLS_FILESYSTEM"),
        path: Some(format!("lakelink-contract-{stamp}")),
        endpoint: None,
        auth: AdlsAuthMode::AccountKey,
        account_key_env: Some("LAKELINK_TEST_ADLS_KEY".to_string()),
        account_key_file: None,
        sas_token_env: None,
        sas_token_file: None,
        tenant_id: None,
        client_id: None,
        client_secret_env: None,
        client_secret_file: None,
        split_after_batches: None,
    };
    contract(|| Box::new(AdlsLake::open(&config).unwrap()));
}

/// A crash after staging a file's first blocks and before committing them leaves a blob of
/// uncommitted blocks only: it does not exist for any reader, and an append at length 0
/// starts it.
#[test]
#[cfg(feature = "adls")]
fn staged_blocks_of_a_crashed_write_are_invisible_and_in_no_ones_way() {
    let azurite = Azurite::start();
    let lake = AdlsLake::open(&azurite_config(&azurite, "lake", None)).unwrap();
    let f = p("t/2024.csv");
    let mut crashed = lake.create(&f).unwrap();
    crashed.write_all(&vec![b'x'; 9 << 20]).unwrap();
    std::mem::forget(crashed);
    assert_eq!(lake.size(&f).unwrap(), None);
    assert!(lake.list(&p("t")).unwrap().is_empty());
    let fresh = AdlsLake::open(&azurite_config(&azurite, "lake", None)).unwrap();
    assert_eq!(fresh.append(&f, 0, b"a\n").unwrap(), 2);
    assert_eq!(read_all(&fresh, "t/2024.csv", 0, None), "a\n");
}

/// A live file past `split_after_batches` goes on in `<partition>_001.csv`, ...: to the
/// engine it stays one file (size, appends, reads, cuts, delete), listings show it once,
/// and `parts` names the splits in order.
#[test]
#[cfg(feature = "adls")]
fn a_long_live_file_is_split_and_still_reads_as_one() {
    let azurite = Azurite::start();
    let config = AdlsLakeConfig {
        split_after_batches: Some(2),
        ..azurite_config(&azurite, "lake", None)
    };
    let lake = AdlsLake::open(&config).unwrap();
    let f = LakePath::live_file(&TableName::new("t").unwrap(), "2024");
    let mut len = 0;
    let mut expected = String::new();
    for batch in 0..7 {
        let data = format!("row {batch}\n");
        len = lake.append(&f, len, data.as_bytes()).unwrap();
        expected.push_str(&data);
    }
    assert_eq!(
        lake.parts(&f),
        [
            p("t/2024.csv"),
            p("t/2024_001.csv"),
            p("t/2024_002.csv"),
            p("t/2024_003.csv")
        ]
    );
    assert_eq!(lake.size(&f).unwrap(), Some(len));
    assert_eq!(read_path(&lake, &f, 0, None), expected);
    assert_eq!(read_path(&lake, &f, 4, Some(26)), expected[4..26]);
    assert_eq!(read_path(&lake, &f, len, None), "");
    let listed: Vec<_> = lake
        .list(&p("t"))
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(
        listed,
        std::slice::from_ref(&f),
        "splits are not files of their own"
    );
    // Another process opening the lake finds the splits.
    let other = AdlsLake::open(&config).unwrap();
    assert_eq!(other.size(&f).unwrap(), Some(len));
    assert_eq!(other.parts(&f).len(), 4);
    let err = other.append(&f, 6, b"x").unwrap_err();
    assert!(
        matches!(err, LakeError::LengthMismatch { actual, .. } if actual == len),
        "{err}"
    );
    assert_eq!(other.append(&f, len, b"row 7\n").unwrap(), len + 6);
    expected.push_str("row 7\n");
    assert_eq!(read_path(&other, &f, 0, None), expected);
    // A cut at a batch boundary inside an earlier split drops the later splits.
    other.discard_tail(&f, 12).unwrap();
    assert_eq!(other.size(&f).unwrap(), Some(12));
    assert_eq!(read_path(&other, &f, 0, None), "row 0\nrow 1\n");
    assert_eq!(other.parts(&f).len(), 1);
    other.delete(&f).unwrap();
    assert_eq!(other.size(&f).unwrap(), None);
    assert!(other.list(&p("t")).unwrap().is_empty());
}
